//! The store conformance suite against [`ScyllaStore`], when a cluster is
//! named by `CHAT_TEST_SCYLLA_NODES` (comma-separated `host:port`):
//!
//! ```text
//! docker run --rm -d -p 9042:9042 scylladb/scylla --smp 1
//! CHAT_TEST_SCYLLA_NODES=127.0.0.1:9042 cargo test -p chat-persistence --test scylla_conformance
//! ```
//!
//! Every case runs in the shared keyspace `chat_test` (replication 1): the
//! suite makes its own users, rooms and ids and never assumes an empty
//! store. Without the variable when compiling (see `build.rs`), the cases
//! that need a cluster are marked ignored, so that `cargo test` reports them
//! as ignored, with the reason, rather than as passed; CI (which has no
//! ScyllaDB) still builds this file.

use std::sync::Arc;

use chat_persistence::conformance::StoreUnderTest;
use chat_persistence::scylla::{Replication, ScyllaOptions, ScyllaStore};

/// The variable naming the test cluster.
const NODES_VARIABLE: &str = "CHAT_TEST_SCYLLA_NODES";

/// Whether this process has created the schema yet. Tokio's mutex works
/// across the per-test runtimes; the schema is created once per process.
static MIGRATED: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);

fn options(nodes: Vec<String>) -> ScyllaOptions {
    ScyllaOptions {
        nodes,
        keyspace: "chat_test".into(),
        replication: Replication::Simple { factor: 1 },
        allow_replication_factor_one: true,
        ..ScyllaOptions::default()
    }
}

/// The configured nodes. The cases that call this are ignored unless the
/// variable was set at build time; run anyway (`--include-ignored`), they
/// fail rather than pass without a cluster.
fn test_nodes() -> Vec<String> {
    let nodes: Vec<String> = std::env::var(NODES_VARIABLE)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        !nodes.is_empty(),
        "{NODES_VARIABLE} is not set: name a live ScyllaDB (host:port, comma-separated)"
    );
    nodes
}

/// Creates the test keyspace's schema, once per process.
async fn migrated_once(nodes: &[String]) {
    let mut migrated = MIGRATED.lock().await;
    if !*migrated {
        ScyllaStore::migrate(options(nodes.to_vec()))
            .await
            .expect("migrate the test keyspace named by CHAT_TEST_SCYLLA_NODES");
        *migrated = true;
    }
}

/// A store on the test cluster (one session per case: each case runs on its
/// own runtime, which a session's background tasks are tied to).
async fn scylla_store() -> StoreUnderTest {
    let nodes = test_nodes();
    migrated_once(&nodes).await;
    let store = ScyllaStore::connect(options(nodes))
        .await
        .expect("connect to the test cluster named by CHAT_TEST_SCYLLA_NODES");
    StoreUnderTest::new(Arc::new(store))
}

mod conformance {
    chat_persistence::store_conformance_tests!(
        super::scylla_store,
        #[cfg_attr(
            not(chat_test_scylla),
            ignore = "needs a live ScyllaDB: set CHAT_TEST_SCYLLA_NODES=host:port"
        )]
    );
}

// ----- ScyllaDB-specific ----------------------------------------------------

/// An id minted `ago_ms` before now, with a random worker and sequence so
/// that runs sharing the test keyspace do not collide.
fn id_from(ago_ms: u64) -> chat_protocol::Id {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(ago_ms);
    let random = hasher.finish();
    chat_protocol::Id::from_parts(
        chat_protocol::id::now_ms() - ago_ms,
        (random % 1024) as u16,
        (random >> 10) % 4096,
    )
}

/// A group room created through `store`, holding one message from each of
/// `ages_ms` ago (oldest first).
async fn room_with_history(
    store: &ScyllaStore,
    ages_ms: &[u64],
) -> (chat_protocol::RoomId, Vec<chat_protocol::Message>) {
    use chat_persistence::Store;
    use chat_persistence::conformance::plain_message;
    use chat_persistence::records::NewRoom;
    use chat_protocol::{Message, Role, RoomId, RoomKind, Visibility};

    let owner = id_from(0);
    let oldest = ages_ms.iter().copied().max().unwrap_or(0);
    let room = store
        .create_room(
            NewRoom {
                id: RoomId::Group(id_from(oldest + 1000)),
                kind: RoomKind::Group,
                name: "bucket windows".into(),
                visibility: Visibility::Public,
                owner_id: Some(owner),
                created_at: chat_protocol::id::now_ms() - oldest - 1000,
                max_members: None,
            },
            &[(owner, Role::Owner)],
        )
        .await
        .expect("create_room");
    let messages: Vec<Message> = ages_ms
        .iter()
        .map(|ago| plain_message(id_from(*ago), room.id, owner, &format!("{ago} ms ago")))
        .collect();
    store
        .insert_messages(&messages)
        .await
        .expect("insert_messages");
    (room.id, messages)
}

