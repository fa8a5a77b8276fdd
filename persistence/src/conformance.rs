//! The store conformance suite: the [`Store`] trait's guarantees as
//! executable cases, written once and run against every implementation.
//!
//! An implementation's integration tests run the whole suite with one macro
//! call, giving it a *factory*: an async fn (or a closure returning a future)
//! that makes a store for one case:
//!
//! ```ignore
//! use std::sync::Arc;
//! use chat_persistence::conformance::StoreUnderTest;
//!
//! async fn fresh_store() -> StoreUnderTest {
//!     let dir = tempfile::tempdir().expect("a temporary directory");
//!     let store = MyStore::open(dir.path()).expect("open the store");
//!     // The directory must outlive the store: keep it alongside.
//!     StoreUnderTest::keeping_alive(Arc::new(store), dir)
//! }
//!
//! mod conformance {
//!     chat_persistence::store_conformance_tests!(super::fresh_store);
//! }
//! ```
//!
//! That expands to one `#[tokio::test]` per case (so the calling crate needs
//! `tokio` as a dev-dependency), each calling the `pub async fn` of the same
//! name in this module; a case can also be called directly. Attributes given
//! after the factory go on every case; a suite that needs a database server
//! is marked ignored without one, so that the test runner reports it as
//! ignored rather than passed:
//!
//! ```ignore
//! chat_persistence::store_conformance_tests!(
//!     super::server_store,
//!     #[cfg_attr(not(have_server), ignore = "needs a live server")]
//! );
//! ```
//!
//! The cases never assume an empty store, because a server-backed store is
//! tested against a shared, long-lived keyspace: every case makes its own
//! users (with random username suffixes), rooms and messages (with fresh
//! Snowflake ids from a generator with a random worker id), and only looks
//! at what it made.

use std::any::Any;
use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_protocol::id::{MAX_WORKER_ID, now_ms};
use chat_protocol::{
    File, Id, IdGenerator, Message, Notification, Role, Room, RoomId, RoomKind, Visibility,
};

use crate::records::*;
use crate::{Store, StoreError};

/// Expands to one `#[tokio::test]` per conformance case, each running the
/// case against a store made by `$factory` (see the [module
/// docs](crate::conformance)), with the attributes given after the factory.
/// Invoke it inside a module of its own, as the generated tests are named
/// after the cases.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr $(, #[$attribute:meta])* $(,)?) => {
        $crate::__store_conformance_cases! {
            $factory;
            { $(#[$attribute])* }
            // Adding a case: write its `pub async fn` below and list it here.
            ping_answers,
            created_users_can_be_looked_up,
            usernames_are_unique_case_insensitively,
            concurrent_registrations_of_one_name_create_one_user,
            credentials_match_usernames_case_insensitively,
            users_by_username_ignore_case_and_skip_unknown_names,
            search_users_finds_prefixes_case_insensitively_in_order,
            search_users_treats_wildcards_literally,
            last_seen_is_recorded,
            created_rooms_have_their_members,
            room_creation_is_all_or_nothing,
            memberships_answer_only_members,
            adding_and_removing_members_report_changes,
            membership_versions_grow_with_every_change,
            members_are_listed_in_join_order,
            rooms_of_lists_every_membership,
            set_owner_promotes_a_member,
            open_dm_creates_the_room_once,
            concurrent_open_dm_creates_the_room_once,
            read_positions_only_move_forward,
            mark_read_is_false_for_non_members,
            unread_count_counts_others_undeleted_messages,
            insert_messages_is_idempotent,
            a_batch_may_span_rooms,
            messages_round_trip,
            message_by_client_id_respects_the_window,
            paging_an_empty_room,
            paging_newest_first,
            paging_before,
            paging_after,
            paging_between,
            pages_stay_consistent_with_concurrent_inserts,
            last_message_is_the_newest_even_if_deleted,
            edits_replace_content_and_mentions,
            deletion_leaves_a_tombstone,
            a_room_with_one_old_message,
            a_user_in_many_rooms,
            a_room_with_many_members,
            files_round_trip_and_add_up_per_uploader,
            linked_files_name_their_rooms_until_unlinked,
            unreferenced_files_are_the_sweeps_candidates,
            deleting_a_file_forgets_it,
            // notifications
            mentions_are_stored_as_notifications_once,
            notifications_page_newest_first,
            notification_read_mark_only_moves_forward,
            unread_notifications_are_those_above_the_mark,
            // room directory and member pages
            member_pages_walk_by_user_id,
            the_directory_lists_public_groups_by_prefix_case_insensitively,
            directory_pages_follow_the_cursor,
            // room size
            rooms_keep_their_member_limit,
            add_member_within_stops_at_the_limit,
            concurrent_joins_never_exceed_the_limit,
            // accounts
            sessions_are_revoked_one_or_all_but_one,
            revocations_list_only_unexpired_revoked_sessions,
            profile_and_password_changes_stick,
            account_flags_start_off_and_toggle,
            audit_events_page_newest_first_and_filter,
        }
    };
}

