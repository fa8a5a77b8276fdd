//! The SQLite store: the embedded default, so that a single `chatd` needs
//! nothing but a data directory.
//!
//! Layout:
//! - [`SqliteStore`] (here) wires the [`Store`] trait to the two halves:
//!   reads on a small r2d2 pool of connections, run on tokio's blocking
//!   threads, and writes through the group-commit `writer`, the one thread
//!   that owns the write connection;
//! - `connection`: pragmas (WAL, `synchronous=FULL` unless configured, busy timeout);
//! - `schema`: the migrations;
//! - `users`, `rooms`, `messages`, `files`, `notifications`, `directory`: the SQL, as plain functions over a
//!   connection;
//! - `rows`: how rows map to the store's types;
//! - `errors`: how SQLite errors map to [`StoreError`].
//!
//! Several processes may open the same file: migrations and every write
//! transaction take SQLite's write lock with `BEGIN IMMEDIATE`, waiting (up
//! to the busy timeout) for each other.

mod accounts;
mod connection;
mod directory;
mod errors;
mod files;
mod messages;
mod notifications;
mod rooms;
mod rows;
mod schema;
mod users;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::{Id, Message, Notification, Role, Room, RoomId};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, Transaction};

use self::rows::MessageRow;
use self::writer::{Writer, WriterOptions};
use crate::records::*;
use crate::{Result, Store, StoreError};

/// Tuning of a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Read connections kept open (reads run in parallel, one per connection).
    pub read_pool_size: u32,
    /// Most writes committed together in one transaction.
    pub max_batch: usize,
    /// Most writes waiting for the writer thread before callers wait to enqueue.
    pub queue_capacity: usize,
    /// How long a connection waits for a lock held by another connection or
    /// process before giving up with `Unavailable`.
    pub busy_timeout: Duration,
    /// When a commit is on disk (see [`Synchronous`]).
    pub synchronous: Synchronous,
}

/// SQLite's `synchronous` setting for the write connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// An fsync per commit (per group commit): an acknowledged message
    /// survives a power loss or an OS crash. The default, because an ack
    /// promises durability.
    #[default]
    Full,
    /// No fsync per commit: survives a crash of the process, but a power
    /// loss or an OS crash can lose the last acknowledged messages. Only by
    /// explicit configuration.
    Normal,
}

impl Synchronous {
    /// The pragma's value.
    pub fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            read_pool_size: 4,
            max_batch: 256,
            queue_capacity: 4096,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::default(),
        }
    }
}

