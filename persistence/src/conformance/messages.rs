//! Cases: messages, their idempotent insertion, paging, edits and
//! deletions.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chat_protocol::{Id, Message, Role, RoomId};

use super::fixtures::*;
use crate::Store;
use crate::records::*;

pub async fn insert_messages_is_idempotent(store: Arc<dyn Store>) {
    let sender = new_user(&*store, "sender").await;
    let room = new_group(&*store, sender.id, &[]).await;
    let batch = vec![
        text_message(room.id, sender.id, "one"),
        text_message(room.id, sender.id, "two"),
        text_message(room.id, sender.id, "three"),
    ];
    store
        .insert_messages(&batch)
        .await
        .expect("insert_messages");
    store
        .insert_messages(&batch)
        .await
        .expect("a retried batch");

    // A retry carrying different content, plus one new message.
    let mut retried: Vec<Message> = batch
        .iter()
        .map(|message| Message {
            content: "changed".into(),
            ..message.clone()
        })
        .collect();
    let fourth = text_message(room.id, sender.id, "four");
    retried.push(fourth.clone());
    store
        .insert_messages(&retried)
        .await
        .expect("a partly new batch");
    store.insert_messages(&[]).await.expect("an empty batch");

    let page = newest_page(&*store, room.id, 10).await;
    let mut expected = batch;
    expected.push(fourth);
    assert_eq!(
        page.messages, expected,
        "each message once, as first stored"
    );
    assert!(!page.has_more);
}

pub async fn a_batch_may_span_rooms(store: Arc<dyn Store>) {
    let sender = new_user(&*store, "sender").await;
    let first = new_group(&*store, sender.id, &[]).await;
    let second = new_group(&*store, sender.id, &[]).await;
    let batch = vec![
        text_message(first.id, sender.id, "a1"),
        text_message(second.id, sender.id, "b1"),
        text_message(first.id, sender.id, "a2"),
        text_message(second.id, sender.id, "b2"),
    ];
    store
        .insert_messages(&batch)
        .await
        .expect("insert_messages");
    for (room, expected) in [
        (first.id, [&batch[0], &batch[2]]),
        (second.id, [&batch[1], &batch[3]]),
    ] {
        let page = newest_page(&*store, room, 10).await;
        let expected: Vec<Message> = expected.into_iter().cloned().collect();
        assert_eq!(page.messages, expected);
    }
}

pub async fn messages_round_trip(store: Arc<dyn Store>) {
    let sender = new_user(&*store, "sender").await;
    let mentioned = new_user(&*store, "mentioned").await;
    let room = new_group(&*store, sender.id, &[(mentioned.id, Role::Member)]).await;
    let plain = text_message(room.id, sender.id, "plain");
    let full = Message {
        mentions: vec![mentioned.id, sender.id],
        attachments: vec![attachment("notes.txt", 1234, "text/plain")],
        reply_to: Some(plain.id),
        client_id: Some(format!("client-{}", unique_suffix())),
        edited_at: Some(plain.created_at + 10),
        ..text_message(room.id, sender.id, "everything, with unicode: ✓ é 😀")
    };
    store
        .insert_messages(&[plain.clone(), full.clone()])
        .await
        .expect("insert_messages");

    assert_eq!(
        store.message(&room.id, plain.id).await.expect("message"),
        Some(plain)
    );
    assert_eq!(
        store.message(&room.id, full.id).await.expect("message"),
        Some(full.clone())
    );
    assert_eq!(
        store.message(&room.id, next_id()).await.expect("message"),
        None
    );
    let elsewhere = RoomId::Group(next_id());
    assert_eq!(
        store.message(&elsewhere, full.id).await.expect("message"),
        None,
        "ids are looked up per room"
    );
}

