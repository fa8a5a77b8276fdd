//! Mapping between CQL rows and the store's types, in one place so that
//! every statement reads and writes a type the same way.
//!
//! Column lists are macros (`message_columns!()` and friends) so that the
//! statement texts in `statements` are built from the very lists the row
//! structs below are derived for; the unit tests push values through the
//! driver's own serializers and deserializers with the column types of
//! `schema`, so a mismatch between Rust types, column lists and the schema
//! fails a test rather than a query.
//!
//! Rows are read leniently where a partial row can exist: CQL `UPDATE`
//! writes cells without checking the row, so a race (say, a role change of
//! a member being removed) can leave a row with some cells only. Such rows
//! decode to "absent" instead of an error: a user needs a username, a room a
//! kind, a membership a role and a join time.

use chat_protocol::{File, Id, Message, Role, Room, RoomId, RoomKind, Visibility};
use scylla::DeserializeRow;
use scylla::value::MaybeUnset;

use super::buckets::Buckets;
use super::paging::{Keyed, UnreadRow};
use crate::records::{Credentials, UserRecord};
use crate::{Result, StoreError};

// ----- scalar encodings ------------------------------------------------------

/// An id as a CQL `bigint` (bit-cast; order-preserving below 2^63).
pub(crate) fn id_to_cql(id: Id) -> i64 {
    id.0 as i64
}

pub(crate) fn id_from_cql(value: i64) -> Id {
    Id(value as u64)
}

/// A paging bound: ids at or above 2^63 would bit-cast to negative numbers,
/// and no stored id is that large, so such a bound is clamped to the top.
pub(crate) fn bound_to_cql(id: Id) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch as a CQL `bigint`.
pub(crate) fn time_to_cql(unix_ms: u64) -> i64 {
    unix_ms as i64
}

pub(crate) fn time_from_cql(value: i64) -> u64 {
    value as u64
}

/// The write timestamp (microseconds) of a message's insert and of a read
/// position: the id's own time. Writes that carry a later id win over
/// earlier ones whatever order they arrive in, and an edit or deletion
/// (stamped "now" by the server) always wins over a late retried insert.
pub(crate) fn id_write_timestamp(id: Id) -> i64 {
    (id.unix_ms().saturating_mul(1000)).min(i64::MAX as u64) as i64
}

pub(crate) fn role_to_cql(role: Role) -> &'static str {
    role.as_str()
}

pub(crate) fn role_from_cql(text: &str) -> Result<Role> {
    text.parse()
        .map_err(|()| StoreError::Internal(format!("corrupt role {text:?}")))
}

pub(crate) fn kind_to_cql(kind: RoomKind) -> &'static str {
    match kind {
        RoomKind::Group => "group",
        RoomKind::Dm => "dm",
    }
}

fn kind_from_cql(text: &str) -> Result<RoomKind> {
    match text {
        "group" => Ok(RoomKind::Group),
        "dm" => Ok(RoomKind::Dm),
        _ => Err(StoreError::Internal(format!("corrupt room kind {text:?}"))),
    }
}

pub(crate) fn visibility_to_cql(visibility: Visibility) -> &'static str {
    match visibility {
        Visibility::Public => "public",
        Visibility::Private => "private",
    }
}

fn visibility_from_cql(text: &str) -> Result<Visibility> {
    match text {
        "public" => Ok(Visibility::Public),
        "private" => Ok(Visibility::Private),
        _ => Err(StoreError::Internal(format!("corrupt visibility {text:?}"))),
    }
}

pub(crate) fn room_id_from_cql(text: &str) -> Result<RoomId> {
    text.parse()
        .map_err(|_| StoreError::Internal(format!("corrupt room id {text:?}")))
}

/// The key usernames are compared by: lower-cased with ASCII rules
/// (usernames are ASCII).
pub(crate) fn username_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

/// Characters of a username key that name its `users_by_prefix` partition.
pub(crate) const PREFIX_CHARS: usize = 2;

/// The `users_by_prefix` partition of a username key: its first
/// [`PREFIX_CHARS`] characters (all of it, if shorter).
pub(crate) fn prefix_partition(key: &str) -> &str {
    match key.char_indices().nth(PREFIX_CHARS) {
        Some((end, _)) => &key[..end],
        None => key,
    }
}

