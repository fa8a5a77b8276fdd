//! The schema, as an ordered list of migrations applied when a store opens.
//!
//! `PRAGMA user_version` counts the migrations applied to the file. Each one
//! runs in its own `BEGIN IMMEDIATE` transaction that re-reads the version
//! first: several processes may open the same file at once, and the
//! immediate transaction serialises them, so whoever comes second sees the
//! new version and skips the script instead of applying it twice.
//!
//! Migrations are append-only: never edit one that has shipped, add another.
//!
//! Ids (`u64` Snowflakes) are stored as SQLite's signed 64-bit INTEGER by
//! bit-cast (see `rows`); order is preserved for ids below 2^63, which
//! covers every Snowflake minted before about 2093. Room ids are stored in
//! their string form, times as milliseconds since the Unix epoch.

use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::connection::retry_while_busy;
use crate::records::directory_name;
use crate::{Result, StoreError};

/// One step of the schema.
enum Migration {
    /// A script.
    Sql(&'static str),
    /// A script, then what SQL cannot compute, in Rust, in the same
    /// transaction.
    SqlThen(&'static str, fn(&Connection) -> rusqlite::Result<()>),
}

/// Every migration, in order; `MIGRATIONS[n]` takes the file from version
/// `n` to `n + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(INITIAL_SCHEMA),
    Migration::Sql(FILES),
    Migration::Sql(ACCOUNTS),
    Migration::Sql(NOTIFICATIONS),
    Migration::Sql(DIRECTORY),
    Migration::Sql(MEMBERSHIP_VERSIONS),
    Migration::SqlThen(DIRECTORY_FOLDED, fold_room_names),
];

/// Users, rooms, memberships with read positions, and messages.
///
/// - `users.username_lower` carries the case-insensitive uniqueness of
///   usernames (lower-cased with ASCII rules; usernames are ASCII).
/// - `members` has no row id: it is only ever reached by its key, or by user
///   through `members_by_user`.
/// - `messages` is clustered by `(room_id, id)` (WITHOUT ROWID), so a page of
///   history is one contiguous range of the table itself. It has no foreign
///   keys: messages arrive in batches from the persistence worker, and one
///   dangling message must not fail the whole batch (the ScyllaDB store
///   cannot check them either).
/// - `messages_by_client_id` serves the idempotency lookup; being partial, it
///   costs nothing for messages sent without a client id.
const INITIAL_SCHEMA: &str = "
CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    username       TEXT    NOT NULL,
    username_lower TEXT    NOT NULL UNIQUE,
    display_name   TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER
) STRICT;

