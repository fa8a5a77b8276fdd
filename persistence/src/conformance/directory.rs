//! Cases: member pages and the directory of public rooms (v1.1).

use std::sync::Arc;

use chat_protocol::id::now_ms;
use chat_protocol::{Id, Role, Room, RoomId, Visibility};

use super::fixtures::*;
use crate::Store;
use crate::records::*;

pub async fn member_pages_walk_by_user_id(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let mut others = Vec::new();
    for n in 0..4 {
        others.push(new_user(&*store, &format!("member{n}")).await);
    }
    let roles: Vec<(Id, Role)> = others.iter().map(|u| (u.id, Role::Member)).collect();
    let room = new_group(&*store, owner.id, &roles).await;
    let mut expected: Vec<(Id, Role)> = std::iter::once((owner.id, Role::Owner))
        .chain(roles.iter().copied())
        .collect();
    expected.sort_by_key(|(id, _)| *id);

    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .members_page(&room.id, after, 2)
            .await
            .expect("members_page");
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|m| m.user.id);
        walked.extend(page.into_iter().map(|m| (m.user.id, m.role)));
    }
    assert_eq!(walked, expected, "every member once, by user id");
    let first = store
        .members_page(&room.id, None, 1)
        .await
        .expect("first member");
    assert_eq!(first[0].user, {
        let id = expected[0].0;
        store.user(id).await.expect("user").expect("exists")
    });
    store
        .remove_member(&room.id, expected[1].0)
        .await
        .expect("remove");
    let rest = store
        .members_page(&room.id, Some(expected[0].0), 10)
        .await
        .expect("after a leave");
    assert_eq!(
        rest.iter().map(|m| m.user.id).collect::<Vec<_>>(),
        expected[2..].iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
}

/// Creates a group room named `name` with `visibility`, owned by `owner`.
async fn named_room(store: &dyn Store, owner: Id, name: &str, visibility: Visibility) -> Room {
    let room = NewRoom {
        name: name.to_owned(),
        visibility,
        ..new_group_room(Some(owner))
    };
    store
        .create_room(room, &[(owner, Role::Owner)])
        .await
        .expect("create_room")
}

pub async fn the_directory_lists_public_groups_by_prefix_case_insensitively(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let other = new_user(&*store, "other").await;
    // A prefix no other case (or test run) uses.
    let tag = format!("dir{}", unique_suffix());
    let upper = tag.to_ascii_uppercase();
    let b = named_room(
        &*store,
        owner.id,
        &format!("{upper} Beta"),
        Visibility::Public,
    )
    .await;
    let a = named_room(
        &*store,
        owner.id,
        &format!("{tag} alpha"),
        Visibility::Public,
    )
    .await;
    // Capitals beyond ASCII fold too.
    let umlaut = named_room(
        &*store,
        owner.id,
        &format!("{upper} Ärger"),
        Visibility::Public,
    )
    .await;
    store
        .add_member(&a.id, other.id, Role::Member, now_ms())
        .await
        .expect("add_member");
    named_room(
        &*store,
        owner.id,
        &format!("{tag} secret"),
        Visibility::Private,
    )
    .await;
    named_room(&*store, owner.id, "elsewhere", Visibility::Public).await;
    store
        .open_dm(new_dm_room(owner.id, other.id))
        .await
        .expect("open_dm");

    let found = store
        .public_rooms(&tag, None, 10)
        .await
        .expect("public_rooms");
    assert_eq!(
        found.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a.id, b.id, umlaut.id],
        "public groups only, by lower-cased name: {found:?}"
    );
    assert_eq!(found[0].member_count, 2, "with member counts");
    assert_eq!(found[1].member_count, 1);
    assert_eq!(directory_ids(&*store, &format!("{tag} b")).await, [b.id]);
    for prefix in [format!("{tag} är"), format!("{upper} ÄR")] {
        assert_eq!(
            directory_ids(&*store, &prefix).await,
            [umlaut.id],
            "{prefix}"
        );
    }
    assert!(
        directory_ids(&*store, &format!("{tag}zzz"))
            .await
            .is_empty()
    );
}

/// The same creation handled again (its router died after the first) is
/// a conflict that leaves the room listed once, with its members.
pub async fn a_public_room_created_again_stays_listed_once(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let member = new_user(&*store, "member").await;
    let tag = format!("again{}", unique_suffix());
    let new = NewRoom {
        name: format!("{tag} room"),
        visibility: Visibility::Public,
        ..new_group_room(Some(owner.id))
    };
    let members = [(owner.id, Role::Owner), (member.id, Role::Member)];
    let room = store
        .create_room(new.clone(), &members)
        .await
        .expect("create_room");
    let again = store.create_room(new, &members).await;
    assert!(
        matches!(again, Err(crate::StoreError::Conflict(_))),
        "{again:?}"
    );
    assert_eq!(directory_ids(&*store, &tag).await, [room.id]);
    let listed = store.members(&room.id).await.expect("members");
    assert_eq!(listed.len(), 2, "{listed:?}");
}

/// The ids of the directory's first page (up to 10 rooms) for `prefix`.
pub async fn directory_ids(store: &dyn Store, prefix: &str) -> Vec<RoomId> {
    store
        .public_rooms(prefix, None, 10)
        .await
        .expect("public_rooms")
        .iter()
        .map(|room| room.id)
        .collect()
}

pub async fn directory_pages_follow_the_cursor(store: Arc<dyn Store>) {
    let owner = new_user(&*store, "owner").await;
    let tag = format!("page{}", unique_suffix());
    let mut made = Vec::new();
    // Two rooms share a name: the id breaks the tie.
    for name in ["c", "a", "b", "b"] {
        made.push(
            named_room(
                &*store,
                owner.id,
                &format!("{tag} {name}"),
                Visibility::Public,
            )
            .await,
        );
    }
    let mut expected: Vec<(String, RoomId)> = made
        .iter()
        .map(|r| (directory_name(&r.name), r.id))
        .collect();
    expected.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.to_string().cmp(&y.1.to_string())));

    let mut walked = Vec::new();
    let mut after: Option<DirectoryCursor> = None;
    loop {
        let page = store
            .public_rooms(&tag, after.clone(), 3)
            .await
            .expect("public_rooms");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(DirectoryCursor {
            name_lower: directory_name(&last.name),
            room_id: last.id,
        });
        walked.extend(page.iter().map(|r| r.id));
    }
    assert_eq!(
        walked,
        expected.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        "each room once, in order"
    );
}
