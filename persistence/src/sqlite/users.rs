//! The SQL of users: registration, lookups, search and presence.
//!
//! Plain functions over a connection, so the same code runs on a pooled read
//! connection or inside the writer's transaction (`Transaction` derefs to
//! `Connection`); `SqliteStore` decides which.
//!
//! Usernames are matched through `username_lower`, the name lower-cased with
//! ASCII rules (usernames are ASCII), whose UNIQUE index is what makes
//! registration case-insensitively unique even under concurrent attempts.

use chat_protocol::Id;
use rusqlite::{Connection, OptionalExtension, params};

use super::errors::{is_primary_key_violation, is_unique_violation};
use super::rows::{
    USER_COLUMN_COUNT, USER_COLUMNS, id_list_json, id_to_sql, string_list_json, time_to_sql,
    user_at,
};
use crate::records::{Credentials, NewUser, UserRecord};
use crate::{Result, StoreError};

/// The key usernames are compared by.
fn username_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

pub(crate) fn insert(connection: &Connection, user: &NewUser) -> Result<UserRecord> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO users (id, username, username_lower, display_name, password_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            id_to_sql(user.id),
            user.username,
            username_key(&user.username),
            user.display_name,
            user.password_hash,
            time_to_sql(user.created_at),
        ]);
    match inserted {
        Ok(_) => Ok(UserRecord {
            id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            created_at: user.created_at,
            last_seen_at: None,
        }),
        Err(error) if is_primary_key_violation(&error) => Err(StoreError::Conflict(format!(
            "a user with id {} exists",
            user.id
        ))),
        Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict(format!(
            "username {:?} is taken",
            user.username
        ))),
        Err(error) => Err(error.into()),
    }
}

pub(crate) fn by_id(connection: &Connection, id: Id) -> Result<Option<UserRecord>> {
    let user = connection
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users AS u WHERE u.id = ?1"
        ))?
        .query_row([id_to_sql(id)], |row| user_at(row, 0))
        .optional()?;
    Ok(user)
}

pub(crate) fn by_ids(connection: &Connection, ids: &[Id]) -> Result<Vec<UserRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let users = connection
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users AS u
             WHERE u.id IN (SELECT value FROM json_each(?1))"
        ))?
        .query_map([id_list_json(ids)], |row| user_at(row, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(users)
}

pub(crate) fn credentials(connection: &Connection, username: &str) -> Result<Option<Credentials>> {
    let credentials = connection
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users AS u WHERE u.username_lower = ?1"
        ))?
        .query_row([username_key(username)], |row| {
            Ok(Credentials {
                user: user_at(row, 0)?,
                password_hash: row.get(USER_COLUMN_COUNT)?,
            })
        })
        .optional()?;
    Ok(credentials)
}

pub(crate) fn by_usernames(
    connection: &Connection,
    usernames: &[String],
) -> Result<Vec<UserRecord>> {
    if usernames.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = usernames.iter().map(|name| username_key(name)).collect();
    let users = connection
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users AS u
             WHERE u.username_lower IN (SELECT value FROM json_each(?1))"
        ))?
        .query_map([string_list_json(&keys)?], |row| user_at(row, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(users)
}

/// A range scan of the `username_lower` index rather than LIKE, so that `%`
/// and `_` in a prefix are plain characters and the index serves the query.
/// The upper bound, the prefix followed by U+10FFFF (the greatest code
/// point), sorts after every string that starts with the prefix.
pub(crate) fn search(connection: &Connection, prefix: &str, limit: u32) -> Result<Vec<UserRecord>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let low = username_key(prefix);
    let high = format!("{low}\u{10FFFF}");
    let users = connection
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users AS u
             WHERE u.username_lower >= ?1 AND u.username_lower < ?2
             ORDER BY u.username_lower
             LIMIT ?3"
        ))?
        .query_map(params![low, high, i64::from(limit)], |row| user_at(row, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(users)
}

/// Unknown users are ignored: presence is best-effort bookkeeping.
pub(crate) fn set_last_seen(connection: &Connection, user: Id, at: u64) -> Result<()> {
    connection
        .prepare_cached("UPDATE users SET last_seen_at = ?2 WHERE id = ?1")?
        .execute(params![id_to_sql(user), time_to_sql(at)])?;
    Ok(())
}
