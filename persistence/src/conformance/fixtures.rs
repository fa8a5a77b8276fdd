//! Fresh data for the cases: users, rooms and messages with unique
//! names and ids, so that cases never collide in a shared store, and the
//! small helpers the cases share.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_protocol::id::{MAX_WORKER_ID, now_ms};
use chat_protocol::{File, Id, IdGenerator, Message, Role, Room, RoomId, RoomKind, Visibility};

use crate::records::*;
use crate::{Store, StoreError};

/// A random number: std's `RandomState` is seeded from the OS per process
/// (and varies per instance), mixed with a counter and the clock.
pub(super) fn random_u64() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    hasher.finish()
}

/// Twelve random lower-case letters and digits, to make names unique in a
/// shared store.
pub(super) fn unique_suffix() -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut bits = random_u64();
    (0..12)
        .map(|_| {
            let digit = ALPHABET[(bits % 36) as usize] as char;
            bits /= 36;
            digit
        })
        .collect()
}

/// A fresh Snowflake. One generator per process, with a random worker id so
/// that concurrent test runs against one shared store are unlikely to mint
/// the same ids.
pub(super) fn next_id() -> Id {
    static GENERATOR: OnceLock<IdGenerator> = OnceLock::new();
    GENERATOR
        .get_or_init(|| IdGenerator::new((random_u64() % (u64::from(MAX_WORKER_ID) + 1)) as u16))
        .next_id()
}

pub(super) fn new_user_record(username: String) -> NewUser {
    NewUser {
        id: next_id(),
        display_name: format!("{username} (display)"),
        username,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${}$hash", unique_suffix()),
        created_at: now_ms(),
    }
}

/// A new user named `<tag>_<random suffix>`.
pub(super) async fn new_user(store: &dyn Store, tag: &str) -> UserRecord {
    let username = format!("{tag}_{}", unique_suffix());
    create_user_named(store, &username).await
}

pub(super) async fn create_user_named(store: &dyn Store, username: &str) -> UserRecord {
    store
        .create_user(new_user_record(username.to_owned()))
        .await
        .expect("create_user")
}

pub(super) fn new_group_room(owner: Option<Id>) -> NewRoom {
    NewRoom {
        id: RoomId::Group(next_id()),
        kind: RoomKind::Group,
        name: format!("room {}", unique_suffix()),
        visibility: Visibility::Public,
        owner_id: owner,
        created_at: now_ms(),
        max_members: None,
    }
}

pub(super) fn new_dm_room(a: Id, b: Id) -> NewRoom {
    NewRoom {
        id: RoomId::dm(a, b).expect("two distinct users"),
        kind: RoomKind::Dm,
        name: String::new(),
        visibility: Visibility::Private,
        owner_id: None,
        created_at: now_ms(),
        max_members: None,
    }
}

/// A new public group room owned by `owner`, with `others` as members.
pub(super) async fn new_group(store: &dyn Store, owner: Id, others: &[(Id, Role)]) -> Room {
    let mut members = vec![(owner, Role::Owner)];
    members.extend_from_slice(others);
    store
        .create_room(new_group_room(Some(owner)), &members)
        .await
        .expect("create_room")
}

/// A plain message with a fresh id.
pub(super) fn text_message(room: RoomId, sender: Id, content: &str) -> Message {
    plain_message(next_id(), room, sender, content)
}

/// A plain message (no mentions, attachments or reply) with the id given,
/// created when its id says: for suites that mint their own ids, such as
/// messages dated in the past.
pub fn plain_message(id: Id, room: RoomId, sender: Id, content: &str) -> Message {
    Message {
        id,
        room_id: room,
        sender_id: sender,
        content: content.to_owned(),
        mentions: Vec::new(),
        attachments: Vec::new(),
        reply_to: None,
        client_id: None,
        created_at: id.unix_ms(),
        edited_at: None,
        deleted: false,
    }
}

/// A file as a message carries it, with a fresh id.
pub(super) fn attachment(name: &str, size: u64, content_type: &str) -> File {
    let id = next_id();
    File {
        id,
        name: name.to_owned(),
        size,
        content_type: content_type.to_owned(),
        created_at: id.unix_ms(),
        thumbnail_url: None,
    }
}

/// A file record of `uploader` with a fresh id.
pub(super) fn file_record(uploader: Id, size: u64) -> FileRecord {
    let id = next_id();
    FileRecord {
        id,
        uploader,
        name: format!("file-{}.bin", unique_suffix()),
        size,
        content_type: "application/octet-stream".into(),
        checksum: format!("{:064x}", random_u64()),
        created_at: id.unix_ms(),
        thumbnail: size.is_multiple_of(2),
    }
}

/// `count` messages with increasing ids, stored.
pub(super) async fn stored_history(
    store: &dyn Store,
    room: RoomId,
    sender: Id,
    count: usize,
) -> Vec<Message> {
    let history: Vec<Message> = (0..count)
        .map(|n| text_message(room, sender, &format!("message {n}")))
        .collect();
    store
        .insert_messages(&history)
        .await
        .expect("insert_messages");
    history
}

pub(super) fn ids_of(messages: &[Message]) -> Vec<Id> {
    messages.iter().map(|message| message.id).collect()
}

pub(super) fn sorted_by_id(mut users: Vec<UserRecord>) -> Vec<UserRecord> {
    users.sort_by_key(|user| user.id);
    users
}

/// The first page of `room`'s history without cursors: its newest `limit`
/// messages, oldest first.
pub(super) async fn newest_page(store: &dyn Store, room: RoomId, limit: u32) -> Page {
    store
        .messages(
            &room,
            PageRequest {
                limit,
                ..PageRequest::default()
            },
        )
        .await
        .expect("messages")
}

pub(super) async fn page(
    store: &dyn Store,
    room: RoomId,
    before: Option<&Message>,
    after: Option<&Message>,
    limit: u32,
) -> (Vec<Id>, bool) {
    let page = store
        .messages(
            &room,
            PageRequest {
                before: before.map(|message| message.id),
                after: after.map(|message| message.id),
                limit,
            },
        )
        .await
        .expect("messages");
    assert!(
        page.messages.iter().all(|message| message.room_id == room),
        "a page holds only its room's messages"
    );
    (ids_of(&page.messages), page.has_more)
}

pub(super) fn is_conflict<T: std::fmt::Debug>(outcome: &Result<T, StoreError>) -> bool {
    matches!(outcome, Err(StoreError::Conflict(_)))
}