pub async fn message_by_client_id_respects_the_window(store: Arc<dyn Store>) {
    let sender = new_user(&*store, "sender").await;
    let other = new_user(&*store, "other").await;
    let room = new_group(&*store, sender.id, &[(other.id, Role::Member)]).await;
    let client_id = format!("client-{}", unique_suffix());
    let sent = Message {
        client_id: Some(client_id.clone()),
        ..text_message(room.id, sender.id, "once")
    };
    store
        .insert_messages(std::slice::from_ref(&sent))
        .await
        .expect("insert_messages");
    let lookup = |sender: Id, client_id: String, since: Id| {
        let store = store.clone();
        async move {
            store
                .message_by_client_id(sender, &client_id, since)
                .await
                .expect("message_by_client_id")
        }
    };

    let window_start = Id::first_at(sent.id.unix_ms() - 10 * 60 * 1000);
    assert_eq!(
        lookup(sender.id, client_id.clone(), window_start).await,
        Some(sent.clone())
    );
    assert_eq!(
        lookup(sender.id, client_id.clone(), sent.id).await,
        Some(sent.clone()),
        "`since` is inclusive"
    );
    assert_eq!(
        lookup(sender.id, client_id.clone(), Id(sent.id.0 + 1)).await,
        None,
        "older than the window"
    );
    assert_eq!(
        lookup(other.id, client_id.clone(), window_start).await,
        None,
        "client ids are per sender"
    );
    assert_eq!(
        lookup(sender.id, format!("{client_id}-2"), window_start).await,
        None
    );
}

pub async fn paging_an_empty_room(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let elsewhere = text_message(RoomId::Group(next_id()), owner.id, "cursor");
    for (before, after) in [
        (None, None),
        (Some(&elsewhere), None),
        (None, Some(&elsewhere)),
        (Some(&elsewhere), Some(&elsewhere)),
    ] {
        let (ids, has_more) = page(&*store, room.id, before, after, 5).await;
        assert!(
            ids.is_empty() && !has_more,
            "before {before:?}, after {after:?}"
        );
    }
    assert_eq!(
        store.last_message(&room.id).await.expect("last_message"),
        None
    );
}

pub async fn paging_newest_first(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let history = stored_history(&*store, room.id, owner.id, 5).await;
    let all = ids_of(&history);

    assert_eq!(
        page(&*store, room.id, None, None, 5).await,
        (all.clone(), false),
        "exactly `limit` messages"
    );
    assert_eq!(
        page(&*store, room.id, None, None, 4).await,
        (all[1..].to_vec(), true),
        "one more than `limit`"
    );
    assert_eq!(
        page(&*store, room.id, None, None, 50).await,
        (all.clone(), false)
    );
    assert_eq!(
        page(&*store, room.id, None, None, 1).await,
        (all[4..].to_vec(), true)
    );
}

pub async fn paging_before(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let history = stored_history(&*store, room.id, owner.id, 10).await;
    let all = ids_of(&history);

    assert_eq!(
        page(&*store, room.id, Some(&history[9]), None, 9).await,
        (all[..9].to_vec(), false),
        "exactly `limit` older"
    );
    assert_eq!(
        page(&*store, room.id, Some(&history[9]), None, 8).await,
        (all[1..9].to_vec(), true),
        "one more than `limit`"
    );
    assert_eq!(
        page(&*store, room.id, Some(&history[5]), None, 2).await,
        (all[3..5].to_vec(), true)
    );
    assert_eq!(
        page(&*store, room.id, Some(&history[2]), None, 5).await,
        (all[..2].to_vec(), false)
    );
    assert_eq!(
        page(&*store, room.id, Some(&history[0]), None, 5).await,
        (Vec::new(), false)
    );
}

pub async fn paging_after(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let history = stored_history(&*store, room.id, owner.id, 10).await;
    let all = ids_of(&history);

    assert_eq!(
        page(&*store, room.id, None, Some(&history[0]), 9).await,
        (all[1..].to_vec(), false),
        "exactly `limit` newer"
    );
    assert_eq!(
        page(&*store, room.id, None, Some(&history[0]), 8).await,
        (all[1..9].to_vec(), true),
        "one more than `limit`"
    );
    assert_eq!(
        page(&*store, room.id, None, Some(&history[3]), 2).await,
        (all[4..6].to_vec(), true)
    );
    assert_eq!(
        page(&*store, room.id, None, Some(&history[7]), 5).await,
        (all[8..].to_vec(), false)
    );
    assert_eq!(
        page(&*store, room.id, None, Some(&history[9]), 5).await,
        (Vec::new(), false)
    );
}