/// The exclusive upper bound of the strings starting with `prefix`: the
/// prefix followed by the greatest code point, which sorts (as UTF-8 bytes,
/// like CQL `text`) after every string that starts with the prefix.
pub(crate) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// A value for an INSERT: set, or left unset (no cell, and no tombstone,
/// unlike a null).
fn set_or_unset<T>(value: Option<T>) -> MaybeUnset<T> {
    value.map_or(MaybeUnset::Unset, MaybeUnset::Set)
}

// ----- users -----------------------------------------------------------------

/// The columns of [`UserRow`].
macro_rules! user_columns {
    () => {
        "id, username, display_name, password_hash, created_at, last_seen_at"
    };
}
pub(crate) use user_columns;

#[derive(Debug, DeserializeRow)]
pub(crate) struct UserRow {
    id: i64,
    username: Option<String>,
    display_name: Option<String>,
    password_hash: Option<String>,
    created_at: Option<i64>,
    last_seen_at: Option<i64>,
}

impl UserRow {
    /// The user with their password hash; `None` for a partial row (a
    /// presence update of an unknown id).
    pub(crate) fn into_credentials(self) -> Option<Credentials> {
        let (Some(username), Some(created_at)) = (self.username, self.created_at) else {
            return None;
        };
        Some(Credentials {
            user: UserRecord {
                id: id_from_cql(self.id),
                username,
                display_name: self.display_name.unwrap_or_default(),
                created_at: time_from_cql(created_at),
                last_seen_at: self.last_seen_at.map(time_from_cql),
            },
            password_hash: self.password_hash.unwrap_or_default(),
        })
    }

    pub(crate) fn into_user(self) -> Option<UserRecord> {
        self.into_credentials().map(|credentials| credentials.user)
    }
}

/// The values of `INSERT INTO users` (the columns of [`UserRow`] but the
/// last, which a new user has none of).
pub(crate) type UserValues = (i64, String, String, String, i64);

pub(crate) fn user_values(user: &crate::records::NewUser) -> UserValues {
    (
        id_to_cql(user.id),
        user.username.clone(),
        user.display_name.clone(),
        user.password_hash.clone(),
        time_to_cql(user.created_at),
    )
}

// ----- rooms and members -----------------------------------------------------

/// The columns of [`RoomRow`].
macro_rules! room_columns {
    () => {
        "room_id, kind, name, visibility, owner_id, created_at, member_count"
    };
}
pub(crate) use room_columns;

#[derive(Debug, DeserializeRow)]
pub(crate) struct RoomRow {
    room_id: String,
    kind: Option<String>,
    name: Option<String>,
    visibility: Option<String>,
    owner_id: Option<i64>,
    created_at: Option<i64>,
    member_count: Option<i32>,
}

impl RoomRow {
    /// The room; `None` for a partial row.
    pub(crate) fn decode(self) -> Result<Option<Room>> {
        let (Some(kind), Some(created_at)) = (self.kind, self.created_at) else {
            return Ok(None);
        };
        Ok(Some(Room {
            id: room_id_from_cql(&self.room_id)?,
            kind: kind_from_cql(&kind)?,
            name: self.name.unwrap_or_default(),
            visibility: match self.visibility {
                Some(visibility) => visibility_from_cql(&visibility)?,
                None => Visibility::default(),
            },
            owner_id: self.owner_id.map(id_from_cql),
            created_at: time_from_cql(created_at),
            member_count: u32::try_from(self.member_count.unwrap_or(0)).unwrap_or(0),
            max_members: None,
        }))
    }
}

/// The values of the room INSERT: [`room_columns!`], then the creation
/// token and the bucket window in milliseconds.
pub(crate) type RoomValues = (
    String,
    String,
    String,
    String,
    Option<i64>,
    i64,
    i32,
    i64,
    i64,
);

pub(crate) fn room_values(
    room: &crate::records::NewRoom,
    member_count: usize,
    creation_token: i64,
    buckets: &Buckets,
) -> RoomValues {
    (
        room.id.to_string(),
        kind_to_cql(room.kind).to_owned(),
        room.name.clone(),
        visibility_to_cql(room.visibility).to_owned(),
        room.owner_id.map(id_to_cql),
        time_to_cql(room.created_at),
        i32::try_from(member_count).unwrap_or(i32::MAX),
        creation_token,
        i64::try_from(buckets.window_ms()).unwrap_or(i64::MAX),
    )
}

/// A number no other creation attempt is likely to pick: std's
/// `RandomState` is seeded from the OS, mixed with a counter and the clock.
pub(crate) fn creation_token() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() as i64
}

