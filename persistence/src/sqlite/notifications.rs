//! The SQL of notifications: one row per (mentioned user, message), written
//! in the same transaction as the message, and one read mark per user.
//!
//! `notifications` is clustered by `(user_id, id)` (WITHOUT ROWID), so a
//! user's page, newest first, is one contiguous range read backwards. Read
//! state is not a flag on each row but a per-user mark (`up_to`): marking
//! "everything up to here" read is one row write however many
//! notifications it covers, and it can only move forward (`max`).

use chat_protocol::{Id, Notification, NotificationKind};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::rows::{id_at, id_to_sql, room_id_at, time_at, time_to_sql};
use crate::Result;
use crate::records::NotificationPage;

/// The columns of a notification, then whether it is read.
const COLUMNS: &str = "n.id, n.room_id, n.message_id, n.sender_id, n.created_at";

/// Stores `(user, notification)` pairs, leaving any already stored as they
/// are (a retried batch writes them again).
pub(crate) fn insert_all(
    connection: &Connection,
    notifications: &[(Id, Notification)],
) -> Result<()> {
    if notifications.is_empty() {
        return Ok(());
    }
    let mut statement = connection.prepare_cached(
        "INSERT INTO notifications (user_id, id, room_id, message_id, sender_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id, id) DO NOTHING",
    )?;
    for (user, notification) in notifications {
        statement.execute(params![
            id_to_sql(*user),
            id_to_sql(notification.id),
            notification.room_id.to_string(),
            id_to_sql(notification.message_id),
            id_to_sql(notification.sender_id),
            time_to_sql(notification.created_at),
        ])?;
    }
    Ok(())
}

/// The user's read mark, if they ever marked anything read.
fn read_mark(connection: &Connection, user: Id) -> Result<Option<Id>> {
    let mark = connection
        .prepare_cached("SELECT up_to FROM notification_reads WHERE user_id = ?1")?
        .query_row([id_to_sql(user)], |row| id_at(row, 0))
        .optional()?;
    Ok(mark)
}

fn notification_at(row: &Row<'_>, mark: Option<Id>) -> rusqlite::Result<Notification> {
    let id = id_at(row, 0)?;
    Ok(Notification {
        id,
        kind: NotificationKind::Mention,
        room_id: room_id_at(row, 1)?,
        message_id: id_at(row, 2)?,
        sender_id: id_at(row, 3)?,
        created_at: time_at(row, 4)?,
        read: mark.is_some_and(|mark| id <= mark),
    })
}

/// One page, read as `limit + 1` rows so that the extra row tells whether
/// older ones exist. Runs on one read connection, so the mark and the rows
/// come from one snapshot only if the caller's connection is in a
/// transaction; a mark moving in between only makes rows look unread that
/// were read a moment ago, which is harmless.
pub(crate) fn page(
    connection: &Connection,
    user: Id,
    before: Option<Id>,
    limit: u32,
) -> Result<NotificationPage> {
    let limit = limit.max(1);
    let mark = read_mark(connection, user)?;
    let before = before.map_or(i64::MAX, id_to_sql);
    let mut notifications: Vec<Notification> = connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications AS n
             WHERE n.user_id = ?1 AND n.id < ?2
             ORDER BY n.id DESC LIMIT ?3"
        ))?
        .query_map(
            params![id_to_sql(user), before, i64::from(limit) + 1],
            |row| notification_at(row, mark),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let has_more = notifications.len() > limit as usize;
    notifications.truncate(limit as usize);
    Ok(NotificationPage {
        notifications,
        has_more,
    })
}

/// The unread ones (above the mark), newest first, at most `cap`.
pub(crate) fn unread(connection: &Connection, user: Id, cap: u32) -> Result<Vec<Notification>> {
    let mark = read_mark(connection, user)?;
    let after = mark.map_or(i64::MIN, id_to_sql);
    let notifications = connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications AS n
             WHERE n.user_id = ?1 AND n.id > ?2
             ORDER BY n.id DESC LIMIT ?3"
        ))?
        .query_map(params![id_to_sql(user), after, i64::from(cap)], |row| {
            notification_at(row, mark)
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(notifications)
}

/// Moves the mark forward only: `max` keeps the newer of the two.
pub(crate) fn mark_read(connection: &Connection, user: Id, up_to: Id) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO notification_reads (user_id, up_to) VALUES (?1, ?2)
             ON CONFLICT (user_id) DO UPDATE SET up_to = max(up_to, excluded.up_to)",
        )?
        .execute(params![id_to_sql(user), id_to_sql(up_to)])?;
    Ok(())
}
