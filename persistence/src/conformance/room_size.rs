//! Cases: a room's own member limit (v1.1 room size).

use std::sync::Arc;

use chat_protocol::id::now_ms;
use chat_protocol::{Id, Role};

use super::fixtures::*;
use crate::Store;
use crate::records::*;

pub async fn rooms_keep_their_member_limit(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let limited = store
        .create_room(
            NewRoom {
                max_members: Some(5),
                ..new_group_room(Some(owner.id))
            },
            &[(owner.id, Role::Owner)],
        )
        .await
        .expect("create_room");
    assert_eq!(limited.max_members, Some(5));
    let stored = store
        .room(&limited.id)
        .await
        .expect("room")
        .expect("exists");
    assert_eq!(stored.max_members, Some(5));
    let listed = store.rooms_of(owner.id).await.expect("rooms_of");
    assert_eq!(
        listed
            .iter()
            .find(|entry| entry.room.id == limited.id)
            .map(|entry| entry.room.max_members),
        Some(Some(5)),
        "room lists carry the limit too"
    );
    let default = new_group(&*store, owner.id, &[]).await;
    let stored = store
        .room(&default.id)
        .await
        .expect("room")
        .expect("exists");
    assert_eq!(stored.max_members, None, "no limit of its own");
}

pub async fn add_member_within_stops_at_the_limit(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let bob = new_user(&*store, "bob").await;
    let carol = new_user(&*store, "carol").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let add = |user: Id| {
        let store = store.clone();
        async move {
            store
                .add_member_within(&room.id, user, Role::Member, now_ms(), 2)
                .await
                .expect("add_member_within")
        }
    };
    assert_eq!(add(bob.id).await, MemberAdded::Added);
    assert_eq!(add(bob.id).await, MemberAdded::AlreadyMember);
    assert_eq!(add(carol.id).await, MemberAdded::Full);
    assert!(
        store
            .membership(&room.id, carol.id)
            .await
            .expect("membership")
            .is_none()
    );
    assert_eq!(
        store
            .room(&room.id)
            .await
            .expect("room")
            .expect("exists")
            .member_count,
        2
    );
    store.remove_member(&room.id, bob.id).await.expect("remove");
    assert_eq!(add(carol.id).await, MemberAdded::Added, "a place came free");
}

pub async fn concurrent_joins_never_exceed_the_limit(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let mut joiners = Vec::new();
    for n in 0..6 {
        joiners.push(new_user(&*store, &format!("joiner{n}")).await);
    }
    let attempts = joiners.iter().map(|user| {
        let (store, id) = (store.clone(), user.id);
        async move {
            store
                .add_member_within(&room.id, id, Role::Member, now_ms(), 3)
                .await
                .expect("add_member_within")
        }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let added = outcomes
        .iter()
        .filter(|outcome| **outcome == MemberAdded::Added)
        .count();
    assert!(
        (1..=2).contains(&added),
        "at most the two free places are taken: {outcomes:?}"
    );
    let members = store.member_ids(&room.id).await.expect("member_ids");
    assert_eq!(members.len(), 1 + added, "only those answered Added joined");
    assert!(members.len() <= 3);
}