/// The columns of [`MemberRow`].
macro_rules! member_columns {
    () => {
        "user_id, role, joined_at"
    };
}
pub(crate) use member_columns;

/// A row of `room_members`.
#[derive(Debug, DeserializeRow)]
pub(crate) struct MemberRow {
    user_id: i64,
    role: Option<String>,
    joined_at: Option<i64>,
}

impl MemberRow {
    /// The member's id, role and join time; `None` for a partial row.
    pub(crate) fn decode(self) -> Result<Option<(Id, Role, u64)>> {
        let (Some(role), Some(joined_at)) = (self.role, self.joined_at) else {
            return Ok(None);
        };
        Ok(Some((
            id_from_cql(self.user_id),
            role_from_cql(&role)?,
            time_from_cql(joined_at),
        )))
    }
}

/// The values of a `room_members` row, in the INSERT's column order.
pub(crate) type MembershipValues = (String, i64, String, i64);

pub(crate) fn membership_values(
    room: &RoomId,
    user: Id,
    role: Role,
    joined_at: u64,
) -> MembershipValues {
    (
        room.to_string(),
        id_to_cql(user),
        role_to_cql(role).to_owned(),
        time_to_cql(joined_at),
    )
}

/// The columns of [`UserRoomRow`].
macro_rules! user_room_columns {
    () => {
        "room_id, joined_at, last_read"
    };
}
pub(crate) use user_room_columns;

/// A row of `user_rooms`: the user's entry in their room list and their
/// read position.
#[derive(Debug, DeserializeRow)]
pub(crate) struct UserRoomRow {
    room_id: String,
    joined_at: Option<i64>,
    last_read: Option<i64>,
}

impl UserRoomRow {
    /// The room, whether it is listed (the user has not left it), and the
    /// read position.
    pub(crate) fn decode(self) -> Result<(RoomId, bool, Option<Id>)> {
        Ok((
            room_id_from_cql(&self.room_id)?,
            self.joined_at.is_some(),
            self.last_read.map(id_from_cql),
        ))
    }
}

/// The values of a `user_rooms` entry, in the INSERT's column order.
pub(crate) type UserRoomValues = (String, i64, i64);

pub(crate) fn user_room_values(room: &RoomId, user: Id, joined_at: u64) -> UserRoomValues {
    (room.to_string(), id_to_cql(user), time_to_cql(joined_at))
}

// ----- messages --------------------------------------------------------------

/// The columns of [`MessageRow`], which are also the columns of the message
/// INSERT, in the same order.
macro_rules! message_columns {
    () => {
        "room_id, bucket, id, sender_id, content, mentions, attachments, reply_to, client_id, created_at, edited_at, deleted"
    };
}
pub(crate) use message_columns;

/// An attachment as the CQL tuple `(id, name, size, content_type)`.
pub(crate) type FileTuple = (i64, String, i64, String);

#[derive(Debug, DeserializeRow)]
pub(crate) struct MessageRow {
    room_id: String,
    bucket: i32,
    id: i64,
    sender_id: i64,
    content: Option<String>,
    mentions: Option<Vec<i64>>,
    attachments: Option<Vec<FileTuple>>,
    reply_to: Option<i64>,
    client_id: Option<String>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted: Option<bool>,
}

impl Keyed for MessageRow {
    fn key(&self) -> Id {
        id_from_cql(self.id)
    }
}

impl MessageRow {
    /// The message. A deleted one decodes as a tombstone whatever its cells
    /// say, so an edit racing a deletion cannot show through it.
    pub(crate) fn decode(self) -> Result<Message> {
        let _ = self.bucket;
        let deleted = self.deleted.unwrap_or(false);
        let (content, mentions, attachments) = if deleted {
            (String::new(), Vec::new(), Vec::new())
        } else {
            (
                self.content.unwrap_or_default(),
                self.mentions
                    .unwrap_or_default()
                    .into_iter()
                    .map(id_from_cql)
                    .collect(),
                self.attachments
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(id, name, size, content_type)| {
                        // A file's creation time is its id's (not stored twice).
                        let id = id_from_cql(id);
                        File {
                            id,
                            name,
                            size: size as u64,
                            content_type,
                            created_at: id.unix_ms(),
                            // Not kept in message rows (the tuple predates it).
                            thumbnail_url: None,
                        }
                    })
                    .collect(),
            )
        };
        Ok(Message {
            id: id_from_cql(self.id),
            room_id: room_id_from_cql(&self.room_id)?,
            sender_id: id_from_cql(self.sender_id),
            content,
            mentions,
            attachments,
            reply_to: self.reply_to.map(id_from_cql),
            client_id: self.client_id,
            created_at: time_from_cql(self.created_at),
            edited_at: self.edited_at.map(time_from_cql),
            deleted,
        })
    }
}