pub async fn paging_between(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let history = stored_history(&*store, room.id, owner.id, 10).await;
    let all = ids_of(&history);
    let (after, before) = (Some(&history[1]), Some(&history[8]));

    // Strictly between: messages 2..=7, six of them, oldest first.
    assert_eq!(
        page(&*store, room.id, before, after, 6).await,
        (all[2..8].to_vec(), false),
        "exactly `limit` between"
    );
    assert_eq!(
        page(&*store, room.id, before, after, 5).await,
        (all[2..7].to_vec(), true),
        "one more than `limit`"
    );
    assert_eq!(
        page(&*store, room.id, before, after, 2).await,
        (all[2..4].to_vec(), true)
    );
    assert_eq!(
        page(&*store, room.id, before, after, 50).await,
        (all[2..8].to_vec(), false)
    );
    assert_eq!(
        page(&*store, room.id, Some(&history[5]), Some(&history[4]), 5).await,
        (Vec::new(), false)
    );
}

pub async fn pages_stay_consistent_with_concurrent_inserts(store: Arc<dyn Store>) {
    const PAGE: u32 = 7;
    const BATCH: usize = 3;
    const MOST_BATCHES: usize = 400;
    let owner = new_user(&*store, "owner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let stored: Arc<Mutex<Vec<Id>>> = Arc::new(Mutex::new(ids_of(
        &stored_history(&*store, room.id, owner.id, 40).await,
    )));
    let stop = Arc::new(AtomicBool::new(false));

    // Keeps appending small batches, newer ids each time, recording what is
    // durably stored.
    let inserter = tokio::spawn({
        let (store, stored, stop) = (store.clone(), stored.clone(), stop.clone());
        async move {
            for round in 0..MOST_BATCHES {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let batch: Vec<Message> = (0..BATCH)
                    .map(|n| text_message(room.id, owner.id, &format!("live {round}.{n}")))
                    .collect();
                store
                    .insert_messages(&batch)
                    .await
                    .expect("insert_messages");
                stored
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend(ids_of(&batch));
            }
        }
    });
    // Let the inserter get going so that the walk overlaps it.
    while stored
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .len()
        < 40 + 2 * BATCH
    {
        tokio::task::yield_now().await;
    }
    let stored_before_walk: Vec<Id> = stored
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();

    let mut pages: Vec<Vec<Id>> = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .messages(
                &room.id,
                PageRequest {
                    before,
                    after: None,
                    limit: PAGE,
                },
            )
            .await
            .expect("messages");
        let ids = ids_of(&page.messages);
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "a page is ascending: {ids:?}"
        );
        assert!(ids.len() <= PAGE as usize);
        if let (Some(previous), Some(newest)) =
            (pages.last().and_then(|page| page.first()), ids.last())
        {
            assert!(newest < previous, "each page is older than the one before");
        }
        before = ids.first().copied();
        pages.push(ids);
        if !page.has_more {
            break;
        }
        assert!(before.is_some(), "a page with more beyond it is not empty");
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    inserter.await.expect("inserter task");

    let seen: Vec<Id> = pages.into_iter().rev().flatten().collect();
    let unique: HashSet<Id> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no message is seen twice");
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "history is strictly ascending across pages"
    );
    let missed: Vec<&Id> = stored_before_walk
        .iter()
        .filter(|id| !unique.contains(id))
        .collect();
    assert!(
        missed.is_empty(),
        "messages stored before the walk were skipped: {missed:?}"
    );
}

pub async fn last_message_is_the_newest_even_if_deleted(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    assert_eq!(
        store.last_message(&room.id).await.expect("last_message"),
        None
    );
    let history = stored_history(&*store, room.id, owner.id, 3).await;
    assert_eq!(
        store.last_message(&room.id).await.expect("last_message"),
        Some(history[2].clone())
    );

    let tombstone = store
        .delete_message(&room.id, history[2].id)
        .await
        .expect("delete_message")
        .expect("a tombstone");
    let last = store
        .last_message(&room.id)
        .await
        .expect("last_message")
        .expect("a message");
    assert_eq!(last, tombstone);
    assert!(last.deleted);
}