CREATE TABLE rooms (
    id         TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('group', 'dm')),
    name       TEXT    NOT NULL,
    visibility TEXT    NOT NULL CHECK (visibility IN ('public', 'private')),
    owner_id   INTEGER,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE members (
    room_id   TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT    NOT NULL CHECK (role IN ('member', 'admin', 'owner')),
    last_read INTEGER,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE messages (
    room_id     TEXT    NOT NULL,
    id          INTEGER NOT NULL,
    sender_id   INTEGER NOT NULL,
    content     TEXT    NOT NULL,
    mentions    TEXT    NOT NULL DEFAULT '[]',
    attachments TEXT    NOT NULL DEFAULT '[]',
    reply_to    INTEGER,
    client_id   TEXT,
    created_at  INTEGER NOT NULL,
    edited_at   INTEGER,
    deleted     INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    PRIMARY KEY (room_id, id)
) STRICT, WITHOUT ROWID;

CREATE INDEX messages_by_client_id ON messages (sender_id, client_id, id)
    WHERE client_id IS NOT NULL;
";

/// Uploaded files and which messages carry them.
///
/// - `files.unreferenced_since` is set while no message carries the file
///   (from the upload, or from the deletion of its last message) and NULL
///   while one does; the sweep reads it through its partial index.
/// - `files_by_uploader` serves the quota sum.
/// - `file_links` has one row per (file, message carrying it); access checks
///   read the rooms of a file's rows.
const FILES: &str = "
CREATE TABLE files (
    id                 INTEGER PRIMARY KEY,
    uploader           INTEGER NOT NULL,
    name               TEXT    NOT NULL,
    size               INTEGER NOT NULL,
    content_type       TEXT    NOT NULL,
    checksum           TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    thumbnail          INTEGER NOT NULL DEFAULT 0,
    unreferenced_since INTEGER
) STRICT;

CREATE INDEX files_by_uploader ON files (uploader, size);

CREATE INDEX files_unreferenced ON files (unreferenced_since)
    WHERE unreferenced_since IS NOT NULL;

CREATE TABLE file_links (
    file_id    INTEGER NOT NULL,
    room_id    TEXT    NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (file_id, room_id, message_id)
) STRICT, WITHOUT ROWID;
";

/// Stored mentions (v1.1, see `notifications`): one row per (mentioned
/// user, message), clustered by user so a page is one range, and one read
/// mark per user. No foreign keys, like `messages`: they are written in the
/// messages' batches.
const NOTIFICATIONS: &str = "
CREATE TABLE notifications (
    user_id    INTEGER NOT NULL,
    id         INTEGER NOT NULL,
    room_id    TEXT    NOT NULL,
    message_id INTEGER NOT NULL,
    sender_id  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, id)
) STRICT, WITHOUT ROWID;

CREATE TABLE notification_reads (
    user_id INTEGER PRIMARY KEY,
    up_to   INTEGER NOT NULL
) STRICT;
";

/// The room directory (v1.1, see `directory`): public group rooms by
/// lower-cased name, a partial index so that private rooms and DMs cost
/// nothing; and each room's own member limit (NULL: the server's default).
const DIRECTORY: &str = "
CREATE INDEX public_rooms_by_name ON rooms (lower(name), id)
    WHERE kind = 'group' AND visibility = 'public';

ALTER TABLE rooms ADD COLUMN max_members INTEGER;
";

/// Sessions, account flags and the audit log.
///
/// - `sessions_revoked` (partial) lists revoked sessions by expiry: a
///   starting node loads the outstanding revocations from it alone.
/// - `account_flags` has a row only for users ever made admin or banned.
/// - `audit_events` is keyed by Snowflake id (time order); the filters of
///   `GET /admin/audit` and the retention prune each have an index.
const ACCOUNTS: &str = "
CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX sessions_by_user ON sessions (user_id, expires_at);

CREATE INDEX sessions_revoked ON sessions (expires_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE account_flags (
    user_id INTEGER PRIMARY KEY,
    admin   INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    banned  INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0, 1))
) STRICT;

CREATE TABLE audit_events (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    actor_id  INTEGER,
    target_id INTEGER,
    room_id   TEXT,
    ip        TEXT,
    detail    TEXT
) STRICT;

CREATE INDEX audit_by_kind ON audit_events (kind, id);
CREATE INDEX audit_by_actor ON audit_events (actor_id, id) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_by_target ON audit_events (target_id, id) WHERE target_id IS NOT NULL;
CREATE INDEX audit_by_time ON audit_events (at);
";

/// A row per room whose members ever changed: its membership version,
/// bumped in the same transaction as the change (rooms without a row are at
/// version 0).
const MEMBERSHIP_VERSIONS: &str = "
CREATE TABLE membership_versions (
    room_id TEXT    PRIMARY KEY,
    version INTEGER NOT NULL
) STRICT;
";

/// The room directory matches names case-insensitively beyond ASCII
/// (SQLite's `lower` folds ASCII letters only): each room keeps its name
/// folded by [`directory_name`], written with the room, and the directory's
/// index moves to that column. [`fold_room_names`] fills it for the rooms
/// that predate it.
const DIRECTORY_FOLDED: &str = "
ALTER TABLE rooms ADD COLUMN name_folded TEXT;

DROP INDEX public_rooms_by_name;