/// A message encoded in [`message_columns!`] order, with `None` for what it
/// lacks (empty lists included).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MessageValues {
    pub room_id: String,
    pub bucket: i32,
    pub id: i64,
    pub sender_id: i64,
    pub content: String,
    pub mentions: Option<Vec<i64>>,
    pub attachments: Option<Vec<FileTuple>>,
    pub reply_to: Option<i64>,
    pub client_id: Option<String>,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub deleted: bool,
}

/// What the INSERT binds: the columns, then `USING TIMESTAMP`.
pub(crate) type MessageInsert = (
    String,
    i32,
    i64,
    i64,
    String,
    MaybeUnset<Vec<i64>>,
    MaybeUnset<Vec<FileTuple>>,
    MaybeUnset<i64>,
    MaybeUnset<String>,
    i64,
    MaybeUnset<i64>,
    bool,
    i64,
);

/// Mentions as a CQL list, `None` when there are none.
pub(crate) fn mentions_to_cql(mentions: &[Id]) -> Option<Vec<i64>> {
    (!mentions.is_empty()).then(|| mentions.iter().copied().map(id_to_cql).collect())
}

impl MessageValues {
    pub(crate) fn encode(message: &Message, buckets: &Buckets) -> MessageValues {
        MessageValues {
            room_id: message.room_id.to_string(),
            bucket: buckets.of(message.id),
            id: id_to_cql(message.id),
            sender_id: id_to_cql(message.sender_id),
            content: message.content.clone(),
            mentions: mentions_to_cql(&message.mentions),
            attachments: (!message.attachments.is_empty()).then(|| {
                message
                    .attachments
                    .iter()
                    .map(|file| {
                        (
                            id_to_cql(file.id),
                            file.name.clone(),
                            i64::try_from(file.size).unwrap_or(i64::MAX),
                            file.content_type.clone(),
                        )
                    })
                    .collect()
            }),
            reply_to: message.reply_to.map(id_to_cql),
            client_id: message.client_id.clone(),
            created_at: time_to_cql(message.created_at),
            edited_at: message.edited_at.map(time_to_cql),
            deleted: message.deleted,
        }
    }

    /// The bound values of the INSERT: absent values unset, and the id's
    /// time as the write timestamp.
    pub(crate) fn into_insert(self) -> MessageInsert {
        let timestamp = id_write_timestamp(id_from_cql(self.id));
        (
            self.room_id,
            self.bucket,
            self.id,
            self.sender_id,
            self.content,
            set_or_unset(self.mentions),
            set_or_unset(self.attachments),
            set_or_unset(self.reply_to),
            set_or_unset(self.client_id),
            self.created_at,
            set_or_unset(self.edited_at),
            self.deleted,
            timestamp,
        )
    }
}

/// The columns of [`UnreadColumns`].
macro_rules! unread_columns {
    () => {
        "id, sender_id, deleted"
    };
}
pub(crate) use unread_columns;

#[derive(Debug, DeserializeRow)]
pub(crate) struct UnreadColumns {
    id: i64,
    sender_id: i64,
    deleted: Option<bool>,
}

