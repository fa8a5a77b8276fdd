//! The ScyllaDB store: the production message store, partitioned by room and
//! time, so that a cluster keeps any number of messages and a page of
//! history stays one partition slice.
//!
//! Layout:
//! - [`ScyllaStore`] (here): the session, the prepared statements, and the
//!   [`Store`] trait wired to the three halves below;
//! - `users`, `rooms`, `messages`, `files`, `notifications`, `directory`: the store's operations, each a few
//!   statements, with the lightweight transactions where uniqueness needs
//!   them (usernames, rooms and DMs, memberships);
//! - `schema`: the keyspace and tables (`migrate`);
//! - `statements`: every CQL statement, prepared once;
//! - `buckets` and `paging`: the time buckets of history and the walk over
//!   them (pure, property-tested);
//! - `rows`: how rows map to the store's types; `lwt`: reading the answer of
//!   a lightweight transaction; `errors`: how driver errors map to
//!   [`StoreError`];
//! - `config`: [`ScyllaOptions`].
//!
//! The driver's default load balancing gives token-aware (and shard-aware)
//! routing to the replicas of each statement's partition; retries and
//! speculative execution apply to idempotent statements only (see
//! `execution_profile`). docs/scylla.md explains the schema, the
//! consistency levels and how to run the conformance suite against a real
//! cluster.

mod accounts;
mod buckets;
mod config;
mod directory;
mod errors;
mod files;
mod lwt;
mod messages;
mod notifications;
mod paging;
mod rooms;
mod rows;
mod schema;
mod statements;
mod tls;
mod users;

