//! The store conformance suite against [`SqliteStore`], each case on a fresh
//! database file in its own temporary directory, plus what only SQLite has:
//! a file that outlives the process, several processes on one file, and the
//! group-commit writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_persistence::conformance::StoreUnderTest;
use chat_persistence::sqlite::{SqliteOptions, SqliteStore};
use chat_persistence::{NewRoom, NewUser, PageRequest, Store, StoreError};
use chat_protocol::id::now_ms;
use chat_protocol::{Id, IdGenerator, Message, Role, RoomId, RoomKind, Visibility};

/// A store on a fresh file; the directory lives as long as the store.
async fn fresh_store() -> StoreUnderTest {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(directory.path().join("chat.db"), SqliteOptions::default())
        .expect("open a fresh SQLite store");
    StoreUnderTest::keeping_alive(Arc::new(store), directory)
}

mod conformance {
    chat_persistence::store_conformance_tests!(super::fresh_store);
}

// ----- SQLite-specific ------------------------------------------------------

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("open the SQLite store")
}

fn new_user(ids: &IdGenerator, username: &str) -> NewUser {
    NewUser {
        id: ids.next_id(),
        username: username.to_owned(),
        display_name: username.to_uppercase(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: now_ms(),
    }
}

fn message(ids: &IdGenerator, room: RoomId, sender: Id, content: &str) -> Message {
    let id = ids.next_id();
    Message {
        id,
        room_id: room,
        sender_id: sender,
        content: content.to_owned(),
        mentions: vec![sender],
        attachments: Vec::new(),
        reply_to: None,
        client_id: Some(format!("c-{id}")),
        created_at: id.unix_ms(),
        edited_at: None,
        deleted: false,
    }
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let directory = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: open creates it.
    let path = directory.path().join("nested").join("chat.db");
    let ids = IdGenerator::new(1);

    let store = open(&path);
    let alice = store.create_user(new_user(&ids, "Alice")).await.unwrap();
    let bob = store.create_user(new_user(&ids, "bob")).await.unwrap();
    store.set_last_seen(bob.id, 1_234).await.unwrap();
    let room = store
        .create_room(
            NewRoom {
                id: RoomId::Group(ids.next_id()),
                kind: RoomKind::Group,
                name: "general".into(),
                visibility: Visibility::Public,
                owner_id: Some(alice.id),
                created_at: now_ms(),
                max_members: None,
            },
            &[(alice.id, Role::Owner), (bob.id, Role::Member)],
        )
        .await
        .unwrap();
    let history: Vec<Message> = (0..5)
        .map(|n| message(&ids, room.id, alice.id, &format!("hello {n}")))
        .collect();
    store.insert_messages(&history).await.unwrap();
    store
        .edit_message(&room.id, history[1].id, "edited", &[], 99)
        .await
        .unwrap();
    store.delete_message(&room.id, history[2].id).await.unwrap();
    assert!(
        store
            .mark_read(&room.id, bob.id, history[3].id)
            .await
            .unwrap()
    );
    let messages_before = store
        .messages(
            &room.id,
            PageRequest {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = open(&path);
    assert_eq!(store.user(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(
        store
            .credentials("BOB")
            .await
            .unwrap()
            .unwrap()
            .user
            .last_seen_at,
        Some(1_234)
    );
    assert_eq!(store.room(&room.id).await.unwrap(), Some(room.clone()));
    let membership = store.membership(&room.id, bob.id).await.unwrap().unwrap();
    assert_eq!(membership.role, Role::Member);
    assert_eq!(membership.last_read, Some(history[3].id));
    let messages_after = store
        .messages(
            &room.id,
            PageRequest {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(messages_after, messages_before);
    assert_eq!(messages_after.messages.len(), 5);
    assert_eq!(messages_after.messages[1].content, "edited");
    assert!(messages_after.messages[2].deleted);
    // Still writable, with the schema intact (the username index included).
    assert!(matches!(
        store.create_user(new_user(&ids, "ALICE")).await,
        Err(StoreError::Conflict(_))
    ));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_both_write_everything() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("shared.db");
    // As two processes would: each with its own writer thread and pool.
    let (first, second) = {
        let path_a = path.clone();
        let path_b = path.clone();
        let a = tokio::task::spawn_blocking(move || open(&path_a));
        let b = tokio::task::spawn_blocking(move || open(&path_b));
        (Arc::new(a.await.unwrap()), Arc::new(b.await.unwrap()))
    };
    let room = RoomId::Group(Id(42));
    let mut writes = Vec::new();
    for (worker, store) in [(1u16, first.clone()), (2u16, second.clone())] {
        let ids = Arc::new(IdGenerator::new(worker));
        for n in 0..200 {
            let (store, ids) = (store.clone(), ids.clone());
            writes.push(tokio::spawn(async move {
                let sent = message(&ids, room, Id(u64::from(worker)), &format!("{worker}/{n}"));
                store.insert_messages(&[sent]).await
            }));
        }
    }
    for write in writes {
        write.await.unwrap().expect("every write succeeds");
    }

    for store in [&first, &second] {
        let page = store
            .messages(
                &room,
                PageRequest {
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 400, "no write was lost");
        assert!(!page.has_more);
    }
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn writes_after_close_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let store = open(&directory.path().join("chat.db"));
    let ids = IdGenerator::new(3);
    let user = store.create_user(new_user(&ids, "early")).await.unwrap();
    store.close().await;
    store.close().await;

    let refused = store.create_user(new_user(&ids, "late")).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(reason)) if reason == "store is closed"),
        "{refused:?}"
    );
    assert!(matches!(
        store.set_last_seen(user.id, 1).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    // Reads still answer, from the data written before closing.
    assert_eq!(store.user(user.id).await.unwrap(), Some(user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_does_not_undo_its_batch() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("chat.db");
    let store = Arc::new(open(&path));
    let ids = Arc::new(IdGenerator::new(4));
    store.create_user(new_user(&ids, "taken")).await.unwrap();

    // Another "process" holds the write lock, so the writer thread stalls on
    // BEGIN with its first job while the rest queue up behind it: they are
    // then committed together as one batch.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let names = ["first", "TAKEN", "second", "third", "Taken", "fourth"];
    let attempts: Vec<_> = names
        .iter()
        .map(|name| {
            let (store, new) = (store.clone(), new_user(&ids, name));
            tokio::spawn(async move { (new.clone(), store.create_user(new).await) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocker.execute_batch("COMMIT").unwrap();

    for attempt in attempts {
        let (new, outcome) = attempt.await.unwrap();
        let stored = store.user(new.id).await.unwrap();
        if new.username.eq_ignore_ascii_case("taken") {
            assert!(
                matches!(outcome, Err(StoreError::Conflict(_))),
                "{outcome:?}"
            );
            assert_eq!(stored, None);
        } else {
            let created = outcome.expect("the other writes of the batch succeed");
            assert_eq!(stored, Some(created), "and are durable");
        }
    }
    store.close().await;
}