/// The per-case half of [`store_conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($factory:expr; $attributes:tt $($case:ident),+ $(,)?) => {
        $(
            $crate::__store_conformance_case! { $attributes $factory; $case }
        )+
    };
}

/// One case of [`store_conformance_tests!`], with its attributes.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_case {
    ({ $(#[$attribute:meta])* } $factory:expr; $case:ident) => {
        $(#[$attribute])*
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            $crate::conformance::run_case($factory, $crate::conformance::$case).await;
        }
    };
}

/// A store handed to the suite by a factory, with whatever must live exactly
/// as long as it (the temporary directory holding its file, a container
/// handle). The guard is dropped after the store.
pub struct StoreUnderTest {
    store: Arc<dyn Store>,
    _keep_alive: Option<Box<dyn Any + Send>>,
}

impl StoreUnderTest {
    /// A store that needs nothing else kept alive.
    pub fn new(store: Arc<dyn Store>) -> StoreUnderTest {
        StoreUnderTest {
            store,
            _keep_alive: None,
        }
    }

    /// A store, and `guard` to drop once the case is done with it.
    pub fn keeping_alive(store: Arc<dyn Store>, guard: impl Any + Send) -> StoreUnderTest {
        StoreUnderTest {
            store,
            _keep_alive: Some(Box::new(guard)),
        }
    }

    /// The store under test.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

impl From<Arc<dyn Store>> for StoreUnderTest {
    fn from(store: Arc<dyn Store>) -> StoreUnderTest {
        StoreUnderTest::new(store)
    }
}

/// Runs one case against a store from `factory`; the fixture lives until
/// the case is done.
pub async fn run_case<Factory, Made, Fixture, Case, Running>(factory: Factory, case: Case)
where
    Factory: FnOnce() -> Made,
    Made: Future<Output = Fixture>,
    Fixture: Into<StoreUnderTest>,
    Case: FnOnce(Arc<dyn Store>) -> Running,
    Running: Future<Output = ()>,
{
    let fixture = factory().await.into();
    case(fixture.store()).await;
}

// ----- fresh data ------------------------------------------------------

/// A random number: std's `RandomState` is seeded from the OS per process
/// (and varies per instance), mixed with a counter and the clock.
fn random_u64() -> u64 {
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
fn unique_suffix() -> String {
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
fn next_id() -> Id {
    static GENERATOR: OnceLock<IdGenerator> = OnceLock::new();
    GENERATOR
        .get_or_init(|| IdGenerator::new((random_u64() % (u64::from(MAX_WORKER_ID) + 1)) as u16))
        .next_id()
}

fn new_user_record(username: String) -> NewUser {
    NewUser {
        id: next_id(),
        display_name: format!("{username} (display)"),
        username,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${}$hash", unique_suffix()),
        created_at: now_ms(),
    }
}

/// A new user named `<tag>_<random suffix>`.
async fn new_user(store: &dyn Store, tag: &str) -> UserRecord {
    let username = format!("{tag}_{}", unique_suffix());
    create_user_named(store, &username).await
}

async fn create_user_named(store: &dyn Store, username: &str) -> UserRecord {
    store
        .create_user(new_user_record(username.to_owned()))
        .await
        .expect("create_user")
}

fn new_group_room(owner: Option<Id>) -> NewRoom {
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

fn new_dm_room(a: Id, b: Id) -> NewRoom {
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
async fn new_group(store: &dyn Store, owner: Id, others: &[(Id, Role)]) -> Room {
    let mut members = vec![(owner, Role::Owner)];
    members.extend_from_slice(others);
    store
        .create_room(new_group_room(Some(owner)), &members)
        .await
        .expect("create_room")
}

/// A plain message with a fresh id.
fn text_message(room: RoomId, sender: Id, content: &str) -> Message {
    let id = next_id();
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
fn attachment(name: &str, size: u64, content_type: &str) -> File {
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
fn file_record(uploader: Id, size: u64) -> FileRecord {
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
async fn stored_history(store: &dyn Store, room: RoomId, sender: Id, count: usize) -> Vec<Message> {
    let history: Vec<Message> = (0..count)
        .map(|n| text_message(room, sender, &format!("message {n}")))
        .collect();
    store
        .insert_messages(&history)
        .await
        .expect("insert_messages");
    history
}

fn ids_of(messages: &[Message]) -> Vec<Id> {
    messages.iter().map(|message| message.id).collect()
}

fn sorted_by_id(mut users: Vec<UserRecord>) -> Vec<UserRecord> {
    users.sort_by_key(|user| user.id);
    users
}

async fn page(
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

fn is_conflict<T: std::fmt::Debug>(outcome: &Result<T, StoreError>) -> bool {
    matches!(outcome, Err(StoreError::Conflict(_)))
}

// ----- cases: users ----------------------------------------------------

pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
}

pub async fn created_users_can_be_looked_up(store: Arc<dyn Store>) {
    let new = new_user_record(format!("Look_{}", unique_suffix()));
    let created = store.create_user(new.clone()).await.expect("create_user");
    let expected = UserRecord {
        id: new.id,
        username: new.username.clone(),
        display_name: new.display_name.clone(),
        created_at: new.created_at,
        last_seen_at: None,
    };
    assert_eq!(created, expected, "create_user answers the stored user");
    assert_eq!(
        store.user(new.id).await.expect("user"),
        Some(expected.clone())
    );
    assert_eq!(store.user(next_id()).await.expect("user"), None);

    let other = new_user(&*store, "look2").await;
    let found = store
        .users(&[new.id, next_id(), other.id])
        .await
        .expect("users");
    assert_eq!(sorted_by_id(found), sorted_by_id(vec![expected, other]));
    assert_eq!(store.users(&[]).await.expect("users"), Vec::new());
}

pub async fn usernames_are_unique_case_insensitively(store: Arc<dyn Store>) {
    let original = new_user(&*store, "Case").await;
    for clash in [
        original.username.clone(),
        original.username.to_ascii_uppercase(),
        original.username.to_ascii_lowercase(),
    ] {
        let attempt = new_user_record(clash.clone());
        let outcome = store.create_user(attempt.clone()).await;
        assert!(
            is_conflict(&outcome),
            "{clash} after {}: {outcome:?}",
            original.username
        );
        assert_eq!(
            store.user(attempt.id).await.expect("user"),
            None,
            "nothing of a refused user is stored"
        );
    }
    let credentials = store
        .credentials(&original.username)
        .await
        .expect("credentials")
        .expect("the original user");
    assert_eq!(credentials.user, original);
}

pub async fn concurrent_registrations_of_one_name_create_one_user(store: Arc<dyn Store>) {
    let base = format!("race_{}", unique_suffix());
    // Eight spellings differing only in the case of the first three letters.
    let spellings: Vec<String> = (0..8u8)
        .map(|variant| {
            base.chars()
                .enumerate()
                .map(|(position, letter)| {
                    if position < 3 && variant & (1 << position) != 0 {
                        letter.to_ascii_uppercase()
                    } else {
                        letter
                    }
                })
                .collect()
        })
        .collect();
    let attempts: Vec<_> = spellings
        .iter()
        .map(|spelling| {
            let store = store.clone();
            let new = new_user_record(spelling.clone());
            tokio::spawn(async move { (new.id, store.create_user(new).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        let (id, outcome) = attempt.await.expect("registration task");
        match outcome {
            Ok(user) => winners.push(user),
            Err(StoreError::Conflict(_)) => {
                assert_eq!(
                    store.user(id).await.expect("user"),
                    None,
                    "a refused user is not stored"
                );
            }
            Err(other) => panic!("a registration failed with {other:?} instead of a conflict"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one registration wins: {winners:?}"
    );
    let found = store
        .credentials(&base.to_ascii_uppercase())
        .await
        .expect("credentials")
        .expect("the winner");
    assert_eq!(found.user, winners[0]);
}

pub async fn credentials_match_usernames_case_insensitively(store: Arc<dyn Store>) {
    let new = new_user_record(format!("Cred_{}", unique_suffix()));
    let user = store.create_user(new.clone()).await.expect("create_user");
    for spelling in [
        new.username.clone(),
        new.username.to_ascii_uppercase(),
        new.username.to_ascii_lowercase(),
    ] {
        let credentials = store
            .credentials(&spelling)
            .await
            .expect("credentials")
            .unwrap_or_else(|| panic!("credentials of {spelling}"));
        assert_eq!(credentials.user, user);
        assert_eq!(credentials.password_hash, new.password_hash);
    }
    let unknown = format!("nobody_{}", unique_suffix());
    assert_eq!(
        store.credentials(&unknown).await.expect("credentials"),
        None
    );
}

pub async fn users_by_username_ignore_case_and_skip_unknown_names(store: Arc<dyn Store>) {
    let first = new_user(&*store, "ByName").await;
    let second = new_user(&*store, "byname").await;
    let found = store
        .users_by_username(&[
            first.username.to_ascii_uppercase(),
            format!("nobody_{}", unique_suffix()),
            second.username.to_ascii_lowercase(),
        ])
        .await
        .expect("users_by_username");
    assert_eq!(sorted_by_id(found), sorted_by_id(vec![first, second]));
    assert_eq!(
        store
            .users_by_username(&[])
            .await
            .expect("users_by_username"),
        Vec::new()
    );
}

pub async fn search_users_finds_prefixes_case_insensitively_in_order(store: Arc<dyn Store>) {
    let prefix = format!("srch{}", unique_suffix());
    // Byte order would put "B" before "a"; lower-cased order does not.
    let bob = create_user_named(&*store, &format!("{prefix}_Bob")).await;
    let alice = create_user_named(&*store, &format!("{}_alice", prefix.to_ascii_uppercase())).await;
    let carol = create_user_named(&*store, &format!("{prefix}_carol")).await;
    // Contains the prefix, but does not start with it.
    create_user_named(&*store, &format!("x{prefix}")).await;

    let found = store
        .search_users(&prefix.to_ascii_uppercase(), 10)
        .await
        .expect("search_users");
    assert_eq!(found, vec![alice.clone(), bob.clone(), carol.clone()]);
    let found = store.search_users(&prefix, 2).await.expect("search_users");
    assert_eq!(
        found,
        vec![alice, bob.clone()],
        "the limit keeps the first in order"
    );
    let found = store
        .search_users(&bob.username.to_ascii_lowercase(), 10)
        .await
        .expect("search_users");
    assert_eq!(found, vec![bob], "a whole username is a prefix of itself");
    assert_eq!(
        store.search_users(&prefix, 0).await.expect("search_users"),
        Vec::new()
    );
}

pub async fn search_users_treats_wildcards_literally(store: Arc<dyn Store>) {
    let prefix = format!("wild{}", unique_suffix());
    let underscored = create_user_named(&*store, &format!("{prefix}_one")).await;
    // Would match "<prefix>_" if `_` were a single-character wildcard.
    create_user_named(&*store, &format!("{prefix}xtwo")).await;

    let found = store
        .search_users(&format!("{prefix}_"), 10)
        .await
        .expect("search_users");
    assert_eq!(found, vec![underscored]);
    let found = store
        .search_users(&format!("{prefix}%"), 10)
        .await
        .expect("search_users");
    assert_eq!(found, Vec::new(), "% is not a wildcard");
}

pub async fn last_seen_is_recorded(store: Arc<dyn Store>) {
    let user = new_user(&*store, "seen").await;
    let first = now_ms();
    store
        .set_last_seen(user.id, first)
        .await
        .expect("set_last_seen");
    let stored = store.user(user.id).await.expect("user").expect("the user");
    assert_eq!(stored.last_seen_at, Some(first));
    store
        .set_last_seen(user.id, first + 1_000)
        .await
        .expect("set_last_seen");
    let stored = store.user(user.id).await.expect("user").expect("the user");
    assert_eq!(stored.last_seen_at, Some(first + 1_000));
    assert_eq!(stored.username, user.username, "only the presence changed");
}

// ----- cases: rooms and members ------------------------------------------

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

// ----- cases: read positions ---------------------------------------------

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

// ----- cases: messages -----------------------------------------------------

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

    let page = store
        .messages(
            &room.id,
            PageRequest {
                limit: 10,
                ..PageRequest::default()
            },
        )
        .await
        .expect("messages");
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
        let page = store
            .messages(
                &room,
                PageRequest {
                    limit: 10,
                    ..PageRequest::default()
                },
            )
            .await
            .expect("messages");
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
    let page = store
        .messages(
            &room.id,
            PageRequest {
                limit: 10,
                ..PageRequest::default()
            },
        )
        .await
        .expect("messages");
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

// ----- cases: access patterns at scale ------------------------------------------

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

// ----- files ---------------------------------------------------------------

pub async fn files_round_trip_and_add_up_per_uploader(store: Arc<dyn Store>) {
    let uploader = new_user(&*store, "uploader").await;
    let other = new_user(&*store, "other").await;
    let first = file_record(uploader.id, 1000);
    let second = file_record(uploader.id, 234);
    store.insert_file(first.clone()).await.expect("insert_file");
    store
        .insert_file(second.clone())
        .await
        .expect("insert_file");
    store
        .insert_file(first.clone())
        .await
        .expect("inserting again is harmless");
    assert_eq!(store.file(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.file(second.id).await.unwrap(), Some(second));
    assert_eq!(store.file(next_id()).await.unwrap(), None);
    assert_eq!(store.uploaded_bytes(uploader.id).await.unwrap(), 1234);
    assert_eq!(store.uploaded_bytes(other.id).await.unwrap(), 0);
}

pub async fn linked_files_name_their_rooms_until_unlinked(store: Arc<dyn Store>) {
    let uploader = new_user(&*store, "uploader").await;
    let room_a = new_group(&*store, uploader.id, &[]).await;
    let room_b = new_group(&*store, uploader.id, &[]).await;
    let file = file_record(uploader.id, 10);
    store.insert_file(file.clone()).await.unwrap();
    assert!(store.file_rooms(file.id).await.unwrap().is_empty());

    let (in_a, in_b) = (next_id(), next_id());
    store
        .link_files(&room_a.id, in_a, &[file.id])
        .await
        .unwrap();
    store
        .link_files(&room_a.id, in_a, &[file.id])
        .await
        .unwrap();
    store
        .link_files(&room_b.id, in_b, &[file.id])
        .await
        .unwrap();
    let mut rooms = store.file_rooms(file.id).await.unwrap();
    rooms.sort_by_key(|room| room.to_string());
    let mut expected = vec![room_a.id, room_b.id];
    expected.sort_by_key(|room| room.to_string());
    assert_eq!(rooms, expected);

    store
        .unlink_files(&room_a.id, in_a, &[file.id], now_ms())
        .await
        .unwrap();
    assert_eq!(store.file_rooms(file.id).await.unwrap(), vec![room_b.id]);
    store
        .unlink_files(&room_a.id, in_a, &[file.id], now_ms())
        .await
        .expect("unlinking twice is harmless");
    store
        .unlink_files(&room_b.id, in_b, &[file.id], now_ms())
        .await
        .unwrap();
    assert!(store.file_rooms(file.id).await.unwrap().is_empty());
}

pub async fn unreferenced_files_are_the_sweeps_candidates(store: Arc<dyn Store>) {
    let uploader = new_user(&*store, "uploader").await;
    let room = new_group(&*store, uploader.id, &[]).await;
    let never_sent = file_record(uploader.id, 1);
    let sent = file_record(uploader.id, 2);
    let sent_then_deleted = file_record(uploader.id, 3);
    for file in [&never_sent, &sent, &sent_then_deleted] {
        store.insert_file(file.clone()).await.unwrap();
    }
    let (message, doomed) = (next_id(), next_id());
    store
        .link_files(&room.id, message, &[sent.id])
        .await
        .unwrap();
    store
        .link_files(&room.id, doomed, &[sent_then_deleted.id])
        .await
        .unwrap();
    let deleted_at = now_ms() + 1000;
    store
        .unlink_files(&room.id, doomed, &[sent_then_deleted.id], deleted_at)
        .await
        .unwrap();

    let candidates = |before: u64| {
        let store = store.clone();
        async move {
            let files = store.unreferenced_files(before, 10_000).await.unwrap();
            files
                .into_iter()
                .map(|file| file.id)
                .collect::<HashSet<Id>>()
        }
    };
    // Unreferenced since its upload; the deleted one only since deleted_at.
    let early = candidates(deleted_at).await;
    assert!(early.contains(&never_sent.id));
    assert!(!early.contains(&sent.id));
    assert!(!early.contains(&sent_then_deleted.id));
    let late = candidates(deleted_at + 1).await;
    assert!(late.contains(&never_sent.id));
    assert!(late.contains(&sent_then_deleted.id));
    assert!(!late.contains(&sent.id));
    // Nothing is a candidate before it was uploaded.
    assert!(
        !candidates(never_sent.created_at)
            .await
            .contains(&never_sent.id)
    );
}

pub async fn deleting_a_file_forgets_it(store: Arc<dyn Store>) {
    let uploader = new_user(&*store, "uploader").await;
    let room = new_group(&*store, uploader.id, &[]).await;
    let kept = file_record(uploader.id, 5);
    let doomed = file_record(uploader.id, 7);
    store.insert_file(kept.clone()).await.unwrap();
    store.insert_file(doomed.clone()).await.unwrap();
    store
        .link_files(&room.id, next_id(), &[doomed.id])
        .await
        .unwrap();
    store.delete_file(doomed.id).await.unwrap();
    store
        .delete_file(doomed.id)
        .await
        .expect("deleting twice is harmless");
    assert_eq!(store.file(doomed.id).await.unwrap(), None);
    assert!(store.file_rooms(doomed.id).await.unwrap().is_empty());
    assert_eq!(store.uploaded_bytes(uploader.id).await.unwrap(), 5);
    let candidates = store
        .unreferenced_files(u64::MAX >> 1, 10_000)
        .await
        .unwrap();
    assert!(candidates.iter().all(|file| file.id != doomed.id));
    assert!(candidates.iter().any(|file| file.id == kept.id));
}

// ----- notifications ---------------------------------------------------

/// A message from `sender` in `room` mentioning `mentioned`.
fn mentioning(room: RoomId, sender: Id, mentioned: &[Id]) -> Message {
    Message {
        mentions: mentioned.to_vec(),
        ..text_message(room, sender, "hello @someone")
    }
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
    let sender = new_user(&*store, "sender").await;
    let bob = new_user(&*store, "bob").await;
    let room = new_group(&*store, sender.id, &[(bob.id, Role::Member)]).await;
    let messages: Vec<Message> = (0..7)
        .map(|_| mentioning(room.id, sender.id, &[bob.id]))
        .collect();
    store
        .insert_messages(&messages)
        .await
        .expect("insert_messages");
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
    let sender = new_user(&*store, "sender").await;
    let bob = new_user(&*store, "bob").await;
    let room = new_group(&*store, sender.id, &[(bob.id, Role::Member)]).await;
    let messages: Vec<Message> = (0..4)
        .map(|_| mentioning(room.id, sender.id, &[bob.id]))
        .collect();
    store
        .insert_messages(&messages)
        .await
        .expect("insert_messages");

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
    let sender = new_user(&*store, "sender").await;
    let bob = new_user(&*store, "bob").await;
    let room = new_group(&*store, sender.id, &[(bob.id, Role::Member)]).await;
    assert!(
        store
            .unread_notifications(bob.id, 10)
            .await
            .expect("none yet")
            .is_empty()
    );
    let messages: Vec<Message> = (0..5)
        .map(|_| mentioning(room.id, sender.id, &[bob.id]))
        .collect();
    store
        .insert_messages(&messages)
        .await
        .expect("insert_messages");
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

// ----- room directory and member pages ----------------------------------

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
        vec![a.id, b.id],
        "public groups only, by lower-cased name: {found:?}"
    );
    assert_eq!(found[0].member_count, 2, "with member counts");
    assert_eq!(found[1].member_count, 1);
    let upper_prefix = store
        .public_rooms(&format!("{tag} b"), None, 10)
        .await
        .expect("public_rooms");
    assert_eq!(
        upper_prefix.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![b.id]
    );
    assert!(
        store
            .public_rooms(&format!("{tag}zzz"), None, 10)
            .await
            .expect("no match")
            .is_empty()
    );
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

// ----- room size ---------------------------------------------------------

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

// ----- accounts: sessions, profile, flags, audit ------------------------------

fn session_of(user: Id, lifetime_ms: u64) -> SessionRecord {
    let now = now_ms();
    SessionRecord {
        id: next_id(),
        user,
        created_at: now,
        expires_at: now + lifetime_ms,
    }
}

pub async fn sessions_are_revoked_one_or_all_but_one(store: Arc<dyn Store>) {
    let user = new_user(&*store, "sessions").await;
    let other = new_user(&*store, "bystander").await;
    let [a, b, c] = [(); 3].map(|()| session_of(user.id, 3_600_000));
    let theirs = session_of(other.id, 3_600_000);
    for session in [a, b, c, theirs] {
        store.create_session(session).await.expect("create_session");
    }
    let now = now_ms();
    let one = store
        .revoke_session(user.id, a.id, now)
        .await
        .expect("revoke_session");
    assert_eq!(
        one,
        Some(Revocation {
            session: a.id,
            user: user.id,
            expires_at: a.expires_at
        })
    );
    assert_eq!(
        store.revoke_session(user.id, theirs.id, now).await.unwrap(),
        None,
        "another user's session is not the caller's to revoke"
    );
    assert_eq!(
        store.revoke_session(user.id, a.id, now).await.unwrap(),
        one,
        "revoking twice is harmless"
    );
    let mut all = store
        .revoke_sessions(user.id, Some(c.id), now)
        .await
        .expect("revoke_sessions");
    all.sort_by_key(|r| r.session);
    let mut expected: Vec<Id> = vec![a.id, b.id];
    expected.sort();
    assert_eq!(
        all.iter().map(|r| r.session).collect::<Vec<_>>(),
        expected,
        "all but the kept session, already revoked ones included"
    );
    let outstanding = store.revocations(now).await.expect("revocations");
    let revoked: HashSet<Id> = outstanding.iter().map(|r| r.session).collect();
    assert!(revoked.contains(&a.id) && revoked.contains(&b.id));
    assert!(!revoked.contains(&c.id), "the kept session is not revoked");
    assert!(!revoked.contains(&theirs.id), "other users are untouched");
}

pub async fn revocations_list_only_unexpired_revoked_sessions(store: Arc<dyn Store>) {
    let user = new_user(&*store, "expiring").await;
    let short = session_of(user.id, 2_000);
    let long = session_of(user.id, 3_600_000);
    store.create_session(short).await.unwrap();
    store.create_session(long).await.unwrap();
    let now = now_ms();
    store.revoke_session(user.id, short.id, now).await.unwrap();
    store.revoke_session(user.id, long.id, now).await.unwrap();
    let later: HashSet<Id> = store
        .revocations(short.expires_at + 1)
        .await
        .unwrap()
        .iter()
        .map(|r| r.session)
        .collect();
    assert!(later.contains(&long.id));
    assert!(
        !later.contains(&short.id),
        "an expired session needs no revocation"
    );
}

pub async fn profile_and_password_changes_stick(store: Arc<dyn Store>) {
    let user = new_user(&*store, "profile").await;
    let renamed = store
        .set_display_name(user.id, "New Name")
        .await
        .expect("set_display_name")
        .expect("a known user");
    assert_eq!(renamed.display_name, "New Name");
    assert_eq!(renamed.username, user.username);
    assert_eq!(
        store.user(user.id).await.unwrap().unwrap().display_name,
        "New Name"
    );
    assert!(
        store
            .set_password_hash(user.id, "$argon2id$new")
            .await
            .unwrap()
    );
    let credentials = store.credentials(&user.username).await.unwrap().unwrap();
    assert_eq!(credentials.password_hash, "$argon2id$new");
    let unknown = next_id();
    assert_eq!(store.set_display_name(unknown, "x").await.unwrap(), None);
    assert!(!store.set_password_hash(unknown, "x").await.unwrap());
}

pub async fn account_flags_start_off_and_toggle(store: Arc<dyn Store>) {
    let user = new_user(&*store, "flags").await;
    assert_eq!(
        store.account_flags(user.id).await.unwrap(),
        AccountFlags::default()
    );
    store.set_admin(user.id, true).await.unwrap();
    store.set_banned(user.id, true).await.unwrap();
    assert_eq!(
        store.account_flags(user.id).await.unwrap(),
        AccountFlags {
            admin: true,
            banned: true
        }
    );
    store.set_banned(user.id, false).await.unwrap();
    assert_eq!(
        store.account_flags(user.id).await.unwrap(),
        AccountFlags {
            admin: true,
            banned: false
        },
        "flags change independently"
    );
    store.set_admin(user.id, false).await.unwrap();
    assert_eq!(
        store.account_flags(user.id).await.unwrap(),
        AccountFlags::default()
    );
}

pub async fn audit_events_page_newest_first_and_filter(store: Arc<dyn Store>) {
    let actor = new_user(&*store, "auditor").await;
    let target = new_user(&*store, "audited").await;
    let mut events = Vec::new();
    for (i, kind) in ["login", "logout", "login", "ban", "login"]
        .iter()
        .enumerate()
    {
        let id = next_id();
        events.push(AuditEvent {
            id,
            at: id.unix_ms(),
            kind: (*kind).to_owned(),
            actor_id: Some(actor.id),
            target_id: (*kind == "ban").then_some(target.id),
            room_id: None,
            ip: Some(format!("10.0.0.{i}")),
            detail: None,
        });
    }
    let day = 24 * 60 * 60 * 1000;
    store
        .insert_audit(&events, day)
        .await
        .expect("insert_audit");
    store
        .insert_audit(&events[..1], day)
        .await
        .expect("inserting again is harmless");
    let filter = |before: Option<Id>, limit: u32, kind: Option<&str>, user: Id| AuditFilter {
        before,
        limit,
        kind: kind.map(str::to_owned),
        user: Some(user),
        since: now_ms() - day,
    };
    let (first, more) = store
        .audit_events(filter(None, 3, None, actor.id))
        .await
        .expect("audit_events");
    let newest: Vec<Id> = events.iter().rev().map(|e| e.id).collect();
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), newest[..3]);
    assert!(more);
    assert_eq!(first[0], events[4], "events round trip");
    let (rest, more) = store
        .audit_events(filter(Some(first[2].id), 3, None, actor.id))
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), newest[3..]);
    assert!(!more);
    let (logins, _) = store
        .audit_events(filter(None, 10, Some("login"), actor.id))
        .await
        .unwrap();
    assert_eq!(logins.len(), 3);
    let (of_target, _) = store
        .audit_events(filter(None, 10, None, target.id))
        .await
        .unwrap();
    assert_eq!(
        of_target.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![events[3].id]
    );
}
