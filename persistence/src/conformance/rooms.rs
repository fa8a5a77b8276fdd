//! Cases: rooms and their members, membership versions, owners and DM
//! rooms.

use std::sync::Arc;

use chat_protocol::id::now_ms;
use chat_protocol::{Role, Room, RoomId, RoomKind, Visibility};

use super::fixtures::*;
use crate::Store;
use crate::records::*;

pub async fn created_rooms_have_their_members(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let admin = new_user(&*store, "admin").await;
    let member = new_user(&*store, "member").await;
    let outsider = new_user(&*store, "outsider").await;
    let new = NewRoom {
        visibility: Visibility::Private,
        ..new_group_room(Some(owner.id))
    };
    let room = store
        .create_room(
            new.clone(),
            &[
                (owner.id, Role::Owner),
                (admin.id, Role::Admin),
                (member.id, Role::Member),
            ],
        )
        .await
        .expect("create_room");
    let expected = Room {
        id: new.id,
        kind: RoomKind::Group,
        name: new.name.clone(),
        visibility: Visibility::Private,
        owner_id: Some(owner.id),
        member_count: 3,
        created_at: new.created_at,
        max_members: None,
    };
    assert_eq!(room, expected);
    assert_eq!(store.room(&new.id).await.expect("room"), Some(expected));
    assert_eq!(
        store.room(&RoomId::Group(next_id())).await.expect("room"),
        None
    );

    for (user, role) in [
        (&owner, Role::Owner),
        (&admin, Role::Admin),
        (&member, Role::Member),
    ] {
        let membership = store
            .membership(&new.id, user.id)
            .await
            .expect("membership")
            .unwrap_or_else(|| panic!("{} is a member", user.username));
        assert_eq!(membership.role, role);
        assert_eq!(membership.last_read, None, "nothing is read yet");
    }
    assert_eq!(
        store
            .membership(&new.id, outsider.id)
            .await
            .expect("membership"),
        None
    );
}

pub async fn room_creation_is_all_or_nothing(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "first").await;
    let late = new_user(&*store, "late").await;
    let later = new_user(&*store, "later").await;
    let room = new_group(&*store, owner.id, &[]).await;

    let again = NewRoom {
        name: "another name".into(),
        ..new_group_room(Some(late.id))
    };
    let again = NewRoom {
        id: room.id,
        ..again
    };
    let outcome = store
        .create_room(again, &[(late.id, Role::Owner), (later.id, Role::Member)])
        .await;
    assert!(
        is_conflict(&outcome),
        "a second room with the same id: {outcome:?}"
    );

    assert_eq!(
        store.room(&room.id).await.expect("room"),
        Some(room.clone()),
        "the room is unchanged"
    );
    for user in [&late, &later] {
        assert_eq!(
            store
                .membership(&room.id, user.id)
                .await
                .expect("membership"),
            None,
            "no half-created members"
        );
    }
    assert_eq!(
        store.member_ids(&room.id).await.expect("member_ids"),
        vec![owner.id]
    );
}

pub async fn memberships_answer_only_members(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let member = new_user(&*store, "member").await;
    let outsider = new_user(&*store, "outsider").await;
    let room = new_group(&*store, owner.id, &[(member.id, Role::Member)]).await;

    let mut found = store
        .memberships(&room.id, &[owner.id, outsider.id, next_id(), member.id])
        .await
        .expect("memberships");
    found.sort();
    let mut expected = vec![(owner.id, Role::Owner), (member.id, Role::Member)];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(
        store.memberships(&room.id, &[]).await.expect("memberships"),
        Vec::new()
    );
    assert_eq!(
        store
            .memberships(&RoomId::Group(next_id()), &[owner.id])
            .await
            .expect("memberships"),
        Vec::new()
    );
}

