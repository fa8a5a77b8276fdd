//! The SQL of messages: idempotent inserts, lookups, history pages, edits,
//! tombstones and unread counts.
//!
//! `messages` is clustered by `(room_id, id)`, so every query here is a
//! range of one room's rows in id order. Each page is a single SELECT, which
//! in WAL mode reads one consistent snapshot: a page can neither repeat nor
//! skip a message because of a concurrent insert, and since `before` cursors
//! strictly decrease, a walk back through history cannot either.

use chat_protocol::{Id, Message, RoomId};
use rusqlite::{Connection, OptionalExtension, Params, params};

use super::rows::{MESSAGE_COLUMNS, MessageRow, id_to_sql, mentions_json, message_at, time_to_sql};
use crate::Result;
use crate::records::{Page, PageRequest};

/// Inserts the rows, leaving any message already stored as it is.
pub(crate) fn insert_all(connection: &Connection, rows: &[MessageRow]) -> Result<()> {
    let mut statement = connection.prepare_cached(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (room_id, id) DO NOTHING"
    ))?;
    for row in rows {
        statement.execute(row.params())?;
    }
    Ok(())
}

pub(crate) fn by_id(connection: &Connection, room: &RoomId, id: Id) -> Result<Option<Message>> {
    let message = connection
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id = ?2"
        ))?
        .query_row(params![room.to_string(), id_to_sql(id)], message_at)
        .optional()?;
    Ok(message)
}

/// The newest match, should a client have reused its client id within the
/// window (the `client_id = ?` term lets SQLite use the partial index).
pub(crate) fn by_client_id(
    connection: &Connection,
    sender: Id,
    client_id: &str,
    since: Id,
) -> Result<Option<Message>> {
    let message = connection
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE sender_id = ?1 AND client_id = ?2 AND id >= ?3
             ORDER BY id DESC LIMIT 1"
        ))?
        .query_row(
            params![id_to_sql(sender), client_id, id_to_sql(since)],
            message_at,
        )
        .optional()?;
    Ok(message)
}

fn select_messages(
    connection: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Vec<Message>> {
    let messages = connection
        .prepare_cached(sql)?
        .query_map(params, message_at)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(messages)
}

/// One page, read as `limit + 1` rows so that the extra row tells whether
/// more lie beyond. Walking back (no cursor, or `before` only) reads newest
/// first and reverses; walking forward (`after`, with or without `before`)
/// reads oldest first. `has_more` looks only as far as the cursors allow: with
/// both, it says whether more lie between them. A `limit` of 0 is read as 1.
pub(crate) fn page(connection: &Connection, room: &RoomId, request: PageRequest) -> Result<Page> {
    let limit = request.limit.max(1);
    let fetch = i64::from(limit) + 1;
    let room = room.to_string();
    let columns = MESSAGE_COLUMNS;
    let (mut messages, walking_back) = match (request.before, request.after) {
        (None, None) => (
            select_messages(
                connection,
                &format!(
                    "SELECT {columns} FROM messages WHERE room_id = ?1
                     ORDER BY id DESC LIMIT ?2"
                ),
                params![room, fetch],
            )?,
            true,
        ),
        (Some(before), None) => (
            select_messages(
                connection,
                &format!(
                    "SELECT {columns} FROM messages WHERE room_id = ?1 AND id < ?2
                     ORDER BY id DESC LIMIT ?3"
                ),
                params![room, id_to_sql(before), fetch],
            )?,
            true,
        ),
        (None, Some(after)) => (
            select_messages(
                connection,
                &format!(
                    "SELECT {columns} FROM messages WHERE room_id = ?1 AND id > ?2
                     ORDER BY id ASC LIMIT ?3"
                ),
                params![room, id_to_sql(after), fetch],
            )?,
            false,
        ),
        (Some(before), Some(after)) => (
            select_messages(
                connection,
                &format!(
                    "SELECT {columns} FROM messages WHERE room_id = ?1 AND id > ?2 AND id < ?3
                     ORDER BY id ASC LIMIT ?4"
                ),
                params![room, id_to_sql(after), id_to_sql(before), fetch],
            )?,
            false,
        ),
    };
    let has_more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    if walking_back {
        messages.reverse();
    }
    Ok(Page { messages, has_more })
}

pub(crate) fn last(connection: &Connection, room: &RoomId) -> Result<Option<Message>> {
    let message = connection
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1
             ORDER BY id DESC LIMIT 1"
        ))?
        .query_row([room.to_string()], message_at)
        .optional()?;
    Ok(message)
}

/// Deleted messages are not edited: a tombstone stays empty.
pub(crate) fn edit(
    connection: &Connection,
    room: &RoomId,
    id: Id,
    content: &str,
    mentions: &[Id],
    edited_at: u64,
) -> Result<Option<Message>> {
    let message = connection
        .prepare_cached(&format!(
            "UPDATE messages SET content = ?3, mentions = ?4, edited_at = ?5
             WHERE room_id = ?1 AND id = ?2 AND deleted = 0
             RETURNING {MESSAGE_COLUMNS}"
        ))?
        .query_row(
            params![
                room.to_string(),
                id_to_sql(id),
                content,
                mentions_json(mentions)?,
                time_to_sql(edited_at),
            ],
            message_at,
        )
        .optional()?;
    Ok(message)
}

/// Empties the message in place; everything else (id, sender, times,
/// `reply_to`, `client_id`) stays, so the tombstone keeps its place in
/// history and a retried send still finds it. Deleting again rewrites the
/// same values.
pub(crate) fn delete(connection: &Connection, room: &RoomId, id: Id) -> Result<Option<Message>> {
    let message = connection
        .prepare_cached(&format!(
            "UPDATE messages SET content = '', mentions = '[]', attachments = '[]', deleted = 1
             WHERE room_id = ?1 AND id = ?2
             RETURNING {MESSAGE_COLUMNS}"
        ))?
        .query_row(params![room.to_string(), id_to_sql(id)], message_at)
        .optional()?;
    Ok(message)
}

/// Counts at most `cap` rows: the inner LIMIT stops the scan there, so a
/// room with a long unread history costs no more than `cap` rows.
pub(crate) fn unread_count(
    connection: &Connection,
    room: &RoomId,
    user: Id,
    after: Option<Id>,
    cap: u32,
) -> Result<u32> {
    let room = room.to_string();
    let count: i64 = match after {
        Some(after) => connection
            .prepare_cached(
                "SELECT count(*) FROM (
                     SELECT 1 FROM messages
                     WHERE room_id = ?1 AND id > ?2 AND sender_id <> ?3 AND deleted = 0
                     LIMIT ?4)",
            )?
            .query_row(
                params![room, id_to_sql(after), id_to_sql(user), i64::from(cap)],
                |row| row.get(0),
            )?,
        None => connection
            .prepare_cached(
                "SELECT count(*) FROM (
                     SELECT 1 FROM messages
                     WHERE room_id = ?1 AND sender_id <> ?2 AND deleted = 0
                     LIMIT ?3)",
            )?
            .query_row(params![room, id_to_sql(user), i64::from(cap)], |row| {
                row.get(0)
            })?,
    };
    // The LIMIT keeps the count within 0..=cap.
    Ok(u32::try_from(count).unwrap_or(cap).min(cap))
}
