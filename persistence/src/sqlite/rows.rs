//! Mapping between SQLite rows and the store's types.
//!
//! Kept apart from the SQL so that every query reads and writes a type the
//! same way: the column lists and the functions reading them live side by
//! side, and a column added here shows up in every query that selects it.
//!
//! Encodings:
//! - ids (`u64`) are bit-cast to SQLite's `i64` and back. The round trip is
//!   lossless for every value, and ordering is preserved below 2^63, which
//!   holds for every Snowflake minted before about 2093;
//! - times (milliseconds since the Unix epoch) likewise;
//! - room ids in their canonical string form, enums by their wire names;
//! - mentions and attachments as JSON arrays (ids as decimal strings, as in
//!   the protocol's JSON).
//!
//! A value that does not decode (a corrupt file, or a newer build's data)
//! becomes a conversion error, which the store reports as `Internal`.

use chat_protocol::{File, Id, Message, Role, Room, RoomId, RoomKind, Visibility};
use rusqlite::Row;
use rusqlite::types::Type;

use crate::records::{FileRecord, Membership, UserRecord};
use crate::{Result, StoreError};

/// An id as SQLite stores it.
pub(crate) fn id_to_sql(id: Id) -> i64 {
    id.0 as i64
}

/// An id as SQLite stored it.
pub(crate) fn id_from_sql(value: i64) -> Id {
    Id(value as u64)
}

/// A time (milliseconds since the Unix epoch) as SQLite stores it.
pub(crate) fn time_to_sql(unix_ms: u64) -> i64 {
    unix_ms as i64
}

fn time_from_sql(value: i64) -> u64 {
    value as u64
}

/// A JSON array of ids as SQLite integers, for `IN (SELECT value FROM
/// json_each(?))`: one statement and one parameter however many ids.
pub(crate) fn id_list_json(ids: &[Id]) -> String {
    let items: Vec<String> = ids.iter().map(|&id| id_to_sql(id).to_string()).collect();
    format!("[{}]", items.join(","))
}

/// A JSON array of strings, for `IN (SELECT value FROM json_each(?))`.
pub(crate) fn string_list_json(items: &[String]) -> Result<String> {
    serde_json::to_string(items)
        .map_err(|error| StoreError::Internal(format!("cannot encode a list of strings: {error}")))
}

pub(crate) fn role_to_sql(role: Role) -> &'static str {
    role.as_str()
}

pub(crate) fn kind_to_sql(kind: RoomKind) -> &'static str {
    match kind {
        RoomKind::Group => "group",
        RoomKind::Dm => "dm",
    }
}

pub(crate) fn visibility_to_sql(visibility: Visibility) -> &'static str {
    match visibility {
        Visibility::Public => "public",
        Visibility::Private => "private",
    }
}

/// A stored value that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("corrupt {what}: {value:?}")]
struct CorruptValue {
    what: &'static str,
    value: String,
}

/// Reads a text column and decodes it with `decode`, reporting a value it
/// refuses as a conversion error of that column.
fn decoded<T>(
    row: &Row<'_>,
    index: usize,
    what: &'static str,
    decode: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    decode(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            Box::new(CorruptValue { what, value: text }),
        )
    })
}

pub(crate) fn id_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Id> {
    row.get(index).map(id_from_sql)
}

fn optional_id_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Id>> {
    row.get::<_, Option<i64>>(index)
        .map(|value| value.map(id_from_sql))
}

pub(crate) fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    row.get(index).map(time_from_sql)
}

fn optional_time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    row.get::<_, Option<i64>>(index)
        .map(|value| value.map(time_from_sql))
}

pub(crate) fn room_id_at(row: &Row<'_>, index: usize) -> rusqlite::Result<RoomId> {
    decoded(row, index, "room id", |text| text.parse().ok())
}

pub(crate) fn role_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Role> {
    decoded(row, index, "role", |text| text.parse().ok())
}

/// The columns of a user, from `users AS u`.
pub(crate) const USER_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.created_at, u.last_seen_at";
/// How many columns [`USER_COLUMNS`] has, to find what follows them.
pub(crate) const USER_COLUMN_COUNT: usize = 5;

/// A user from [`USER_COLUMNS`] starting at column `first`.
pub(crate) fn user_at(row: &Row<'_>, first: usize) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: id_at(row, first)?,
        username: row.get(first + 1)?,
        display_name: row.get(first + 2)?,
        created_at: time_at(row, first + 3)?,
        last_seen_at: optional_time_at(row, first + 4)?,
    })
}

/// The columns of a room with its member count, from `rooms AS r`.
pub(crate) const ROOM_COLUMNS: &str = "r.id, r.kind, r.name, r.visibility, r.owner_id, r.created_at, \
     (SELECT count(*) FROM members AS counted WHERE counted.room_id = r.id), r.max_members";
/// How many columns [`ROOM_COLUMNS`] has.
pub(crate) const ROOM_COLUMN_COUNT: usize = 8;