#[cfg(test)]
mod schema_tests;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::{Id, Message, Notification, Role, Room, RoomId};
use futures::{StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::errors::ExecutionError;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::policies::speculative_execution::SimpleSpeculativeExecutionPolicy;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::response::PagingState;
use scylla::response::query_result::QueryResult;
use scylla::serialize::batch::BatchValues;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::Batch;
use scylla::statement::prepared::PreparedStatement;

pub use self::accounts::REVOCATION_DAYS;
pub use self::buckets::{Buckets, DEFAULT_WINDOW, MIN_WINDOW};
pub use self::config::{
    Consistency, DEFAULT_REPLICATION_FACTOR, Replication, ScyllaCredentials, ScyllaOptions,
    SerialConsistency, parse_consistency, parse_serial_consistency,
};
use self::lwt::{Lwt, LwtAnswer};
use self::statements::Statements;
pub use self::tls::TlsOptions;
use crate::records::*;
use crate::{Result, Store, StoreError};

/// Entries of each write-avoidance cache (buckets known to be indexed,
/// username prefixes known to be in their directory); a cache is emptied
/// when full rather than tracked per entry, which keeps it simple and
/// bounded. Forgetting an entry only costs one idempotent rewrite.
const KNOWN_CACHE: usize = 100_000;

/// A [`Store`] on a ScyllaDB (or Cassandra) cluster. Cheap to share as
/// `Arc<ScyllaStore>` or `Arc<dyn Store>`; every call is independent.
pub struct ScyllaStore {
    session: Session,
    statements: Statements,
    options: ScyllaOptions,
    /// The buckets of rooms created by this process (the configured window).
    default_buckets: Buckets,
    /// Each room's buckets, as stored with the room (never changed, so
    /// never stale).
    room_buckets: KnownMap<RoomId, Buckets>,
    /// `room_buckets` rows this process has written (they are never
    /// deleted), so that a busy bucket is indexed once, not per batch.
    indexed_buckets: KnownSet<(RoomId, i32)>,
    /// `username_prefixes` rows this process has written.
    listed_prefixes: KnownSet<String>,
    /// Requests sent to the cluster (statements, batches, pages), counted
    /// where they leave the store for the session.
    requests: AtomicU64,
}

/// A bounded set of facts this process knows to be stored already.
type KnownSet<T> = KnownMap<T, ()>;

/// A bounded map of facts this process knows to be stored already, each
/// with a value that never changes once stored.
struct KnownMap<K, V> {
    entries: Mutex<HashMap<K, V>>,
}

impl<K: std::hash::Hash + Eq, V: Copy> KnownMap<K, V> {
    fn new() -> KnownMap<K, V> {
        KnownMap {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).copied()
    }

    /// Records `key` and its value (after its write or read succeeded).
    fn put(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= KNOWN_CACHE {
            entries.clear();
        }
        entries.insert(key, value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T: std::hash::Hash + Eq> KnownSet<T> {
    fn contains(&self, entry: &T) -> bool {
        self.get(entry).is_some()
    }

    /// Records `entry` (after its write succeeded).
    fn insert(&self, entry: T) {
        self.put(entry, ());
    }
}

impl std::fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("nodes", &self.options.nodes)
            .field("keyspace", &self.options.keyspace)
            .finish_non_exhaustive()
    }
}

impl ScyllaStore {
    /// Connects to the cluster and prepares every statement. The keyspace
    /// and its tables must exist (see [`ScyllaStore::migrate`]).
    pub async fn connect(options: ScyllaOptions) -> Result<ScyllaStore> {
        options.validate().map_err(StoreError::Internal)?;
        let session = open_session(&options).await?;
        session
            .use_keyspace(options.keyspace.as_str(), false)
            .await?;
        ScyllaStore::ready(session, options).await
    }

    /// Creates the keyspace and the tables where missing (it is safe to run
    /// at every start, and from several processes), records the schema
    /// version on first use, and connects.
    pub async fn migrate(options: ScyllaOptions) -> Result<ScyllaStore> {
        options.validate().map_err(StoreError::Internal)?;
        let session = open_session(&options).await?;
        schema::migrate(&session, &options).await?;
        let store = ScyllaStore::ready(session, options).await?;
        let mut version = store
            .claim_setting(
                schema::SCHEMA_VERSION_SETTING,
                &schema::SCHEMA_VERSION.to_string(),
            )
            .await?;
        if version == schema::UPGRADES_FROM.to_string() {
            let moved = store.fold_directory_keys().await?;
            version = store
                .advance_setting(
                    schema::SCHEMA_VERSION_SETTING,
                    &version,
                    &schema::SCHEMA_VERSION.to_string(),
                )
                .await?;
            tracing::info!(
                keyspace = %store.options.keyspace,
                directory_rows_moved = moved,
                "upgraded the ScyllaDB schema from version {} to {version}",
                schema::UPGRADES_FROM
            );
        }
        if version != schema::SCHEMA_VERSION.to_string() {
            return Err(StoreError::Internal(format!(
                "keyspace {} holds schema version {version}, this build needs {}; \
                 there is no upgrade path (see docs/scylla.md)",
                store.options.keyspace,
                schema::SCHEMA_VERSION
            )));
        }
        Ok(store)
    }

    /// Prepares the statements on a session bound to the keyspace.
    async fn ready(session: Session, options: ScyllaOptions) -> Result<ScyllaStore> {
        let default_buckets = options.buckets().map_err(StoreError::Internal)?;
        let statements = Statements::prepare(&session, &options).await?;
        let store = ScyllaStore {
            session,
            statements,
            default_buckets,
            options,
            room_buckets: KnownMap::new(),
            indexed_buckets: KnownSet::new(),
            listed_prefixes: KnownSet::new(),
            requests: AtomicU64::new(0),
        };
        tracing::info!(
            nodes = ?store.options.nodes,
            keyspace = %store.options.keyspace,
            new_room_bucket_window_ms = default_buckets.window_ms(),
            "connected to ScyllaDB"
        );
        Ok(store)
    }

    /// The buckets of `room`: its stored window, read once per process
    /// (it never changes). A room whose row is not found takes the default
    /// and is not cached: callers check the room exists before they touch
    /// its messages, so this is a room being created right now.
    async fn buckets_of(&self, room: &RoomId) -> Result<Buckets> {
        if let Some(buckets) = self.room_buckets.get(room) {
            return Ok(buckets);
        }
        let stored: Option<(Option<i64>,)> = self
            .first_row(&self.statements.select_room_window, (room.to_string(),))
            .await?;
        let Some((window_ms,)) = stored else {
            return Ok(self.default_buckets);
        };
        let buckets = Buckets::of_room(window_ms, self.default_buckets)
            .map_err(|error| StoreError::Internal(format!("room {room}: {error}")))?;
        self.room_buckets.put(*room, buckets);
        Ok(buckets)
    }

    /// The value of setting `name`, writing `value` if it has none yet.
    async fn claim_setting(&self, name: &str, value: &str) -> Result<String> {
        let stored: Option<(Option<String>,)> = self
            .first_row(&self.statements.select_setting, (name,))
            .await?;
        if let Some((Some(stored),)) = stored {
            return Ok(stored);
        }
        match self
            .lwt(&self.statements.insert_setting, (name, value))
            .await?
        {
            Lwt::Applied => Ok(value.to_owned()),
            // Someone else was first (or we were, and timed out): read it.
            Lwt::NotApplied(_) | Lwt::Uncertain(_) => self.recorded_setting(name).await,
        }
    }

    /// The value of setting `name`, after a write of it whose outcome is
    /// not known here.
    async fn recorded_setting(&self, name: &str) -> Result<String> {
        let stored: Option<(Option<String>,)> = self
            .first_row(&self.statements.select_setting, (name,))
            .await?;
        stored
            .and_then(|(value,)| value)
            .ok_or_else(|| StoreError::Unavailable(format!("cannot record the setting {name}")))
    }

    /// Moves setting `name` from `from` to `to`, and answers its value
    /// after: `to`, unless it held neither (another process may have moved
    /// it first, which answers `to` as well).
    async fn advance_setting(&self, name: &str, from: &str, to: &str) -> Result<String> {
        match self
            .lwt(&self.statements.advance_setting, (to, name, from))
            .await?
        {
            Lwt::Applied => Ok(to.to_owned()),
            Lwt::NotApplied(_) | Lwt::Uncertain(_) => self.recorded_setting(name).await,
        }
    }

    /// The options this store was opened with.
    pub fn options(&self) -> &ScyllaOptions {
        &self.options
    }

    /// Nothing to flush: every write is acknowledged by the cluster before
    /// its call returns. Kept so that callers can treat stores alike.
    pub async fn close(&self) {}

    /// How many requests this store has sent to the cluster since it was
    /// opened: every statement, batch and page of a paged read, including
    /// failed ones (the driver's own retries and speculative executions are
    /// not counted). For tests and diagnostics: the difference across a call
    /// is that call's cost in round trips to the cluster.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    // ----- execution helpers ---------------------------------------------
    //
    // Every request to the cluster goes through one of these (or `batch`),
    // which count it.

    /// Counts one request about to be sent.
    fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs a statement.
    async fn execute(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<QueryResult> {
        self.count_request();
        Ok(self.session.execute_unpaged(statement, values).await?)
    }

    /// Runs a batch.
    async fn batch(
        &self,
        batch: &Batch,
        values: impl BatchValues,
    ) -> std::result::Result<QueryResult, ExecutionError> {
        self.count_request();
        self.session.batch(batch, values).await
    }

    /// The rows of a statement whose result is bounded (a LIMIT, a key).
    async fn rows<T>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<T>>
    where
        T: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>,
    {
        let rows = self.execute(statement, values).await?.into_rows_result()?;
        let rows = rows.rows::<T>()?.collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    /// The first row of a statement, if any.
    async fn first_row<T>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Option<T>>
    where
        T: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>,
    {
        let rows = self.execute(statement, values).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<T>()?)
    }

    /// Every row of a statement whose result may be large (a whole
    /// partition), fetched page by page (each page one counted request).
    async fn all_rows<T>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<T>>
    where
        T: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata> + 'static,
    {
        let mut all = Vec::new();
        let mut paging_state = PagingState::start();
        loop {
            self.count_request();
            let (result, paging) = self
                .session
                .execute_single_page(statement, &values, paging_state)
                .await?;
            let rows = result.into_rows_result()?;
            for row in rows.rows::<T>()? {
                all.push(row?);
            }
            match paging.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(all),
                ControlFlow::Continue(next) => paging_state = next,
            }
        }
    }

    /// Runs a lightweight transaction.
    async fn lwt(&self, statement: &PreparedStatement, values: impl SerializeRow) -> Result<Lwt> {
        self.count_request();
        match self.session.execute_unpaged(statement, values).await {
            Ok(result) => {
                let answer = LwtAnswer::from_result(result)?;
                Ok(if answer.applied {
                    Lwt::Applied
                } else {
                    Lwt::NotApplied(answer)
                })
            }
            Err(error) if errors::is_uncertain(&error) => {
                tracing::warn!(%error, "lightweight transaction outcome unknown");
                Ok(Lwt::Uncertain(error))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Runs `job` over `items`, at most `options.concurrency` at a time,
    /// answering their outputs in no particular order, or the first error.
    async fn concurrently<I, T, F, Fut>(&self, items: I, job: F) -> Result<Vec<T>>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        futures::stream::iter(items)
            .map(job)
            .buffer_unordered(self.options.concurrency)
            .try_collect()
            .await
    }
}

/// When a read (or any idempotent statement) that has not answered is sent
/// to a second replica as well. Well above a healthy cluster's p99 (single
/// digit milliseconds), so it fires only on a slow or dying replica, and
/// at most once, so it adds at most one request's load.
const SPECULATIVE_DELAY: Duration = Duration::from_millis(50);

/// The execution profile of every statement:
///
/// - load balancing: the driver's `DefaultPolicy`, token-aware (each
///   statement goes to a replica of its partition, and to the shard owning
///   the token: the driver keeps a connection per shard), preferring the
///   local data centre if one is named; lightweight transactions go to the
///   partition's primary replica first, which avoids Paxos contention
///   between coordinators;
/// - retries: the driver's `DefaultRetryPolicy`: retry on another node
///   when the coordinator was overloaded or not yet bootstrapped, and after
///   a read or write timeout only for idempotent statements (every plain
///   statement here; never lightweight transactions or counter updates);
/// - speculative execution: one extra attempt after [`SPECULATIVE_DELAY`],
///   applied by the driver to idempotent statements only;
/// - the read consistency (statements carry their own), the serial
///   consistency and the request timeout from the options.
fn execution_profile(options: &ScyllaOptions) -> ExecutionProfile {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(datacenter) = &options.local_datacenter {
        policy = policy.prefer_datacenter(datacenter.clone());
    }
    ExecutionProfile::builder()
        .load_balancing_policy(policy.build())
        .retry_policy(Arc::new(DefaultRetryPolicy::new()))
        .speculative_execution_policy(Some(Arc::new(SimpleSpeculativeExecutionPolicy {
            max_retry_count: 1,
            retry_interval: SPECULATIVE_DELAY,
        })))
        .consistency(options.read_consistency)
        .serial_consistency(Some(options.serial_consistency))
        .request_timeout(Some(options.request_timeout))
        .build()
}

/// A session to the configured nodes with [`execution_profile`] and
/// client-side monotonic write timestamps, so that one process's
/// successive writes to a cell apply in order whatever coordinator
/// receives them.
/// With `credentials`, it authenticates (PasswordAuthenticator); with
/// `tls`, every connection is TLS (see [`tls`]).
async fn open_session(options: &ScyllaOptions) -> Result<Session> {
    let mut builder = SessionBuilder::new()
        .known_nodes(&options.nodes)
        .connection_timeout(options.connect_timeout)
        .default_execution_profile_handle(execution_profile(options).into_handle())
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()));
    if let Some(credentials) = &options.credentials {
        builder = builder.user(&credentials.username, credentials.password());
    }
    if let Some(tls) = &options.tls {
        let config = tls.client_config().map_err(StoreError::Internal)?;
        builder = builder.tls_context(Some(config));
    }
    let session = builder.build().await?;
    Ok(session)
}

/// Microseconds since the Unix epoch for a write that must land after the
/// message's insert (stamped with the id's time): "now", or just after the
/// insert if this clock lags the one that minted the id.
fn after_insert_timestamp(id: Id) -> i64 {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_micros(),
    )
    .unwrap_or(i64::MAX);
    now.max(rows::id_write_timestamp(id).saturating_add(1))
}

#[async_trait]
impl Store for ScyllaStore {
    async fn ping(&self) -> Result<()> {
        self.execute(&self.statements.ping, ()).await?;
        Ok(())
    }

    // ----- users -------------------------------------------------------

    async fn create_user(&self, user: NewUser) -> Result<UserRecord> {
        self.create_user_impl(user).await
    }

    async fn user(&self, id: Id) -> Result<Option<UserRecord>> {
        Ok(self.user_row(id).await?.and_then(|row| row.into_user()))
    }

    async fn users(&self, ids: &[Id]) -> Result<Vec<UserRecord>> {
        self.users_impl(ids).await
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        self.credentials_impl(username).await
    }

    async fn users_by_username(&self, usernames: &[String]) -> Result<Vec<UserRecord>> {
        self.users_by_username_impl(usernames).await
    }

    async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserRecord>> {
        self.search_users_impl(prefix, limit).await
    }

    async fn set_last_seen(&self, user: Id, at: u64) -> Result<()> {
        self.execute(
            &self.statements.set_last_seen,
            (rows::time_to_cql(at), rows::id_to_cql(user)),
        )
        .await?;
        Ok(())
    }

    // ----- rooms and members -------------------------------------------

    async fn create_room(&self, room: NewRoom, members: &[(Id, Role)]) -> Result<Room> {
        if let Some(max_members) = room.max_members {
            self.insert_room_limit(&room.id, max_members).await?;
        }
        let id = room.id;
        let room = match self.create_room_impl(room, members).await {
            // The same creation again (handled again after its router
            // died) when the first stopped before its listing (the
            // listing failed, or the process died in between): the room
            // it finds is listed now, or it would stay unlisted for good.
            Err(StoreError::Conflict(detail)) => {
                if let Some(existing) = self.room_impl(&id).await? {
                    self.list_in_directory(&existing).await?;
                }
                return Err(StoreError::Conflict(detail));
            }
            created => created?,
        };
        // Listed once it exists; a failure here fails the call (the room
        // stays, unlisted until the creation is tried again).
        self.list_in_directory(&room).await?;
        Ok(room)
    }

    async fn open_dm(&self, room: NewRoom) -> Result<(Room, bool)> {
        self.open_dm_impl(room).await
    }

    async fn room(&self, id: &RoomId) -> Result<Option<Room>> {
        self.room_impl(id).await
    }

    async fn membership(&self, room: &RoomId, user: Id) -> Result<Option<Membership>> {
        self.membership_impl(room, user).await
    }

    async fn memberships(&self, room: &RoomId, users: &[Id]) -> Result<Vec<(Id, Role)>> {
        self.memberships_impl(room, users).await
    }

    async fn add_member(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
    ) -> Result<bool> {
        self.add_member_impl(room, user, role, joined_at).await
    }

    async fn add_member_within(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
        max_members: u32,
    ) -> Result<MemberAdded> {
        self.add_member_within_impl(room, user, role, joined_at, max_members)
            .await
    }

    async fn remove_member(&self, room: &RoomId, user: Id) -> Result<bool> {
        self.remove_member_impl(room, user).await
    }

    async fn set_owner(&self, room: &RoomId, user: Id) -> Result<()> {
        self.set_owner_impl(room, user).await
    }

    async fn members(&self, room: &RoomId) -> Result<Vec<MemberRecord>> {
        self.members_impl(room).await
    }

    async fn member_ids(&self, room: &RoomId) -> Result<Vec<Id>> {
        self.member_ids_impl(room).await
    }

    async fn rooms_of(&self, user: Id) -> Result<Vec<UserRoom>> {
        self.rooms_of_impl(user).await
    }

    async fn membership_version(&self, room: &RoomId) -> Result<u64> {
        self.membership_version_impl(room).await
    }

    // ----- read positions ----------------------------------------------

    async fn mark_read(&self, room: &RoomId, user: Id, message_id: Id) -> Result<bool> {
        self.mark_read_impl(room, user, message_id).await
    }

    async fn unread_count(
        &self,
        room: &RoomId,
        user: Id,
        after: Option<Id>,
        cap: u32,
    ) -> Result<u32> {
        self.unread_count_impl(room, user, after, cap).await
    }

    // ----- messages ----------------------------------------------------

    async fn insert_messages(&self, messages: &[Message]) -> Result<MembershipVersions> {
        self.insert_messages_impl(messages).await?;
        // Before returning: nothing is acknowledged without its mentions.
        self.insert_notifications(messages).await?;
        Ok(self.membership_versions_of(messages).await)
    }

    async fn message(&self, room: &RoomId, id: Id) -> Result<Option<Message>> {
        self.message_impl(room, id).await
    }

    async fn message_by_client_id(
        &self,
        sender: Id,
        client_id: &str,
        since: Id,
    ) -> Result<Option<Message>> {
        self.message_by_client_id_impl(sender, client_id, since)
            .await
    }

    async fn messages(&self, room: &RoomId, page: PageRequest) -> Result<Page> {
        self.messages_impl(room, page).await
    }

    async fn last_message(&self, room: &RoomId) -> Result<Option<Message>> {
        self.last_message_impl(room).await
    }

    async fn edit_message(
        &self,
        room: &RoomId,
        id: Id,
        content: &str,
        mentions: &[Id],
        edited_at: u64,
    ) -> Result<Option<Message>> {
        self.edit_message_impl(room, id, content, mentions, edited_at)
            .await
    }

    async fn delete_message(&self, room: &RoomId, id: Id) -> Result<Option<Message>> {
        self.delete_message_impl(room, id).await
    }

    // ----- files -------------------------------------------------------

    async fn insert_file(&self, file: FileRecord) -> Result<()> {
        self.insert_file_impl(file).await
    }

    async fn file(&self, id: Id) -> Result<Option<FileRecord>> {
        self.file_impl(id).await
    }

    async fn uploaded_bytes(&self, uploader: Id) -> Result<u64> {
        self.uploaded_bytes_impl(uploader).await
    }

    async fn link_files(&self, room: &RoomId, message: Id, files: &[Id]) -> Result<()> {
        self.link_files_impl(room, message, files).await
    }

    async fn file_rooms(&self, file: Id) -> Result<Vec<RoomId>> {
        self.file_rooms_impl(file).await
    }

    async fn unlink_files(&self, room: &RoomId, message: Id, files: &[Id], at: u64) -> Result<()> {
        self.unlink_files_impl(room, message, files, at).await
    }

    async fn unreferenced_files(&self, before: u64, limit: u32) -> Result<Vec<FileRecord>> {
        self.unreferenced_files_impl(before, limit).await
    }

    async fn delete_file(&self, id: Id) -> Result<()> {
        self.delete_file_impl(id).await
    }

    // ----- notifications -----------------------------------------------

    async fn notifications(
        &self,
        user: Id,
        before: Option<Id>,
        limit: u32,
    ) -> Result<NotificationPage> {
        self.notifications_impl(user, before, limit).await
    }

    async fn mark_notifications_read(&self, user: Id, up_to: Id) -> Result<()> {
        self.mark_notifications_read_impl(user, up_to).await
    }

    async fn unread_notifications(&self, user: Id, cap: u32) -> Result<Vec<Notification>> {
        self.unread_notifications_impl(user, cap).await
    }

    // ----- room directory and member pages -----------------------------

    async fn members_page(
        &self,
        room: &RoomId,
        after: Option<Id>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>> {
        self.members_page_impl(room, after, limit).await
    }

    async fn public_rooms(
        &self,
        prefix: &str,
        after: Option<DirectoryCursor>,
        limit: u32,
    ) -> Result<Vec<Room>> {
        self.public_rooms_impl(prefix, after, limit).await
    }

    // ----- accounts: sessions, profile, flags, audit -------------------

    async fn create_session(&self, session: SessionRecord) -> Result<()> {
        self.create_session_impl(session).await
    }

    async fn revoke_session(&self, user: Id, session: Id, at: u64) -> Result<Option<Revocation>> {
        self.revoke_session_impl(user, session, at).await
    }

    async fn revoke_sessions(
        &self,
        user: Id,
        except: Option<Id>,
        at: u64,
    ) -> Result<Vec<Revocation>> {
        self.revoke_sessions_impl(user, except, at).await
    }

    async fn revocations(&self, now: u64) -> Result<Vec<Revocation>> {
        self.revocations_impl(now).await
    }

    async fn set_display_name(&self, user: Id, display_name: &str) -> Result<Option<UserRecord>> {
        self.set_display_name_impl(user, display_name).await
    }

    async fn set_password_hash(&self, user: Id, password_hash: &str) -> Result<bool> {
        self.set_password_hash_impl(user, password_hash).await
    }

    async fn account_flags(&self, user: Id) -> Result<AccountFlags> {
        self.account_flags_impl(user).await
    }

    async fn set_admin(&self, user: Id, admin: bool) -> Result<()> {
        self.set_admin_impl(user, admin).await
    }

    async fn set_banned(&self, user: Id, banned: bool) -> Result<()> {
        self.set_banned_impl(user, banned).await
    }

    async fn insert_audit(&self, events: &[AuditEvent], retention_ms: u64) -> Result<()> {
        self.insert_audit_impl(events, retention_ms).await
    }

    async fn audit_events(&self, filter: AuditFilter) -> Result<(Vec<AuditEvent>, bool)> {
        self.audit_events_impl(filter).await
    }

    async fn prune_audit(&self, _before: u64) -> Result<u64> {
        Ok(accounts::prune_audit_noop())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_routes_by_token_and_speculates_once() {
        let options = ScyllaOptions {
            local_datacenter: Some("eu-west".into()),
            ..ScyllaOptions::default()
        };
        let profile = execution_profile(&options);
        let routing = format!("{:?}", profile.get_load_balancing_policy());
        assert!(routing.contains("is_token_aware: true"), "{routing}");
        assert!(routing.contains("eu-west"), "{routing}");
        let speculation = format!("{:?}", profile.get_speculative_execution_policy());
        assert!(speculation.contains("max_retry_count: 1"), "{speculation}");
        assert!(format!("{:?}", profile.get_retry_policy()).contains("DefaultRetryPolicy"));
        assert_eq!(profile.get_consistency(), options.read_consistency);
        assert_eq!(profile.get_request_timeout(), Some(options.request_timeout));
    }
}
