//! Accounts on ScyllaDB: sessions and their revocation, profile and
//! password changes, admin and ban flags, and the audit log.
//!
//! - `sessions_by_user` holds a user's sessions (one partition per user),
//!   each row living until its tokens expire (`USING TTL`).
//! - `session_revocations` lists revoked sessions partitioned by the day
//!   their tokens expire, also with a TTL: a starting node reads the days
//!   from today to [`REVOCATION_DAYS`] ahead and finds every outstanding
//!   revocation, without scanning users. Tokens may therefore live at most
//!   that many days (`token_ttl_secs` is validated against it).
//! - `audit_log` is partitioned by day (days since the Unix epoch) and
//!   clustered by Snowflake id, newest first; rows expire with the
//!   configured retention (`USING TTL`), so pruning is the cluster's job.
//!   Reads walk back day by day, filtering kind and user in the client:
//!   the audit log is read by admins, rarely, and a day is one slice.

use chat_protocol::{Id, RoomId};

use super::ScyllaStore;
use super::rows::{id_from_cql, id_to_cql};
use crate::Result;
use crate::records::{
    AccountFlags, AuditEvent, AuditFilter, Revocation, SessionRecord, UserRecord,
};

/// Milliseconds in a day: the partition width of revocations and audit.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// How many days ahead of today revocations are looked for: the longest
/// token lifetime the store supports.
pub const REVOCATION_DAYS: u64 = 31;
/// Rows per slice when walking an audit day.
const AUDIT_SLICE: i32 = 500;
/// The longest TTL ScyllaDB accepts (20 years), in seconds.
const MAX_TTL_SECS: u64 = 630_720_000;

fn day_of(unix_ms: u64) -> i32 {
    i32::try_from(unix_ms / DAY_MS).unwrap_or(i32::MAX)
}

/// A TTL in seconds for a row that must live until `until` (ms), at least
/// one second.
fn ttl_until(until: u64, now: u64) -> i32 {
    ttl_of(until.saturating_sub(now))
}