/// A room from [`ROOM_COLUMNS`] starting at column `first`.
pub(crate) fn room_at(row: &Row<'_>, first: usize) -> rusqlite::Result<Room> {
    Ok(Room {
        id: room_id_at(row, first)?,
        kind: decoded(row, first + 1, "room kind", |text| match text {
            "group" => Some(RoomKind::Group),
            "dm" => Some(RoomKind::Dm),
            _ => None,
        })?,
        name: row.get(first + 2)?,
        visibility: decoded(row, first + 3, "visibility", |text| match text {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        })?,
        owner_id: optional_id_at(row, first + 4)?,
        created_at: time_at(row, first + 5)?,
        member_count: row.get(first + 6)?,
        max_members: row.get(first + 7)?,
    })
}

/// The columns of a membership, from `members AS m`.
pub(crate) const MEMBERSHIP_COLUMNS: &str = "m.role, m.last_read, m.joined_at";

/// A membership from [`MEMBERSHIP_COLUMNS`] starting at column `first`.
pub(crate) fn membership_at(row: &Row<'_>, first: usize) -> rusqlite::Result<Membership> {
    Ok(Membership {
        role: role_at(row, first)?,
        last_read: optional_id_at(row, first + 1)?,
        joined_at: time_at(row, first + 2)?,
    })
}

/// The columns of a message, in the order [`message_at`] reads them.
pub(crate) const MESSAGE_COLUMNS: &str = "room_id, id, sender_id, content, mentions, attachments, \
     reply_to, client_id, created_at, edited_at, deleted";

/// A message from [`MESSAGE_COLUMNS`].
pub(crate) fn message_at(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        room_id: room_id_at(row, 0)?,
        id: id_at(row, 1)?,
        sender_id: id_at(row, 2)?,
        content: row.get(3)?,
        mentions: decoded(row, 4, "mentions", |json| {
            serde_json::from_str::<Vec<Id>>(json).ok()
        })?,
        attachments: decoded(row, 5, "attachments", |json| {
            serde_json::from_str::<Vec<File>>(json).ok()
        })?,
        reply_to: optional_id_at(row, 6)?,
        client_id: row.get(7)?,
        created_at: time_at(row, 8)?,
        edited_at: optional_time_at(row, 9)?,
        deleted: row.get(10)?,
    })
}

/// The encoded mentions of a message.
pub(crate) fn mentions_json(mentions: &[Id]) -> Result<String> {
    serde_json::to_string(mentions)
        .map_err(|error| StoreError::Internal(format!("cannot encode mentions: {error}")))
}

/// A message encoded for an INSERT, in [`MESSAGE_COLUMNS`] order. Built on
/// the caller's task so that the writer thread only runs SQL.
#[derive(Debug)]
pub(crate) struct MessageRow {
    room_id: String,
    id: i64,
    sender_id: i64,
    content: String,
    mentions: String,
    attachments: String,
    reply_to: Option<i64>,
    client_id: Option<String>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted: bool,
}

impl MessageRow {
    pub(crate) fn encode(message: &Message) -> Result<MessageRow> {
        Ok(MessageRow {
            room_id: message.room_id.to_string(),
            id: id_to_sql(message.id),
            sender_id: id_to_sql(message.sender_id),
            content: message.content.clone(),
            mentions: mentions_json(&message.mentions)?,
            attachments: serde_json::to_string(&message.attachments).map_err(|error| {
                StoreError::Internal(format!("cannot encode attachments: {error}"))
            })?,
            reply_to: message.reply_to.map(id_to_sql),
            client_id: message.client_id.clone(),
            created_at: time_to_sql(message.created_at),
            edited_at: message.edited_at.map(time_to_sql),
            deleted: message.deleted,
        })
    }

    /// The values to bind, in [`MESSAGE_COLUMNS`] order.
    pub(crate) fn params(&self) -> [&dyn rusqlite::ToSql; 11] {
        [
            &self.room_id,
            &self.id,
            &self.sender_id,
            &self.content,
            &self.mentions,
            &self.attachments,
            &self.reply_to,
            &self.client_id,
            &self.created_at,
            &self.edited_at,
            &self.deleted,
        ]
    }
}

/// The columns [`file_at`] reads, of `files`.
pub(crate) const FILE_COLUMNS: &str =
    "id, uploader, name, size, content_type, checksum, created_at, thumbnail";

/// A file from the columns [`FILE_COLUMNS`].
pub(crate) fn file_at(row: &Row<'_>) -> rusqlite::Result<FileRecord> {
    Ok(FileRecord {
        id: id_at(row, 0)?,
        uploader: id_at(row, 1)?,
        name: row.get(2)?,
        size: row.get::<_, i64>(3)? as u64,
        content_type: row.get(4)?,
        checksum: row.get(5)?,
        created_at: time_at(row, 6)?,
        thumbnail: row.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_i64_and_keep_their_order_below_2_pow_63() {
        for raw in [0, 1, i64::MAX as u64, u64::MAX] {
            assert_eq!(id_from_sql(id_to_sql(Id(raw))), Id(raw));
        }
        let (older, newer) = (Id(1 << 40), Id((1 << 62) + 5));
        assert!(id_to_sql(older) < id_to_sql(newer));
    }

    #[test]
    fn id_lists_are_json_arrays_of_integers() {
        assert_eq!(id_list_json(&[]), "[]");
        assert_eq!(id_list_json(&[Id(1), Id(22)]), "[1,22]");
    }
}