pub async fn adding_and_removing_members_report_changes(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let joiner = new_user(&*store, "joiner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let joined_at = now_ms() + 5;

    assert!(
        store
            .add_member(&room.id, joiner.id, Role::Member, joined_at)
            .await
            .expect("add_member")
    );
    assert!(
        !store
            .add_member(&room.id, joiner.id, Role::Admin, joined_at + 1)
            .await
            .expect("add_member"),
        "adding a member again answers false"
    );
    let membership = store
        .membership(&room.id, joiner.id)
        .await
        .expect("membership")
        .expect("a member");
    assert_eq!(
        membership,
        Membership {
            role: Role::Member,
            last_read: None,
            joined_at
        },
        "adding again changes nothing"
    );
    assert_eq!(
        store
            .room(&room.id)
            .await
            .expect("room")
            .expect("the room")
            .member_count,
        2
    );

    assert!(
        store
            .remove_member(&room.id, joiner.id)
            .await
            .expect("remove_member")
    );
    assert!(
        !store
            .remove_member(&room.id, joiner.id)
            .await
            .expect("remove_member"),
        "removing again answers false"
    );
    assert_eq!(
        store
            .membership(&room.id, joiner.id)
            .await
            .expect("membership"),
        None
    );
    assert_eq!(
        store
            .room(&room.id)
            .await
            .expect("room")
            .expect("the room")
            .member_count,
        1
    );
    let stranger = new_user(&*store, "stranger").await;
    assert!(
        !store
            .remove_member(&room.id, stranger.id)
            .await
            .expect("remove_member")
    );
}

/// Gateways re-check who belongs to a room when its version moves on: every
/// applied join and removal must move it, refused ones need not, and it
/// never goes back.
pub async fn membership_versions_grow_with_every_change(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let joiner = new_user(&*store, "joiner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    let version = |store: Arc<dyn Store>| {
        let room = room.id;
        async move {
            store
                .membership_version(&room)
                .await
                .expect("membership_version")
        }
    };
    let created = version(store.clone()).await;
    assert!(
        store
            .add_member(&room.id, joiner.id, Role::Member, room.created_at + 1)
            .await
            .expect("add_member")
    );
    let joined = version(store.clone()).await;
    assert!(
        joined > created,
        "a join moves the version: {created} -> {joined}"
    );
    assert!(
        !store
            .add_member(&room.id, joiner.id, Role::Member, room.created_at + 2)
            .await
            .expect("add_member")
    );
    assert!(version(store.clone()).await >= joined, "never goes back");
    assert!(
        store
            .remove_member(&room.id, joiner.id)
            .await
            .expect("remove_member")
    );
    let removed = version(store.clone()).await;
    assert!(
        removed > joined,
        "a removal moves the version: {joined} -> {removed}"
    );
    let other = new_group(&*store, owner.id, &[]).await;
    let before = store
        .membership_version(&other.id)
        .await
        .expect("membership_version");
    assert!(
        store
            .add_member(&other.id, joiner.id, Role::Member, other.created_at + 1)
            .await
            .expect("add_member")
    );
    assert!(
        store
            .membership_version(&other.id)
            .await
            .expect("membership_version")
            > before
    );
    assert_eq!(
        version(store.clone()).await,
        removed,
        "another room's changes leave this one's version alone"
    );
    // A write of messages answers their rooms' versions, as read now.
    let answered = store
        .insert_messages(&[
            text_message(room.id, owner.id, "one"),
            text_message(other.id, owner.id, "two"),
            text_message(room.id, owner.id, "three"),
        ])
        .await
        .expect("insert_messages");
    let other_now = store
        .membership_version(&other.id)
        .await
        .expect("membership_version");
    assert_eq!(
        answered,
        MembershipVersions::from([(room.id, removed), (other.id, other_now)]),
        "insert_messages answers each room's version once"
    );
    assert!(
        store
            .insert_messages(&[])
            .await
            .expect("an empty batch")
            .is_empty()
    );
}

pub async fn members_are_listed_in_join_order(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let room = new_group(&*store, owner.id, &[]).await;
    // Created (so ordered by id) in one order, joining in another.
    let first_created = new_user(&*store, "m1").await;
    let second_created = new_user(&*store, "m2").await;
    let third_created = new_user(&*store, "m3").await;
    let start = room.created_at;
    for (user, role, joined_at) in [
        (&first_created, Role::Member, start + 30),
        (&second_created, Role::Admin, start + 10),
        (&third_created, Role::Member, start + 20),
    ] {
        assert!(
            store
                .add_member(&room.id, user.id, role, joined_at)
                .await
                .expect("add_member")
        );
    }

    let members = store.members(&room.id).await.expect("members");
    let expected = vec![
        MemberRecord {
            user: owner.clone(),
            role: Role::Owner,
        },
        MemberRecord {
            user: second_created.clone(),
            role: Role::Admin,
        },
        MemberRecord {
            user: third_created.clone(),
            role: Role::Member,
        },
        MemberRecord {
            user: first_created.clone(),
            role: Role::Member,
        },
    ];
    assert_eq!(members, expected);

    let mut ids = store.member_ids(&room.id).await.expect("member_ids");
    ids.sort();
    let mut expected_ids = vec![
        owner.id,
        first_created.id,
        second_created.id,
        third_created.id,
    ];
    expected_ids.sort();
    assert_eq!(ids, expected_ids);
    assert_eq!(
        store
            .members(&RoomId::Group(next_id()))
            .await
            .expect("members"),
        Vec::new()
    );
}

pub async fn rooms_of_lists_every_membership(store: Arc<dyn Store>) {
    let user = new_user(&*store, "rooms").await;
    let friend = new_user(&*store, "friend").await;
    let group = new_group(&*store, user.id, &[(friend.id, Role::Member)]).await;
    let (dm, _) = store
        .open_dm(new_dm_room(user.id, friend.id))
        .await
        .expect("open_dm");
    // A room the user is not in.
    new_group(&*store, friend.id, &[]).await;
    let read_up_to = next_id();
    assert!(
        store
            .mark_read(&group.id, user.id, read_up_to)
            .await
            .expect("mark_read")
    );

    let mut rooms = store.rooms_of(user.id).await.expect("rooms_of");
    rooms.sort_by_key(|entry| entry.room.id);
    let mut expected = vec![
        (group.clone(), Role::Owner, Some(read_up_to)),
        (dm.clone(), Role::Member, None),
    ];
    expected.sort_by_key(|(room, _, _)| room.id);
    assert_eq!(rooms.len(), expected.len(), "{rooms:?}");
    for (entry, (room, role, last_read)) in rooms.iter().zip(expected) {
        assert_eq!(entry.room, room);
        assert_eq!(entry.membership.role, role);
        assert_eq!(entry.membership.last_read, last_read);
    }
    let loner = new_user(&*store, "loner").await;
    assert_eq!(
        store.rooms_of(loner.id).await.expect("rooms_of"),
        Vec::new()
    );
}

pub async fn set_owner_promotes_a_member(store: Arc<dyn Store>) {
    let founder = new_user(&*store, "founder").await;
    let heir = new_user(&*store, "heir").await;
    let outsider = new_user(&*store, "outsider").await;
    let room = new_group(&*store, founder.id, &[(heir.id, Role::Member)]).await;

    store.set_owner(&room.id, heir.id).await.expect("set_owner");
    let membership = store
        .membership(&room.id, heir.id)
        .await
        .expect("membership")
        .expect("a member");
    assert_eq!(membership.role, Role::Owner);
    let stored = store.room(&room.id).await.expect("room").expect("the room");
    assert_eq!(stored.owner_id, Some(heir.id));

    let outcome = store.set_owner(&room.id, outsider.id).await;
    assert!(
        outcome.is_err(),
        "only a member can become owner: {outcome:?}"
    );
    assert_eq!(
        store
            .membership(&room.id, outsider.id)
            .await
            .expect("membership"),
        None
    );
    let stored = store.room(&room.id).await.expect("room").expect("the room");
    assert_eq!(
        stored.owner_id,
        Some(heir.id),
        "a refused set_owner changes nothing"
    );
}

pub async fn open_dm_creates_the_room_once(store: Arc<dyn Store>) {
    let a = new_user(&*store, "dm_a").await;
    let b = new_user(&*store, "dm_b").await;
    let new = new_dm_room(b.id, a.id);

    let (room, created) = store.open_dm(new.clone()).await.expect("open_dm");
    assert!(created);
    let expected = Room {
        id: new.id,
        kind: RoomKind::Dm,
        name: new.name.clone(),
        visibility: Visibility::Private,
        owner_id: None,
        member_count: 2,
        created_at: new.created_at,
        max_members: None,
    };
    assert_eq!(room, expected);
    for user in [&a, &b] {
        let membership = store
            .membership(&new.id, user.id)
            .await
            .expect("membership")
            .expect("a member");
        assert_eq!(membership.role, Role::Member);
    }

    let later = NewRoom {
        created_at: new.created_at + 1_000,
        ..new.clone()
    };
    let (again, created) = store.open_dm(later).await.expect("open_dm");
    assert!(!created, "the second open finds the room");
    assert_eq!(again, expected, "and answers it as stored");
}

pub async fn concurrent_open_dm_creates_the_room_once(store: Arc<dyn Store>) {
    let a = new_user(&*store, "dm_a").await;
    let b = new_user(&*store, "dm_b").await;
    let new = new_dm_room(a.id, b.id);
    let opens: Vec<_> = (0..10)
        .map(|_| {
            let (store, new) = (store.clone(), new.clone());
            tokio::spawn(async move { store.open_dm(new).await })
        })
        .collect();
    let mut created = 0;
    for open in opens {
        let (room, was_created) = open.await.expect("open task").expect("open_dm");
        assert_eq!(room.id, new.id);
        assert_eq!(room.member_count, 2);
        created += usize::from(was_created);
    }
    assert_eq!(created, 1, "exactly one concurrent open creates the room");
    let mut members = store.member_ids(&new.id).await.expect("member_ids");
    members.sort();
    let mut expected = vec![a.id, b.id];
    expected.sort();
    assert_eq!(members, expected);
}
