//! Cases: access patterns at scale (old messages, users in many rooms,
//! rooms with many members), where a store that walks time buckets or
//! pages could stop short.

use std::collections::HashSet;
use std::sync::Arc;

use chat_protocol::id::now_ms;
use chat_protocol::{Id, Message, Role};

use super::fixtures::*;
use crate::Store;
use crate::records::*;

/// A room whose only message is more than a year old: the last message,
/// the newest page and the unread count find it (a store that walks time
/// buckets must not stop short of it, nor read past it).
pub async fn a_room_with_one_old_message(store: Arc<dyn Store>) {
    const DAY_MS: u64 = 24 * 60 * 60 * 1000;
    let owner = new_user(&*store, "owner").await;
    let reader = new_user(&*store, "reader").await;
    let long_ago = now_ms() - 400 * DAY_MS;
    let room = NewRoom {
        created_at: long_ago - DAY_MS,
        ..new_group_room(Some(owner.id))
    };
    let room = store
        .create_room(room, &[(owner.id, Role::Owner), (reader.id, Role::Member)])
        .await
        .expect("create_room");
    let id = Id::from_parts(long_ago, (random_u64() % 1024) as u16, random_u64() % 4096);
    let message = Message {
        id,
        created_at: long_ago,
        ..text_message(room.id, owner.id, "hello from last year")
    };
    store
        .insert_messages(std::slice::from_ref(&message))
        .await
        .expect("insert_messages");

    assert_eq!(
        store.last_message(&room.id).await.expect("last_message"),
        Some(message.clone())
    );
    assert_eq!(
        page(&*store, room.id, None, None, 50).await,
        (vec![id], false)
    );
    assert_eq!(
        page(&*store, room.id, Some(&message), None, 50).await,
        (vec![], false),
        "nothing before it"
    );
    assert_eq!(
        page(&*store, room.id, None, Some(&message), 50).await,
        (vec![], false),
        "nothing after it"
    );
    let unread = |after: Option<Id>| {
        let store = store.clone();
        async move {
            store
                .unread_count(&room.id, reader.id, after, 1000)
                .await
                .expect("unread_count")
        }
    };
    assert_eq!(unread(None).await, 1);
    assert_eq!(unread(Some(id)).await, 0);
    assert_eq!(unread(Some(Id::first_at(long_ago - DAY_MS))).await, 1);

    // A newer message is found first, and the old one stays reachable.
    let newer = stored_history(&*store, room.id, owner.id, 1).await;
    assert_eq!(
        store.last_message(&room.id).await.expect("last_message"),
        Some(newer[0].clone())
    );
    assert_eq!(
        page(&*store, room.id, None, None, 50).await,
        (vec![id, newer[0].id], false)
    );
    assert_eq!(
        page(&*store, room.id, None, None, 1).await,
        (vec![newer[0].id], true)
    );
    assert_eq!(unread(None).await, 2);
}