/// Each room keeps the bucket window it was created with: a store opened
/// with another default creates its new rooms with that window, and either
/// store finds every message of a room created by the other (which it can
/// only do by addressing them with the room's own window).
#[tokio::test]
#[cfg_attr(
    not(chat_test_scylla),
    ignore = "needs a live ScyllaDB: set CHAT_TEST_SCYLLA_NODES=host:port"
)]
async fn each_room_keeps_its_bucket_window() {
    use chat_persistence::Store;
    use chat_persistence::records::PageRequest;

    let nodes = test_nodes();
    migrated_once(&nodes).await;
    let ten_days = ScyllaStore::connect(options(nodes.clone()))
        .await
        .expect("a store with the default window");
    let hourly = ScyllaStore::connect(ScyllaOptions {
        bucket_window: std::time::Duration::from_secs(3600),
        ..options(nodes)
    })
    .await
    .expect("a store with an hourly default window");

    const HOUR_MS: u64 = 3_600_000;
    const DAY_MS: u64 = 24 * HOUR_MS;
    for (writer, reader, ages) in [
        (&ten_days, &hourly, [40 * DAY_MS, 20 * DAY_MS, HOUR_MS]),
        (&hourly, &ten_days, [5 * HOUR_MS, 3 * HOUR_MS, HOUR_MS]),
    ] {
        let (room, messages) = room_with_history(writer, &ages).await;
        for message in &messages {
            let found = reader.message(&room, message.id).await.expect("message");
            assert_eq!(found.as_ref(), Some(message));
        }
        let page = reader
            .messages(
                &room,
                PageRequest {
                    before: None,
                    after: None,
                    limit: 10,
                },
            )
            .await
            .expect("messages");
        let ids: Vec<_> = page.messages.iter().map(|message| message.id).collect();
        let expected: Vec<_> = messages.iter().map(|message| message.id).collect();
        assert_eq!(ids, expected);
        assert_eq!(
            reader.last_message(&room).await.expect("last_message"),
            messages.last().cloned()
        );
    }
}

/// The upgrade from schema version 3: a directory row keyed the old way
/// (the name folded with ASCII rules only) is moved to the key version 4
/// folds, so the room is found by a prefix in either case, and the keyspace
/// then records version 4. Run in a keyspace of its own, which it sets back
/// to version 3 by hand.
#[tokio::test]
#[cfg_attr(
    not(chat_test_scylla),
    ignore = "needs a live ScyllaDB: set CHAT_TEST_SCYLLA_NODES=host:port"
)]
async fn the_upgrade_from_version_3_folds_directory_names() {
    use chat_persistence::conformance::directory_ids;
    use chat_persistence::records::NewRoom;
    use chat_persistence::{Store, directory_name};
    use chat_protocol::{Role, RoomId, RoomKind, Visibility};

    const KEYSPACE: &str = "chat_test_upgrade";
    let nodes = test_nodes();
    let upgraded_options = || ScyllaOptions {
        keyspace: KEYSPACE.into(),
        ..options(nodes.clone())
    };
    let store = ScyllaStore::migrate(upgraded_options())
        .await
        .expect("migrate the upgrade test keyspace");
    let owner = id_from(0);
    let tag = format!("up{}", owner.0);
    let name = format!("{} Äpfel", tag.to_ascii_uppercase());
    let room = store
        .create_room(
            NewRoom {
                id: RoomId::Group(id_from(1)),
                kind: RoomKind::Group,
                name: name.clone(),
                visibility: Visibility::Public,
                owner_id: Some(owner),
                created_at: chat_protocol::id::now_ms(),
                max_members: None,
            },
            &[(owner, Role::Owner)],
        )
        .await
        .expect("create_room");

    // What a version 3 keyspace holds for that room.
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(&nodes)
        .build()
        .await
        .expect("a session on the test cluster");
    let room_id = room.id.to_string();
    for (cql, key) in [
        (
            "DELETE FROM chat_test_upgrade.public_rooms WHERE shard = 0 AND name_lower = ? AND room_id = ?",
            directory_name(&name),
        ),
        (
            "INSERT INTO chat_test_upgrade.public_rooms (shard, name_lower, room_id) VALUES (0, ?, ?)",
            name.to_ascii_lowercase(),
        ),
    ] {
        session
            .query_unpaged(cql, (key, room_id.as_str()))
            .await
            .expect("rewrite the directory row the old way");
    }
    session
        .query_unpaged(
            "UPDATE chat_test_upgrade.settings SET value = '3' WHERE name = 'schema_version' IF value = '4'",
            (),
        )
        .await
        .expect("record version 3");
    assert!(
        directory_ids(&store, &format!("{tag} äp")).await.is_empty(),
        "the old key hides the room"
    );

    let store = ScyllaStore::migrate(upgraded_options())
        .await
        .expect("migrate upgrades version 3");
    for prefix in [
        format!("{tag} äp"),
        format!("{} ÄP", tag.to_ascii_uppercase()),
    ] {
        assert_eq!(directory_ids(&store, &prefix).await, [room.id], "{prefix}");
    }
    let (version,): (Option<String>,) = session
        .query_unpaged(
            "SELECT value FROM chat_test_upgrade.settings WHERE name = 'schema_version'",
            (),
        )
        .await
        .expect("read the version")
        .into_rows_result()
        .expect("rows")
        .single_row()
        .expect("one row");
    assert_eq!(version.as_deref(), Some("4"));
}

