//! Cases: mention notifications, their pages and read marks.

use std::sync::Arc;

use chat_protocol::{Id, Message, Notification, Role, Room, RoomId};

use super::fixtures::*;
use crate::Store;
use crate::records::UserRecord;

/// A message from `sender` in `room` mentioning `mentioned`.
fn mentioning(room: RoomId, sender: Id, mentioned: &[Id]) -> Message {
    Message {
        mentions: mentioned.to_vec(),
        ..text_message(room, sender, "hello @someone")
    }
}

/// A sender and `bob`, members of a new group.
async fn sender_and_bob(store: &dyn Store) -> (UserRecord, UserRecord, Room) {
    let sender = new_user(store, "sender").await;
    let bob = new_user(store, "bob").await;
    let room = new_group(store, sender.id, &[(bob.id, Role::Member)]).await;
    (sender, bob, room)
}

/// `count` messages of `sender` in `room`, each mentioning `mentioned`,
/// stored (oldest first).
async fn store_mentions(
    store: &dyn Store,
    room: &Room,
    sender: Id,
    mentioned: Id,
    count: usize,
) -> Vec<Message> {
    let messages: Vec<Message> = (0..count)
        .map(|_| mentioning(room.id, sender, &[mentioned]))
        .collect();
    store
        .insert_messages(&messages)
        .await
        .expect("insert_messages");
    messages
}

/// A sender and `bob` in a new group, and `count` stored messages of the
/// sender each mentioning bob.
async fn bob_mentioned(store: &dyn Store, count: usize) -> (UserRecord, Vec<Message>) {
    let (sender, bob, room) = sender_and_bob(store).await;
    let messages = store_mentions(store, &room, sender.id, bob.id, count).await;
    (bob, messages)
}

/// Every notification of `user`, newest first, walked page by page.
async fn all_notifications(store: &dyn Store, user: Id, page_size: u32) -> Vec<Notification> {
    let mut found = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .notifications(user, before, page_size)
            .await
            .expect("notifications");
        assert!(page.notifications.len() <= page_size as usize);
        before = page.notifications.last().map(|n| n.id);
        found.extend(page.notifications);
        if !page.has_more {
            return found;
        }
        assert!(before.is_some(), "has_more on an empty page");
    }
}

pub async fn mentions_are_stored_as_notifications_once(store: Arc<dyn Store>) {
    let sender = new_user(&*store, "sender").await;
    let bob = new_user(&*store, "bob").await;
    let carol = new_user(&*store, "carol").await;
    let room = new_group(
        &*store,
        sender.id,
        &[(bob.id, Role::Member), (carol.id, Role::Member)],
    )
    .await;
    let both = mentioning(room.id, sender.id, &[bob.id, carol.id]);
    let only_bob = mentioning(room.id, sender.id, &[bob.id]);
    let nobody = text_message(room.id, sender.id, "no mention");
    let batch = vec![both.clone(), only_bob.clone(), nobody];
    store
        .insert_messages(&batch)
        .await
        .expect("insert_messages");
    store
        .insert_messages(&batch)
        .await
        .expect("a retried batch");

    let of_bob = all_notifications(&*store, bob.id, 10).await;
    assert_eq!(
        of_bob,
        vec![
            Notification::of_mention(&only_bob),
            Notification::of_mention(&both)
        ],
        "one per mentioning message, newest first, unread, never twice"
    );
    let of_carol = all_notifications(&*store, carol.id, 10).await;
    assert_eq!(of_carol, vec![Notification::of_mention(&both)]);
    assert!(
        all_notifications(&*store, sender.id, 10).await.is_empty(),
        "the sender was not mentioned"
    );
}

pub async fn notifications_page_newest_first(store: Arc<dyn Store>) {
    let (bob, messages) = bob_mentioned(&*store, 7).await;
    let newest_first: Vec<Id> = messages.iter().rev().map(|m| m.id).collect();

    let first = store
        .notifications(bob.id, None, 3)
        .await
        .expect("first page");
    assert_eq!(
        first.notifications.iter().map(|n| n.id).collect::<Vec<_>>(),
        newest_first[..3]
    );
    assert!(first.has_more);
    let walked: Vec<Id> = all_notifications(&*store, bob.id, 3)
        .await
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(walked, newest_first, "pages neither repeat nor skip");
    let last = store
        .notifications(bob.id, Some(newest_first[5]), 3)
        .await
        .expect("last page");
    assert_eq!(
        last.notifications.iter().map(|n| n.id).collect::<Vec<_>>(),
        newest_first[6..]
    );
    assert!(!last.has_more);
}

pub async fn notification_read_mark_only_moves_forward(store: Arc<dyn Store>) {
    let (bob, messages) = bob_mentioned(&*store, 4).await;

    store
        .mark_notifications_read(bob.id, messages[2].id)
        .await
        .expect("mark read");
    store
        .mark_notifications_read(bob.id, messages[0].id)
        .await
        .expect("an older mark");
    let read: Vec<(Id, bool)> = all_notifications(&*store, bob.id, 10)
        .await
        .iter()
        .map(|n| (n.id, n.read))
        .collect();
    assert_eq!(
        read,
        vec![
            (messages[3].id, false),
            (messages[2].id, true),
            (messages[1].id, true),
            (messages[0].id, true),
        ],
        "read up to the newest mark, included"
    );
}

pub async fn unread_notifications_are_those_above_the_mark(store: Arc<dyn Store>) {
    let (sender, bob, room) = sender_and_bob(&*store).await;
    assert!(
        store
            .unread_notifications(bob.id, 10)
            .await
            .expect("none yet")
            .is_empty()
    );
    let messages = store_mentions(&*store, &room, sender.id, bob.id, 5).await;
    let unread = store
        .unread_notifications(bob.id, 10)
        .await
        .expect("unread");
    assert_eq!(unread.len(), 5);
    assert!(unread.iter().all(|n| !n.read));
    assert_eq!(
        store
            .unread_notifications(bob.id, 2)
            .await
            .expect("capped")
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>(),
        vec![messages[4].id, messages[3].id],
        "the newest, at most cap"
    );
    store
        .mark_notifications_read(bob.id, messages[1].id)
        .await
        .expect("mark read");
    let unread: Vec<Id> = store
        .unread_notifications(bob.id, 10)
        .await
        .expect("unread")
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(unread, vec![messages[4].id, messages[3].id, messages[2].id]);
}