impl From<UnreadColumns> for UnreadRow {
    fn from(row: UnreadColumns) -> UnreadRow {
        UnreadRow {
            id: id_from_cql(row.id),
            sender: id_from_cql(row.sender_id),
            deleted: row.deleted.unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_bounds_bit_cast() {
        for id in [Id(0), Id(1), Id(i64::MAX as u64), Id(u64::MAX)] {
            assert_eq!(id_from_cql(id_to_cql(id)), id);
        }
        assert_eq!(bound_to_cql(Id(42)), 42);
        assert_eq!(
            bound_to_cql(Id(u64::MAX)),
            i64::MAX,
            "clamped, not negative"
        );
    }

    #[test]
    fn enums_use_their_wire_names() {
        for role in [Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(role_from_cql(role_to_cql(role)).unwrap(), role);
        }
        assert!(role_from_cql("king").is_err());
        for kind in [RoomKind::Group, RoomKind::Dm] {
            assert_eq!(kind_from_cql(kind_to_cql(kind)).unwrap(), kind);
        }
        assert!(kind_from_cql("channel").is_err());
        for visibility in [Visibility::Public, Visibility::Private] {
            assert_eq!(
                visibility_from_cql(visibility_to_cql(visibility)).unwrap(),
                visibility
            );
        }
        assert!(visibility_from_cql("secret").is_err());
        let dm = RoomId::dm(Id(9), Id(10)).unwrap();
        assert_eq!(room_id_from_cql(&dm.to_string()).unwrap(), dm);
        assert!(room_id_from_cql("dm:10:9").is_err());
    }

    #[test]
    fn username_prefix_partitions() {
        assert_eq!(username_key("AbC_d"), "abc_d");
        assert_eq!(prefix_partition("alice"), "al");
        assert_eq!(prefix_partition("al"), "al");
        assert_eq!(prefix_partition("a"), "a");
        assert_eq!(prefix_partition(""), "");
        assert_eq!(prefix_partition("éa_b"), "éa", "characters, not bytes");
        let end = prefix_end("ab_");
        assert!("ab_" < end.as_str() && "ab_zzz" < end.as_str());
        assert!(end.as_str() < "ab`", "'`' sorts after '_'");
    }

    #[test]
    fn write_timestamps_follow_the_id_clock() {
        let id = Id::first_at(chat_protocol::id::EPOCH_MS + 1_234);
        assert_eq!(
            id_write_timestamp(id),
            ((chat_protocol::id::EPOCH_MS + 1_234) * 1000) as i64
        );
    }

    #[test]
    fn absent_values_are_unset_not_null() {
        let message = Message {
            id: Id::first_at(chat_protocol::id::EPOCH_MS + 5),
            room_id: RoomId::Group(Id(7)),
            sender_id: Id(3),
            content: "hi".into(),
            mentions: Vec::new(),
            attachments: Vec::new(),
            reply_to: None,
            client_id: None,
            created_at: chat_protocol::id::EPOCH_MS + 5,
            edited_at: None,
            deleted: false,
        };
        let insert = MessageValues::encode(&message, &Buckets::default()).into_insert();
        assert!(matches!(insert.5, MaybeUnset::Unset));
        assert!(matches!(insert.6, MaybeUnset::Unset));
        assert!(matches!(insert.7, MaybeUnset::Unset));
        assert!(matches!(insert.8, MaybeUnset::Unset));
        assert!(matches!(insert.10, MaybeUnset::Unset));
        assert_eq!(insert.12, id_write_timestamp(message.id));
    }

    #[test]
    fn partial_rows_decode_as_absent() {
        let ghost = UserRow {
            id: 5,
            username: None,
            display_name: None,
            password_hash: None,
            created_at: None,
            last_seen_at: Some(10),
        };
        assert_eq!(ghost.into_user(), None);
        let ghost = RoomRow {
            room_id: "5".into(),
            kind: None,
            name: None,
            visibility: None,
            owner_id: Some(1),
            created_at: None,
            member_count: None,
        };
        assert_eq!(ghost.decode().unwrap(), None);
        let left = UserRoomRow {
            room_id: "5".into(),
            joined_at: None,
            last_read: Some(99),
        };
        assert_eq!(
            left.decode().unwrap(),
            (RoomId::Group(Id(5)), false, Some(Id(99))),
            "a room left is not listed, its read position stays"
        );
        let half = MemberRow {
            user_id: 5,
            role: Some("owner".into()),
            joined_at: None,
        };
        assert_eq!(half.decode().unwrap(), None);
    }

    #[test]
    fn a_deleted_row_decodes_as_a_tombstone() {
        let row = MessageRow {
            room_id: "7".into(),
            bucket: 0,
            id: 100,
            sender_id: 3,
            content: Some("edited after the deletion".into()),
            mentions: Some(vec![4]),
            attachments: None,
            reply_to: None,
            client_id: Some("c".into()),
            created_at: 1,
            edited_at: Some(2),
            deleted: Some(true),
        };
        let message = row.decode().unwrap();
        assert!(message.deleted);
        assert_eq!(message.content, "");
        assert!(message.mentions.is_empty());
        assert_eq!(message.client_id.as_deref(), Some("c"));
    }
}