/// A [`Store`] in one SQLite file. Share it as `Arc<SqliteStore>` (or
/// `Arc<dyn Store>`).
///
/// Dropping it without [`SqliteStore::close`] still commits the writes
/// already queued, but does not wait for them.
pub struct SqliteStore {
    path: PathBuf,
    readers: r2d2::Pool<SqliteConnectionManager>,
    writer: Writer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed, parent directory included) the database at
    /// `path`, brings its schema up to date and starts the writer thread.
    ///
    /// Blocks on file I/O and, if another process holds the file, for up to
    /// the busy timeout: call it at startup or from a blocking context.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Unavailable(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let busy_timeout = options.busy_timeout;
        let write_connection = connection::open_writer(&path, busy_timeout, options.synchronous)?;
        schema::migrate(&write_connection, busy_timeout)?;

        let readers = r2d2::Pool::builder()
            .max_size(options.read_pool_size.max(1))
            .connection_timeout(busy_timeout)
            .build(
                SqliteConnectionManager::file(&path)
                    .with_init(move |reader| connection::configure_reader(reader, busy_timeout)),
            )?;

        let writer = Writer::spawn(
            write_connection,
            WriterOptions {
                max_batch: options.max_batch,
                queue_capacity: options.queue_capacity,
                busy_timeout,
            },
        )?;
        tracing::info!(path = %path.display(), "opened SQLite store");
        Ok(SqliteStore {
            path,
            readers,
            writer,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits every write already queued, then stops the writer thread.
    /// Writes after this fail with `Unavailable("store is closed")`; reads
    /// keep working until the store is dropped. Safe to call more than once.
    pub async fn close(&self) {
        self.writer.close().await;
    }

    /// Runs `query` on a pooled read connection, off the async threads.
    async fn read<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let connection = readers.get()?;
            query(&connection)
        })
        .await
        .map_err(|error| StoreError::Internal(format!("SQLite read task failed: {error}")))?
    }

    /// Runs a lookup by key on the calling thread when a pooled connection
    /// is free at once, else as [`read`](Self::read). Such a lookup reads a
    /// few cached pages and takes microseconds, less than handing it to a
    /// blocking thread and back (two thread wake-ups and a task wake-up),
    /// and the router and writer do several per message (membership, room,
    /// `client_id`, membership version).
    /// Only for queries bounded by an index to a row or a few; in WAL mode
    /// a reader waits for nobody except WAL recovery after a crash.
    async fn lookup<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        match self.readers.try_get() {
            Some(connection) => query(&connection),
            None => self.read(query).await,
        }
    }

    /// Runs `job` in the writer's next group commit; `Ok` once durable.
    async fn write<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.writer.execute(job).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        if self.writer.is_closed() {
            return Err(StoreError::Unavailable("store is closed".into()));
        }
        self.read(|connection| {
            connection.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    // ----- users -------------------------------------------------------

    async fn create_user(&self, user: NewUser) -> Result<UserRecord> {
        self.write(move |tx| users::insert(tx, &user)).await
    }

    async fn user(&self, id: Id) -> Result<Option<UserRecord>> {
        self.lookup(move |connection| users::by_id(connection, id))
            .await
    }

    async fn users(&self, ids: &[Id]) -> Result<Vec<UserRecord>> {
        let ids = ids.to_vec();
        self.read(move |connection| users::by_ids(connection, &ids))
            .await
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let username = username.to_owned();
        self.read(move |connection| users::credentials(connection, &username))
            .await
    }

    async fn users_by_username(&self, usernames: &[String]) -> Result<Vec<UserRecord>> {
        let usernames = usernames.to_vec();
        self.read(move |connection| users::by_usernames(connection, &usernames))
            .await
    }

    async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserRecord>> {
        let prefix = prefix.to_owned();
        self.read(move |connection| users::search(connection, &prefix, limit))
            .await
    }

    async fn set_last_seen(&self, user: Id, at: u64) -> Result<()> {
        self.write(move |tx| users::set_last_seen(tx, user, at))
            .await
    }

    // ----- rooms and members -------------------------------------------

    async fn create_room(&self, room: NewRoom, members: &[(Id, Role)]) -> Result<Room> {
        let members = members.to_vec();
        self.write(move |tx| rooms::create(tx, &room, &members))
            .await
    }

    async fn open_dm(&self, room: NewRoom) -> Result<(Room, bool)> {
        self.write(move |tx| rooms::open_dm(tx, &room)).await
    }

    async fn room(&self, id: &RoomId) -> Result<Option<Room>> {
        let id = *id;
        self.lookup(move |connection| rooms::by_id(connection, &id))
            .await
    }

    async fn membership(&self, room: &RoomId, user: Id) -> Result<Option<Membership>> {
        let room = *room;
        self.lookup(move |connection| rooms::membership(connection, &room, user))
            .await
    }

    async fn memberships(&self, room: &RoomId, users: &[Id]) -> Result<Vec<(Id, Role)>> {
        let (room, users) = (*room, users.to_vec());
        self.read(move |connection| rooms::memberships(connection, &room, &users))
            .await
    }

    async fn add_member(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
    ) -> Result<bool> {
        let room = *room;
        self.write(move |tx| rooms::add_member(tx, &room, user, role, joined_at))
            .await
    }

    async fn add_member_within(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
        max_members: u32,
    ) -> Result<MemberAdded> {
        let room = *room;
        self.write(move |tx| {
            directory::add_member_within(tx, &room, user, role, joined_at, max_members)
        })
        .await
    }

    async fn remove_member(&self, room: &RoomId, user: Id) -> Result<bool> {
        let room = *room;
        self.write(move |tx| rooms::remove_member(tx, &room, user))
            .await
    }

    async fn set_owner(&self, room: &RoomId, user: Id) -> Result<()> {
        let room = *room;
        self.write(move |tx| rooms::set_owner(tx, &room, user))
            .await
    }

    async fn members(&self, room: &RoomId) -> Result<Vec<MemberRecord>> {
        let room = *room;
        self.read(move |connection| rooms::members(connection, &room))
            .await
    }

    async fn member_ids(&self, room: &RoomId) -> Result<Vec<Id>> {
        let room = *room;
        self.read(move |connection| rooms::member_ids(connection, &room))
            .await
    }

    async fn rooms_of(&self, user: Id) -> Result<Vec<UserRoom>> {
        self.read(move |connection| rooms::rooms_of(connection, user))
            .await
    }

    async fn membership_version(&self, room: &RoomId) -> Result<u64> {
        let room = *room;
        self.lookup(move |connection| rooms::membership_version(connection, &room))
            .await
    }

    // ----- read positions ----------------------------------------------

    async fn mark_read(&self, room: &RoomId, user: Id, message_id: Id) -> Result<bool> {
        let room = *room;
        self.write(move |tx| rooms::mark_read(tx, &room, user, message_id))
            .await
    }

    async fn unread_count(
        &self,
        room: &RoomId,
        user: Id,
        after: Option<Id>,
        cap: u32,
    ) -> Result<u32> {
        let room = *room;
        self.read(move |connection| messages::unread_count(connection, &room, user, after, cap))
            .await
    }

    // ----- messages ----------------------------------------------------

    async fn insert_messages(&self, messages: &[Message]) -> Result<MembershipVersions> {
        if messages.is_empty() {
            return Ok(MembershipVersions::new());
        }
        // Encoded here so that the writer thread only runs SQL.
        let rows = messages
            .iter()
            .map(MessageRow::encode)
            .collect::<Result<Vec<_>>>()?;
        // One job, one transaction: the mentions are durable with the messages.
        let mentions: Vec<(Id, Notification)> = messages
            .iter()
            .flat_map(|message| {
                let notification = Notification::of_mention(message);
                message
                    .mentions
                    .iter()
                    .map(move |user| (*user, notification.clone()))
            })
            .collect();
        let rooms: Vec<RoomId> = messages.iter().map(|message| message.room_id).collect();
        self.write(move |tx| {
            messages::insert_all(tx, &rows)?;
            notifications::insert_all(tx, &mentions)?;
            // In the write's transaction: its pages are in the writer's
            // cache, where a separate read would take a read lock and
            // re-read pages every commit made stale.
            rooms::membership_versions(tx, &rooms)
        })
        .await
    }

    async fn message(&self, room: &RoomId, id: Id) -> Result<Option<Message>> {
        let room = *room;
        self.lookup(move |connection| messages::by_id(connection, &room, id))
            .await
    }

    async fn message_by_client_id(
        &self,
        sender: Id,
        client_id: &str,
        since: Id,
    ) -> Result<Option<Message>> {
        let client_id = client_id.to_owned();
        self.lookup(move |connection| messages::by_client_id(connection, sender, &client_id, since))
            .await
    }

    async fn messages(&self, room: &RoomId, page: PageRequest) -> Result<Page> {
        let room = *room;
        self.read(move |connection| messages::page(connection, &room, page))
            .await
    }

    async fn last_message(&self, room: &RoomId) -> Result<Option<Message>> {
        let room = *room;
        self.read(move |connection| messages::last(connection, &room))
            .await
    }

    async fn edit_message(
        &self,
        room: &RoomId,
        id: Id,
        content: &str,
        mentions: &[Id],
        edited_at: u64,
    ) -> Result<Option<Message>> {
        let (room, content, mentions) = (*room, content.to_owned(), mentions.to_vec());
        self.write(move |tx| messages::edit(tx, &room, id, &content, &mentions, edited_at))
            .await
    }

    async fn delete_message(&self, room: &RoomId, id: Id) -> Result<Option<Message>> {
        let room = *room;
        self.write(move |tx| messages::delete(tx, &room, id)).await
    }

    // ----- files -------------------------------------------------------

    async fn insert_file(&self, file: FileRecord) -> Result<()> {
        self.write(move |tx| files::insert(tx, &file)).await
    }

    async fn file(&self, id: Id) -> Result<Option<FileRecord>> {
        self.read(move |connection| files::by_id(connection, id))
            .await
    }

    async fn uploaded_bytes(&self, uploader: Id) -> Result<u64> {
        self.read(move |connection| files::uploaded_bytes(connection, uploader))
            .await
    }

    async fn link_files(&self, room: &RoomId, message: Id, file_ids: &[Id]) -> Result<()> {
        let (room, file_ids) = (*room, file_ids.to_vec());
        self.write(move |tx| files::link(tx, &room, message, &file_ids))
            .await
    }

    async fn file_rooms(&self, file: Id) -> Result<Vec<RoomId>> {
        self.read(move |connection| files::rooms(connection, file))
            .await
    }

    async fn unlink_files(
        &self,
        room: &RoomId,
        message: Id,
        file_ids: &[Id],
        at: u64,
    ) -> Result<()> {
        let (room, file_ids) = (*room, file_ids.to_vec());
        self.write(move |tx| files::unlink(tx, &room, message, &file_ids, at))
            .await
    }

    async fn unreferenced_files(&self, before: u64, limit: u32) -> Result<Vec<FileRecord>> {
        self.read(move |connection| files::unreferenced(connection, before, limit))
            .await
    }

    async fn delete_file(&self, id: Id) -> Result<()> {
        self.write(move |tx| files::delete(tx, id)).await
    }

    // ----- notifications -----------------------------------------------

    async fn notifications(
        &self,
        user: Id,
        before: Option<Id>,
        limit: u32,
    ) -> Result<NotificationPage> {
        self.read(move |connection| notifications::page(connection, user, before, limit))
            .await
    }

    async fn mark_notifications_read(&self, user: Id, up_to: Id) -> Result<()> {
        self.write(move |tx| notifications::mark_read(tx, user, up_to))
            .await
    }

    async fn unread_notifications(&self, user: Id, cap: u32) -> Result<Vec<Notification>> {
        self.read(move |connection| notifications::unread(connection, user, cap))
            .await
    }

    // ----- room directory and member pages -----------------------------

    async fn members_page(
        &self,
        room: &RoomId,
        after: Option<Id>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>> {
        let room = *room;
        self.read(move |connection| directory::members_page(connection, &room, after, limit))
            .await
    }

    async fn public_rooms(
        &self,
        prefix: &str,
        after: Option<DirectoryCursor>,
        limit: u32,
    ) -> Result<Vec<Room>> {
        let prefix = prefix.to_owned();
        self.read(move |connection| {
            directory::public_rooms(connection, &prefix, after.as_ref(), limit)
        })
        .await
    }

    // ----- accounts: sessions, profile, flags, audit -------------------

    async fn create_session(&self, session: SessionRecord) -> Result<()> {
        self.write(move |tx| accounts::create_session(tx, &session))
            .await
    }

    async fn revoke_session(&self, user: Id, session: Id, at: u64) -> Result<Option<Revocation>> {
        self.write(move |tx| accounts::revoke_session(tx, user, session, at))
            .await
    }

    async fn revoke_sessions(
        &self,
        user: Id,
        except: Option<Id>,
        at: u64,
    ) -> Result<Vec<Revocation>> {
        self.write(move |tx| accounts::revoke_sessions(tx, user, except, at))
            .await
    }

    async fn revocations(&self, now: u64) -> Result<Vec<Revocation>> {
        self.read(move |connection| accounts::revocations(connection, now))
            .await
    }

    async fn set_display_name(&self, user: Id, display_name: &str) -> Result<Option<UserRecord>> {
        let display_name = display_name.to_owned();
        self.write(move |tx| accounts::set_display_name(tx, user, &display_name))
            .await
    }

    async fn set_password_hash(&self, user: Id, password_hash: &str) -> Result<bool> {
        let password_hash = password_hash.to_owned();
        self.write(move |tx| accounts::set_password_hash(tx, user, &password_hash))
            .await
    }

    async fn account_flags(&self, user: Id) -> Result<AccountFlags> {
        self.read(move |connection| accounts::account_flags(connection, user))
            .await
    }

    async fn set_admin(&self, user: Id, admin: bool) -> Result<()> {
        self.write(move |tx| accounts::set_admin(tx, user, admin))
            .await
    }

    async fn set_banned(&self, user: Id, banned: bool) -> Result<()> {
        self.write(move |tx| accounts::set_banned(tx, user, banned))
            .await
    }

    async fn insert_audit(&self, events: &[AuditEvent], _retention_ms: u64) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.write(move |tx| accounts::insert_audit(tx, &events))
            .await
    }

    async fn audit_events(&self, filter: AuditFilter) -> Result<(Vec<AuditEvent>, bool)> {
        self.read(move |connection| accounts::audit_events(connection, &filter))
            .await
    }

    async fn prune_audit(&self, before: u64) -> Result<u64> {
        self.write(move |tx| accounts::prune_audit(tx, before))
            .await
    }
}