fn ttl_of(duration_ms: u64) -> i32 {
    let secs = (duration_ms / 1000).clamp(1, MAX_TTL_SECS);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

type SessionRow = (i64, Option<i64>, Option<i64>);
type AuditRow = (
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn audit_from_row(row: AuditRow) -> Option<AuditEvent> {
    let (id, at, kind, actor, target, room, ip, detail) = row;
    let room_id = match room {
        Some(text) => Some(text.parse::<RoomId>().ok()?),
        None => None,
    };
    Some(AuditEvent {
        id: id_from_cql(id),
        at: at? as u64,
        kind: kind?,
        actor_id: actor.map(id_from_cql),
        target_id: target.map(id_from_cql),
        room_id,
        ip,
        detail,
    })
}

impl ScyllaStore {
    pub(super) async fn create_session_impl(&self, session: SessionRecord) -> Result<()> {
        let now = chat_protocol::id::now_ms();
        self.execute(
            &self.statements.insert_session,
            (
                id_to_cql(session.user),
                id_to_cql(session.id),
                session.created_at as i64,
                session.expires_at as i64,
                ttl_until(session.expires_at, now),
            ),
        )
        .await?;
        Ok(())
    }

    /// Marks one session revoked and lists it by its expiry day.
    async fn revoke(&self, user: Id, session: Id, expires_at: u64, at: u64) -> Result<Revocation> {
        let ttl = ttl_until(expires_at, at);
        self.execute(
            &self.statements.revoke_session_row,
            (ttl, at as i64, id_to_cql(user), id_to_cql(session)),
        )
        .await?;
        self.execute(
            &self.statements.insert_revocation,
            (
                day_of(expires_at),
                id_to_cql(session),
                id_to_cql(user),
                expires_at as i64,
                ttl,
            ),
        )
        .await?;
        Ok(Revocation {
            session,
            user,
            expires_at,
        })
    }

    pub(super) async fn revoke_session_impl(
        &self,
        user: Id,
        session: Id,
        at: u64,
    ) -> Result<Option<Revocation>> {
        let row: Option<SessionRow> = self
            .first_row(
                &self.statements.select_session,
                (id_to_cql(user), id_to_cql(session)),
            )
            .await?;
        let Some((_, Some(expires_at), _)) = row else {
            return Ok(None);
        };
        Ok(Some(
            self.revoke(user, session, expires_at as u64, at).await?,
        ))
    }

    pub(super) async fn revoke_sessions_impl(
        &self,
        user: Id,
        except: Option<Id>,
        at: u64,
    ) -> Result<Vec<Revocation>> {
        let rows: Vec<SessionRow> = self
            .all_rows(&self.statements.select_user_sessions, (id_to_cql(user),))
            .await?;
        let mut revoked = Vec::new();
        for (id, expires_at, revoked_at) in rows {
            let (session, Some(expires_at)) = (id_from_cql(id), expires_at) else {
                continue;
            };
            let expires_at = expires_at as u64;
            if Some(session) == except || expires_at <= at {
                continue;
            }
            if revoked_at.is_some() {
                revoked.push(Revocation {
                    session,
                    user,
                    expires_at,
                });
            } else {
                revoked.push(self.revoke(user, session, expires_at, at).await?);
            }
        }
        Ok(revoked)
    }

    pub(super) async fn revocations_impl(&self, now: u64) -> Result<Vec<Revocation>> {
        let today = day_of(now);
        let mut revocations = Vec::new();
        for day in today..=today.saturating_add(REVOCATION_DAYS as i32) {
            let rows: Vec<(i64, Option<i64>, Option<i64>)> = self
                .all_rows(&self.statements.select_revocations, (day,))
                .await?;
            for (session, user, expires_at) in rows {
                if let (Some(user), Some(expires_at)) = (user, expires_at)
                    && expires_at as u64 > now
                {
                    revocations.push(Revocation {
                        session: id_from_cql(session),
                        user: id_from_cql(user),
                        expires_at: expires_at as u64,
                    });
                }
            }
        }
        Ok(revocations)
    }

    pub(super) async fn set_display_name_impl(
        &self,
        user: Id,
        display_name: &str,
    ) -> Result<Option<UserRecord>> {
        // Checked first: an UPDATE of a missing row would create one.
        if self.user_row(user).await?.is_none() {
            return Ok(None);
        }
        self.execute(
            &self.statements.set_display_name,
            (display_name, id_to_cql(user)),
        )
        .await?;
        Ok(self.user_row(user).await?.and_then(|row| row.into_user()))
    }

    pub(super) async fn set_password_hash_impl(&self, user: Id, hash: &str) -> Result<bool> {
        if self.user_row(user).await?.is_none() {
            return Ok(false);
        }
        self.execute(&self.statements.set_password_hash, (hash, id_to_cql(user)))
            .await?;
        Ok(true)
    }

    pub(super) async fn account_flags_impl(&self, user: Id) -> Result<AccountFlags> {
        let row: Option<(Option<bool>, Option<bool>)> = self
            .first_row(&self.statements.select_account_flags, (id_to_cql(user),))
            .await?;
        Ok(
            row.map_or_else(AccountFlags::default, |(admin, banned)| AccountFlags {
                admin: admin.unwrap_or(false),
                banned: banned.unwrap_or(false),
            }),
        )
    }

    pub(super) async fn set_admin_impl(&self, user: Id, admin: bool) -> Result<()> {
        self.execute(&self.statements.set_admin_flag, (admin, id_to_cql(user)))
            .await?;
        Ok(())
    }

    pub(super) async fn set_banned_impl(&self, user: Id, banned: bool) -> Result<()> {
        self.execute(&self.statements.set_banned_flag, (banned, id_to_cql(user)))
            .await?;
        Ok(())
    }

    pub(super) async fn insert_audit_impl(
        &self,
        events: &[AuditEvent],
        retention_ms: u64,
    ) -> Result<()> {
        let now = chat_protocol::id::now_ms();
        for event in events {
            // Kept for the retention counted from the event, not from now.
            let ttl = ttl_until(event.at.saturating_add(retention_ms), now);
            self.execute(
                &self.statements.insert_audit,
                (
                    day_of(event.at),
                    id_to_cql(event.id),
                    event.at as i64,
                    event.kind.as_str(),
                    event.actor_id.map(id_to_cql),
                    event.target_id.map(id_to_cql),
                    event.room_id.map(|room| room.to_string()),
                    event.ip.as_deref(),
                    event.detail.as_deref(),
                    ttl,
                ),
            )
            .await?;
        }
        Ok(())
    }

    pub(super) async fn audit_events_impl(
        &self,
        filter: AuditFilter,
    ) -> Result<(Vec<AuditEvent>, bool)> {
        let wanted = filter.limit as usize + 1;
        // No event is newer than now (a day of slack for clocks ahead):
        // a `before` far in the future must not walk the empty days up to
        // it, one query each.
        let now = chat_protocol::id::now_ms();
        let newest = filter
            .before
            .map_or(now, |id| id.unix_ms().min(now.saturating_add(DAY_MS)));
        let (first_day, last_day) = (day_of(newest), day_of(filter.since));
        let mut events = Vec::new();
        let mut day = first_day;
        'days: while day >= last_day {
            let mut cursor = filter
                .before
                .map_or(i64::MAX, |id| i64::try_from(id.0).unwrap_or(i64::MAX));
            loop {
                let rows: Vec<AuditRow> = self
                    .rows(&self.statements.select_audit, (day, cursor, AUDIT_SLICE))
                    .await?;
                let fetched = rows.len();
                for row in rows {
                    cursor = row.0;
                    let Some(event) = audit_from_row(row) else {
                        continue;
                    };
                    let kind_matches = filter.kind.as_ref().is_none_or(|k| *k == event.kind);
                    let user_matches = filter
                        .user
                        .is_none_or(|u| event.actor_id == Some(u) || event.target_id == Some(u));
                    if kind_matches && user_matches && event.at >= filter.since {
                        events.push(event);
                        if events.len() == wanted {
                            break 'days;
                        }
                    }
                }
                if fetched < AUDIT_SLICE as usize {
                    break;
                }
            }
            day -= 1;
        }
        let has_more = events.len() > filter.limit as usize;
        events.truncate(filter.limit as usize);
        Ok((events, has_more))
    }
}

/// The TTL of the audit rows is the prune; nothing to do here.
pub(super) fn prune_audit_noop() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_positive_and_bounded() {
        assert_eq!(
            ttl_until(1_000, 5_000),
            1,
            "already expired rows live a second"
        );
        assert_eq!(ttl_until(61_000, 1_000), 60);
        assert_eq!(ttl_of(u64::MAX), MAX_TTL_SECS as i32);
    }

    #[test]
    fn days_count_from_the_epoch() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
    }

    #[test]
    fn rows_without_kind_or_time_are_skipped() {
        let row: AuditRow = (1, None, Some("login".into()), None, None, None, None, None);
        assert!(audit_from_row(row).is_none());
    }
}
