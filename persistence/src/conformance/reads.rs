//! Cases: read positions and unread counts.

use std::sync::Arc;

use chat_protocol::{Role, RoomId};

use super::fixtures::*;
use crate::Store;

pub async fn read_positions_only_move_forward(store: Arc<dyn Store>) {
    let reader = new_user(&*store, "reader").await;
    let room = new_group(&*store, reader.id, &[]).await;
    let (older, newer, newest) = (next_id(), next_id(), next_id());
    let last_read = |store: Arc<dyn Store>| async move {
        store
            .membership(&room.id, reader.id)
            .await
            .expect("membership")
            .expect("a member")
            .last_read
    };

    assert!(
        store
            .mark_read(&room.id, reader.id, newer)
            .await
            .expect("mark_read")
    );
    assert_eq!(last_read(store.clone()).await, Some(newer));
    assert!(
        store
            .mark_read(&room.id, reader.id, older)
            .await
            .expect("mark_read"),
        "still a member"
    );
    assert_eq!(
        last_read(store.clone()).await,
        Some(newer),
        "an older id leaves the position"
    );
    assert!(
        store
            .mark_read(&room.id, reader.id, newer)
            .await
            .expect("mark_read")
    );
    assert_eq!(last_read(store.clone()).await, Some(newer));
    assert!(
        store
            .mark_read(&room.id, reader.id, newest)
            .await
            .expect("mark_read")
    );
    assert_eq!(last_read(store.clone()).await, Some(newest));
}

pub async fn mark_read_is_false_for_non_members(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let outsider = new_user(&*store, "outsider").await;
    let room = new_group(&*store, owner.id, &[]).await;
    assert!(
        !store
            .mark_read(&room.id, outsider.id, next_id())
            .await
            .expect("mark_read")
    );
    assert_eq!(
        store
            .membership(&room.id, outsider.id)
            .await
            .expect("membership"),
        None
    );
    assert!(
        !store
            .mark_read(&RoomId::Group(next_id()), owner.id, next_id())
            .await
            .expect("mark_read")
    );
}

pub async fn unread_count_counts_others_undeleted_messages(store: Arc<dyn Store>) {
    let me = new_user(&*store, "me").await;
    let them = new_user(&*store, "them").await;
    let room = new_group(&*store, me.id, &[(them.id, Role::Member)]).await;
    let history = vec![
        text_message(room.id, me.id, "mine"),
        text_message(room.id, them.id, "theirs 1"),
        text_message(room.id, them.id, "theirs 2"),
        text_message(room.id, them.id, "theirs, deleted"),
        text_message(room.id, them.id, "theirs 3"),
        text_message(room.id, me.id, "mine again"),
    ];
    store
        .insert_messages(&history)
        .await
        .expect("insert_messages");
    store
        .delete_message(&room.id, history[3].id)
        .await
        .expect("delete_message");
    let unread = |after: Option<usize>, cap: u32| {
        let store = store.clone();
        let after = after.map(|index| history[index].id);
        async move {
            store
                .unread_count(&room.id, me.id, after, cap)
                .await
                .expect("unread_count")
        }
    };

    assert_eq!(unread(None, 1000).await, 3, "others' undeleted messages");
    assert_eq!(unread(Some(0), 1000).await, 3);
    assert_eq!(unread(Some(1), 1000).await, 2, "only newer than `after`");
    assert_eq!(unread(Some(4), 1000).await, 0);
    assert_eq!(unread(Some(5), 1000).await, 0);
    assert_eq!(unread(None, 2).await, 2, "counting stops at the cap");
    assert_eq!(unread(None, 3).await, 3);
    assert_eq!(unread(None, 0).await, 0);
    let theirs = store
        .unread_count(&room.id, them.id, None, 1000)
        .await
        .expect("unread_count");
    assert_eq!(theirs, 2);
    let empty = store
        .unread_count(&RoomId::Group(next_id()), me.id, None, 1000)
        .await
        .expect("unread_count");
    assert_eq!(empty, 0);
}
