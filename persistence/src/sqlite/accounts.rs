//! The SQL of accounts: sessions and their revocation, profile and password
//! changes, admin and ban flags, and the audit log.
//!
//! Plain functions over a connection, like `users`. Revoked sessions are
//! found through a partial index on `expires_at`, so loading the
//! outstanding revocations at start-up reads only revoked rows.

use chat_protocol::Id;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::rows::{id_from_sql, id_to_sql, room_id_at, time_to_sql};
use super::users;
use crate::Result;
use crate::records::{
    AccountFlags, AuditEvent, AuditFilter, Revocation, SessionRecord, UserRecord,
};

pub(crate) fn create_session(connection: &Connection, session: &SessionRecord) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            id_to_sql(session.id),
            id_to_sql(session.user),
            time_to_sql(session.created_at),
            time_to_sql(session.expires_at),
        ])?;
    Ok(())
}

fn revocation_at(row: &Row<'_>) -> rusqlite::Result<Revocation> {
    Ok(Revocation {
        session: id_from_sql(row.get(0)?),
        user: id_from_sql(row.get(1)?),
        expires_at: row.get::<_, i64>(2)? as u64,
    })
}

pub(crate) fn revoke_session(
    connection: &Connection,
    user: Id,
    session: Id,
    at: u64,
) -> Result<Option<Revocation>> {
    connection
        .prepare_cached(
            "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?3)
             WHERE id = ?1 AND user_id = ?2",
        )?
        .execute(params![
            id_to_sql(session),
            id_to_sql(user),
            time_to_sql(at)
        ])?;
    let revocation = connection
        .prepare_cached(
            "SELECT id, user_id, expires_at FROM sessions WHERE id = ?1 AND user_id = ?2",
        )?
        .query_row(params![id_to_sql(session), id_to_sql(user)], revocation_at)
        .optional()?;
    Ok(revocation)
}

pub(crate) fn revoke_sessions(
    connection: &Connection,
    user: Id,
    except: Option<Id>,
    at: u64,
) -> Result<Vec<Revocation>> {
    let except = except.map(id_to_sql);
    connection
        .prepare_cached(
            "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?3)
             WHERE user_id = ?1 AND expires_at > ?3 AND (?2 IS NULL OR id <> ?2)",
        )?
        .execute(params![id_to_sql(user), except, time_to_sql(at)])?;
    let revocations = connection
        .prepare_cached(
            "SELECT id, user_id, expires_at FROM sessions
             WHERE user_id = ?1 AND expires_at > ?3 AND revoked_at IS NOT NULL
               AND (?2 IS NULL OR id <> ?2)",
        )?
        .query_map(
            params![id_to_sql(user), except, time_to_sql(at)],
            revocation_at,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(revocations)
}

pub(crate) fn revocations(connection: &Connection, now: u64) -> Result<Vec<Revocation>> {
    let revocations = connection
        .prepare_cached(
            "SELECT id, user_id, expires_at FROM sessions
             WHERE revoked_at IS NOT NULL AND expires_at > ?1",
        )?
        .query_map([time_to_sql(now)], revocation_at)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(revocations)
}

pub(crate) fn set_display_name(
    connection: &Connection,
    user: Id,
    display_name: &str,
) -> Result<Option<UserRecord>> {
    let changed = connection
        .prepare_cached("UPDATE users SET display_name = ?2 WHERE id = ?1")?
        .execute(params![id_to_sql(user), display_name])?;
    if changed == 0 {
        return Ok(None);
    }
    users::by_id(connection, user)
}

pub(crate) fn set_password_hash(
    connection: &Connection,
    user: Id,
    password_hash: &str,
) -> Result<bool> {
    let changed = connection
        .prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
        .execute(params![id_to_sql(user), password_hash])?;
    Ok(changed > 0)
}

pub(crate) fn account_flags(connection: &Connection, user: Id) -> Result<AccountFlags> {
    let flags = connection
        .prepare_cached("SELECT admin, banned FROM account_flags WHERE user_id = ?1")?
        .query_row([id_to_sql(user)], |row| {
            Ok(AccountFlags {
                admin: row.get(0)?,
                banned: row.get(1)?,
            })
        })
        .optional()?;
    Ok(flags.unwrap_or_default())
}

pub(crate) fn set_admin(connection: &Connection, user: Id, admin: bool) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO account_flags (user_id, admin) VALUES (?1, ?2)
             ON CONFLICT (user_id) DO UPDATE SET admin = excluded.admin",
        )?
        .execute(params![id_to_sql(user), admin])?;
    Ok(())
}

pub(crate) fn set_banned(connection: &Connection, user: Id, banned: bool) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO account_flags (user_id, banned) VALUES (?1, ?2)
             ON CONFLICT (user_id) DO UPDATE SET banned = excluded.banned",
        )?
        .execute(params![id_to_sql(user), banned])?;
    Ok(())
}

pub(crate) fn insert_audit(connection: &Connection, events: &[AuditEvent]) -> Result<()> {
    let mut insert = connection.prepare_cached(
        "INSERT INTO audit_events (id, at, kind, actor_id, target_id, room_id, ip, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO NOTHING",
    )?;
    for event in events {
        insert.execute(params![
            id_to_sql(event.id),
            time_to_sql(event.at),
            event.kind,
            event.actor_id.map(id_to_sql),
            event.target_id.map(id_to_sql),
            event.room_id.map(|room| room.to_string()),
            event.ip,
            event.detail,
        ])?;
    }
    Ok(())
}

fn audit_at(row: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let room_id = match row.get::<_, Option<String>>(5)? {
        Some(_) => Some(room_id_at(row, 5)?),
        None => None,
    };
    Ok(AuditEvent {
        id: id_from_sql(row.get(0)?),
        at: row.get::<_, i64>(1)? as u64,
        kind: row.get(2)?,
        actor_id: row.get::<_, Option<i64>>(3)?.map(id_from_sql),
        target_id: row.get::<_, Option<i64>>(4)?.map(id_from_sql),
        room_id,
        ip: row.get(6)?,
        detail: row.get(7)?,
    })
}

pub(crate) fn audit_events(
    connection: &Connection,
    filter: &AuditFilter,
) -> Result<(Vec<AuditEvent>, bool)> {
    let before = filter
        .before
        .map_or(i64::MAX, |id| i64::try_from(id.0).unwrap_or(i64::MAX));
    let user = filter.user.map(id_to_sql);
    let mut events = connection
        .prepare_cached(
            "SELECT id, at, kind, actor_id, target_id, room_id, ip, detail FROM audit_events
             WHERE id < ?1 AND at >= ?2
               AND (?3 IS NULL OR kind = ?3)
               AND (?4 IS NULL OR actor_id = ?4 OR target_id = ?4)
             ORDER BY id DESC
             LIMIT ?5",
        )?
        .query_map(
            params![
                before,
                time_to_sql(filter.since),
                filter.kind,
                user,
                i64::from(filter.limit) + 1
            ],
            audit_at,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = events.len() > filter.limit as usize;
    events.truncate(filter.limit as usize);
    Ok((events, has_more))
}

pub(crate) fn prune_audit(connection: &Connection, before: u64) -> Result<u64> {
    let pruned = connection
        .prepare_cached("DELETE FROM audit_events WHERE at < ?1")?
        .execute([time_to_sql(before)])?;
    // Expired sessions need no revocation any more either.
    connection
        .prepare_cached("DELETE FROM sessions WHERE expires_at < ?1")?
        .execute([time_to_sql(before)])?;
    Ok(pruned as u64)
}
