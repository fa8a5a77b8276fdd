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
//!
//! The cases stand in a module per concept (`users`, `rooms`, `reads`,
//! `messages`, `scale`, `files`, `notifications`, `directory`,
//! `room_size`, `accounts`), all re-exported here under their own names;
//! `fixtures` makes the fresh data they share (its [`plain_message`] is
//! public, for an implementation's own cases).

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use crate::Store;

mod accounts;
mod directory;
mod files;
mod fixtures;
mod messages;
mod notifications;
mod reads;
mod room_size;
mod rooms;
mod scale;
mod users;

pub use accounts::*;
pub use directory::*;
pub use files::*;
pub use messages::*;
pub use notifications::*;
pub use reads::*;
pub use room_size::*;
pub use rooms::*;
pub use scale::*;
pub use users::*;

pub use fixtures::plain_message;

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
            a_public_room_created_again_stays_listed_once,
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