CREATE INDEX public_rooms_by_folded_name ON rooms (name_folded, id)
    WHERE kind = 'group' AND visibility = 'public';
";

/// Fills `rooms.name_folded` for every room created before the column.
fn fold_room_names(connection: &Connection) -> rusqlite::Result<()> {
    let rooms: Vec<(String, String)> = connection
        .prepare("SELECT id, name FROM rooms WHERE name_folded IS NULL")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut fold = connection.prepare("UPDATE rooms SET name_folded = ?2 WHERE id = ?1")?;
    for (id, name) in rooms {
        fold.execute((id, directory_name(&name)))?;
    }
    Ok(())
}

/// The schema version this build writes and understands.
pub(crate) const CURRENT_VERSION: usize = MIGRATIONS.len();

/// Brings the file up to [`CURRENT_VERSION`], one transaction per migration.
/// Fails if the file was written by a newer build.
pub(crate) fn migrate(connection: &Connection, busy_timeout: Duration) -> Result<()> {
    loop {
        // A cheap look outside any transaction: the common case is a file
        // that is already current.
        if check_version(connection)? == CURRENT_VERSION {
            return Ok(());
        }
        let transaction = retry_while_busy(busy_timeout, || {
            Transaction::new_unchecked(connection, TransactionBehavior::Immediate)
        })?;
        // Re-read under the write lock: another process may have migrated
        // between our look and our BEGIN.
        let version = check_version(&transaction)?;
        if let Some(migration) = MIGRATIONS.get(version) {
            migration.apply(&transaction).map_err(|error| {
                StoreError::Internal(format!("SQLite migration {} failed: {error}", version + 1))
            })?;
            transaction.pragma_update(None, "user_version", version + 1)?;
        }
        retry_while_busy(busy_timeout, || transaction.execute_batch("COMMIT"))?;
        // The transaction is finished; dropping it finds autocommit on and
        // does nothing.
        drop(transaction);
        if version < CURRENT_VERSION {
            tracing::info!(version = version + 1, "applied SQLite migration");
        }
    }
}

impl Migration {
    fn apply(&self, connection: &Connection) -> rusqlite::Result<()> {
        match self {
            Migration::Sql(script) => connection.execute_batch(script),
            Migration::SqlThen(script, then) => {
                connection.execute_batch(script)?;
                then(connection)
            }
        }
    }
}

/// The file's schema version, refused if it is newer than this build.
fn check_version(connection: &Connection) -> Result<usize> {
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let version = usize::try_from(version).map_err(|_| {
        StoreError::Internal(format!("SQLite user_version {version} is not a version"))
    })?;
    if version > CURRENT_VERSION {
        return Err(StoreError::Internal(format!(
            "the database has schema version {version}, newer than the {CURRENT_VERSION} this build knows"
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_harmless() {
        let connection = Connection::open_in_memory().unwrap();
        migrate(&connection, Duration::from_secs(1)).unwrap();
        migrate(&connection, Duration::from_secs(1)).unwrap();
        assert_eq!(check_version(&connection).unwrap(), CURRENT_VERSION);
    }

    #[test]
    fn rooms_made_before_the_folded_names_are_folded() {
        let connection = Connection::open_in_memory().unwrap();
        let before = CURRENT_VERSION - 1;
        for migration in &MIGRATIONS[..before] {
            migration.apply(&connection).unwrap();
        }
        connection
            .pragma_update(None, "user_version", before)
            .unwrap();
        connection
            .execute(
                "INSERT INTO rooms (id, kind, name, visibility, created_at)
                 VALUES ('1', 'group', 'Äpfel & BIRNEN', 'public', 0)",
                [],
            )
            .unwrap();
        migrate(&connection, Duration::from_secs(1)).unwrap();
        let folded: String = connection
            .query_row("SELECT name_folded FROM rooms WHERE id = '1'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(folded, "äpfel & birnen");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&connection, Duration::from_secs(1)),
            Err(StoreError::Internal(_))
        ));
    }
}