/// A user in many rooms, as at connect: every room is listed with its
/// membership, each room's summary reads are right, and leaving takes a
/// room off the list.
pub async fn a_user_in_many_rooms(store: Arc<dyn Store>) {
    const ROOMS: usize = 60;
    let user = new_user(&*store, "busy").await;
    let friend = new_user(&*store, "friend").await;
    let mut rooms = Vec::with_capacity(ROOMS);
    for _ in 0..ROOMS {
        rooms.push(new_group(&*store, friend.id, &[(user.id, Role::Member)]).await);
    }
    // One message from the friend in each room, written in one batch.
    let messages: Vec<Message> = rooms
        .iter()
        .map(|room| text_message(room.id, friend.id, "hi"))
        .collect();
    store
        .insert_messages(&messages)
        .await
        .expect("insert_messages");
    // Half of them read.
    for message in messages.iter().step_by(2) {
        assert!(
            store
                .mark_read(&message.room_id, user.id, message.id)
                .await
                .expect("mark_read")
        );
    }

    let listed = store.rooms_of(user.id).await.expect("rooms_of");
    assert_eq!(listed.len(), ROOMS);
    for (index, (room, message)) in rooms.iter().zip(&messages).enumerate() {
        let entry = listed
            .iter()
            .find(|entry| entry.room.id == room.id)
            .expect("every room is listed");
        assert_eq!(entry.room.member_count, 2);
        assert_eq!(entry.membership.role, Role::Member);
        let read = index % 2 == 0;
        assert_eq!(entry.membership.last_read, read.then_some(message.id));
        let unread = store
            .unread_count(&room.id, user.id, entry.membership.last_read, 1000)
            .await
            .expect("unread_count");
        assert_eq!(unread, if read { 0 } else { 1 });
        assert_eq!(
            store.last_message(&room.id).await.expect("last_message"),
            Some(message.clone())
        );
    }

    // Leaving (or being removed from) ten rooms takes them off the list.
    for room in &rooms[..10] {
        assert!(
            store
                .remove_member(&room.id, user.id)
                .await
                .expect("remove_member")
        );
    }
    let listed = store.rooms_of(user.id).await.expect("rooms_of");
    assert_eq!(listed.len(), ROOMS - 10);
    assert!(
        listed
            .iter()
            .all(|entry| !rooms[..10].iter().any(|room| room.id == entry.room.id))
    );
    // Rejoining starts afresh: no read position survives the leave.
    assert!(
        store
            .add_member(&rooms[0].id, user.id, Role::Member, now_ms())
            .await
            .expect("add_member")
    );
    let membership = store
        .membership(&rooms[0].id, user.id)
        .await
        .expect("membership")
        .expect("a member again");
    assert_eq!(membership.last_read, None);
    assert!(
        store
            .mark_read(&rooms[0].id, user.id, messages[0].id)
            .await
            .expect("mark_read")
    );
    let membership = store
        .membership(&rooms[0].id, user.id)
        .await
        .expect("membership")
        .expect("a member");
    assert_eq!(
        membership.last_read,
        Some(messages[0].id),
        "a read position set after a rejoin sticks, even for an older message"
    );
}

/// A room created with more members than one write batch or one `IN` list
/// holds: every member is stored once, counted, listed in join order and
/// found by a membership query, and later joins and leaves move the count.
pub async fn a_room_with_many_members(store: Arc<dyn Store>) {
    const MEMBERS: usize = 250;
    let owner = new_user(&*store, "owner").await;
    let mut others = Vec::with_capacity(MEMBERS);
    for _ in 0..MEMBERS {
        others.push(new_user(&*store, "crowd").await);
    }
    let members: Vec<(Id, Role)> = others.iter().map(|user| (user.id, Role::Member)).collect();
    let room = new_group(&*store, owner.id, &members).await;
    assert_eq!(room.member_count as usize, MEMBERS + 1);
    let stored = store.room(&room.id).await.expect("room").expect("the room");
    assert_eq!(stored.member_count as usize, MEMBERS + 1);

    let listed = store.members(&room.id).await.expect("members");
    assert_eq!(listed.len(), MEMBERS + 1);
    let ids: HashSet<Id> = listed.iter().map(|member| member.user.id).collect();
    assert_eq!(ids.len(), MEMBERS + 1, "each member once");
    assert!(ids.contains(&owner.id));
    let mut member_ids = store.member_ids(&room.id).await.expect("member_ids");
    member_ids.sort_unstable();
    let mut expected: Vec<Id> = ids.into_iter().collect();
    expected.sort_unstable();
    assert_eq!(member_ids, expected);

    // More users than one `IN (...)` takes, plus a stranger.
    let stranger = new_user(&*store, "stranger").await;
    let mut asked: Vec<Id> = others.iter().take(150).map(|user| user.id).collect();
    asked.push(stranger.id);
    let found = store
        .memberships(&room.id, &asked)
        .await
        .expect("memberships");
    assert_eq!(found.len(), 150);
    assert!(found.iter().all(|(_, role)| *role == Role::Member));

    // Joins and leaves move the count.
    assert!(
        store
            .add_member(&room.id, stranger.id, Role::Member, now_ms())
            .await
            .expect("add_member")
    );
    for user in &others[..2] {
        assert!(
            store
                .remove_member(&room.id, user.id)
                .await
                .expect("remove_member")
        );
    }
    let stored = store.room(&room.id).await.expect("room").expect("the room");
    assert_eq!(stored.member_count as usize, MEMBERS + 1 + 1 - 2);
    let rooms = store
        .rooms_of(others[MEMBERS - 1].id)
        .await
        .expect("rooms_of");
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].room.id, room.id);
    assert_eq!(rooms[0].room.member_count as usize, MEMBERS);
}