pub async fn edits_replace_content_and_mentions(store: Arc<dyn Store>) {
    let sender = new_user(&*store, "sender").await;
    let first = new_user(&*store, "first").await;
    let second = new_user(&*store, "second").await;
    let room = new_group(
        &*store,
        sender.id,
        &[(first.id, Role::Member), (second.id, Role::Member)],
    )
    .await;
    let original = Message {
        mentions: vec![first.id],
        client_id: Some(format!("client-{}", unique_suffix())),
        ..text_message(room.id, sender.id, "hello @first")
    };
    store
        .insert_messages(std::slice::from_ref(&original))
        .await
        .expect("insert_messages");

    let edited_at = original.created_at + 60_000;
    let edited = store
        .edit_message(
            &room.id,
            original.id,
            "hello @second",
            &[second.id, sender.id],
            edited_at,
        )
        .await
        .expect("edit_message")
        .expect("the edited message");
    let expected = Message {
        content: "hello @second".into(),
        mentions: vec![second.id, sender.id],
        edited_at: Some(edited_at),
        ..original.clone()
    };
    assert_eq!(edited, expected);
    assert_eq!(
        store.message(&room.id, original.id).await.expect("message"),
        Some(expected)
    );

    assert_eq!(
        store
            .edit_message(&room.id, next_id(), "nothing", &[], edited_at)
            .await
            .expect("edit_message"),
        None,
        "no such message"
    );
    let tombstone = store
        .delete_message(&room.id, original.id)
        .await
        .expect("delete_message")
        .expect("a tombstone");
    assert_eq!(
        store
            .edit_message(&room.id, original.id, "back", &[first.id], edited_at + 1)
            .await
            .expect("edit_message"),
        None,
        "a deleted message cannot be edited"
    );
    assert_eq!(
        store.message(&room.id, original.id).await.expect("message"),
        Some(tombstone),
        "and stays a tombstone"
    );
}

pub async fn deletion_leaves_a_tombstone(store: Arc<dyn Store>) {
    let sender = new_user(&*store, "sender").await;
    let room = new_group(&*store, sender.id, &[]).await;
    let history = stored_history(&*store, room.id, sender.id, 3).await;
    let doomed = Message {
        mentions: vec![sender.id],
        attachments: vec![attachment("secret.pdf", 99, "application/pdf")],
        ..text_message(room.id, sender.id, "regrettable")
    };
    let after = text_message(room.id, sender.id, "after");
    store
        .insert_messages(&[doomed.clone(), after.clone()])
        .await
        .expect("insert_messages");

    let tombstone = store
        .delete_message(&room.id, doomed.id)
        .await
        .expect("delete_message")
        .expect("a tombstone");
    assert_eq!(tombstone.id, doomed.id);
    assert_eq!(tombstone.room_id, room.id);
    assert_eq!(tombstone.sender_id, doomed.sender_id);
    assert_eq!(tombstone.created_at, doomed.created_at);
    assert!(tombstone.deleted);
    assert_eq!(tombstone.content, "");
    assert!(tombstone.mentions.is_empty() && tombstone.attachments.is_empty());
    assert_eq!(
        store.message(&room.id, doomed.id).await.expect("message"),
        Some(tombstone.clone())
    );

    // Same place in history.
    let page = newest_page(&*store, room.id, 10).await;
    let mut expected = history;
    expected.push(tombstone.clone());
    expected.push(after);
    assert_eq!(page.messages, expected);

    let again = store
        .delete_message(&room.id, doomed.id)
        .await
        .expect("delete_message");
    assert_eq!(again, Some(tombstone), "deleting twice is harmless");
    assert_eq!(
        store
            .delete_message(&room.id, next_id())
            .await
            .expect("delete_message"),
        None
    );
}