/// Requests a connect may send per room, from a process that has not met
/// the room yet: the room row, its member counter and the membership row
/// (`rooms_of`); the room's bucket window (once per process); the unread
/// count's index read and up to two bucket slices (the read position's
/// bucket and one more); the last message's index read and one slice.
const CONNECT_REQUESTS_PER_ROOM: u64 = 3 + 1 + 3 + 2;

/// A connect of a user in 100 rooms, counted where the store's requests
/// leave for the cluster: the room list and every room's summary (unread
/// count and last message, as the router's `rooms_of` asks for them) cost
/// at most [`CONNECT_REQUESTS_PER_ROOM`] requests a room plus one page of
/// the user's room list, whatever the rooms' history — here one recent
/// message each, and in every tenth room a message from 400 days ago too.
#[tokio::test]
#[cfg_attr(
    not(chat_test_scylla),
    ignore = "needs a live ScyllaDB: set CHAT_TEST_SCYLLA_NODES=host:port"
)]
async fn a_connect_of_a_user_in_100_rooms_sends_a_bounded_number_of_requests() {
    use chat_persistence::Store;
    use chat_protocol::limits::UNREAD_COUNT_CAP;
    use chat_protocol::{Message, Role};

    const ROOMS: usize = 100;
    const DAY_MS: u64 = 24 * 60 * 60 * 1000;
    let nodes = test_nodes();
    migrated_once(&nodes).await;
    let writer = ScyllaStore::connect(options(nodes.clone()))
        .await
        .expect("connect");
    let user = id_from(0);
    let mut rooms = Vec::with_capacity(ROOMS);
    for n in 0..ROOMS {
        let ages: &[u64] = if n % 10 == 0 {
            &[400 * DAY_MS, 1000]
        } else {
            &[1000]
        };
        let (room, messages) = room_with_history(&writer, ages).await;
        assert!(
            writer
                .add_member(&room, user, Role::Member, chat_protocol::id::now_ms())
                .await
                .expect("add_member")
        );
        // Every other room read up to its newest message.
        if n % 2 == 0 {
            let newest: &Message = messages.last().expect("a message");
            assert!(
                writer
                    .mark_read(&room, user, newest.id)
                    .await
                    .expect("mark_read")
            );
        }
        rooms.push((room, messages));
    }

    // A process that has not met these rooms: nothing cached.
    let store = ScyllaStore::connect(options(nodes)).await.expect("connect");
    let before = store.requests_sent();
    let listed = store.rooms_of(user).await.expect("rooms_of");
    assert_eq!(listed.len(), ROOMS);
    for entry in &listed {
        let unread = store
            .unread_count(
                &entry.room.id,
                user,
                entry.membership.last_read,
                UNREAD_COUNT_CAP,
            )
            .await
            .expect("unread_count");
        let last = store
            .last_message(&entry.room.id)
            .await
            .expect("last_message");
        let (_, messages) = rooms
            .iter()
            .find(|(room, _)| *room == entry.room.id)
            .expect("a room of the user");
        let expected_unread = if entry.membership.last_read.is_some() {
            0
        } else {
            messages.len() as u32
        };
        assert_eq!(unread, expected_unread);
        assert_eq!(last.as_ref(), messages.last());
    }
    let sent = store.requests_sent() - before;
    let bound = 1 + CONNECT_REQUESTS_PER_ROOM * ROOMS as u64;
    assert!(
        sent <= bound,
        "a connect of a user in {ROOMS} rooms sent {sent} requests, more than {bound}"
    );
}

/// Options are checked before anything is sent.
#[tokio::test]
async fn invalid_options_are_refused_without_a_cluster() {
    let no_nodes = ScyllaStore::connect(ScyllaOptions::default()).await;
    assert!(matches!(
        no_nodes,
        Err(chat_persistence::StoreError::Internal(_))
    ));
    let bad_keyspace = ScyllaStore::connect(ScyllaOptions {
        keyspace: "chat; DROP KEYSPACE chat".into(),
        ..options(vec!["127.0.0.1:9042".into()])
    })
    .await;
    assert!(matches!(
        bad_keyspace,
        Err(chat_persistence::StoreError::Internal(_))
    ));
}
