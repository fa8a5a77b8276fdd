//! Every CQL statement the store runs, prepared once at startup and kept
//! in [`Statements`].
//!
//! Each statement has a [`Kind`], which fixes its consistency and whether
//! the driver may retry it on its own:
//!
//! - `Read`: the read consistency (LOCAL_QUORUM by default);
//! - `SerialRead`: a linearizable read (LOCAL_SERIAL by default), used only
//!   to learn the outcome of a lightweight transaction that timed out;
//! - `Write`: the write consistency; idempotent, because every write here
//!   sets fixed values on a fixed primary key (inserts of the same id
//!   rewrite the same row), so a retry after a timeout cannot duplicate;
//! - `Lwt`: a lightweight transaction (`IF ...`): the write consistency for
//!   its commit and the serial consistency for Paxos. Never retried by the
//!   driver: a retry of an applied transaction would report "not applied";
//! - `Counter`: a counter update at the write consistency. Not idempotent
//!   (a retry after a timeout could count twice), so never retried or
//!   speculatively executed.
//!
//! A table is written either only by `Lwt` statements or only by plain
//! ones, never both (ScyllaDB does not order Paxos writes against plain
//! writes of the same cells); a unit test checks it.
//!
//! The texts are unqualified; the session is bound to the keyspace. A unit
//! test checks every table and column named here against `schema`.

use scylla::client::session::Session;
use scylla::frame::types::Consistency;
use scylla::statement::prepared::PreparedStatement;

use super::config::ScyllaOptions;
use super::errors::context;
use super::rows::{
    member_columns, message_columns, room_columns, unread_columns, user_columns, user_room_columns,
};
use crate::Result;

/// How a statement is executed; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Read,
    SerialRead,
    Write,
    Lwt,
    Counter,
}

impl Kind {
    /// Whether the driver may retry (or speculatively repeat) the statement.
    pub(crate) fn is_idempotent(self) -> bool {
        !matches!(self, Kind::Lwt | Kind::Counter)
    }
}

/// Rows per page of a statement read with paging (`execute_iter`): whole
/// partitions such as a room's members or a user's rooms. Small enough to
/// keep one page's response well below a megabyte.
pub(crate) const PAGE_ROWS: i32 = 1000;

/// A statement's name (its field in [`Statements`]), text and kind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Definition {
    pub name: &'static str,
    pub cql: &'static str,
    pub kind: Kind,
}

/// Declares [`Statements`] with one field per statement, [`DEFINITIONS`]
/// listing them all, and the code preparing them, from one list.
macro_rules! statements {
    ($( $(#[doc = $doc:literal])* $field:ident: $kind:ident = $cql:expr; )+) => {
        /// The prepared statements, one per field.
        pub(crate) struct Statements {
            $( $(#[doc = $doc])* pub(crate) $field: PreparedStatement, )+
        }

        /// Every statement, for the tests.
        #[cfg_attr(not(test), allow(dead_code))]
        pub(crate) const DEFINITIONS: &[Definition] = &[
            $( Definition { name: stringify!($field), cql: $cql, kind: Kind::$kind }, )+
        ];

        impl Statements {
            /// Prepares every statement on the cluster (the session must be
            /// bound to the keyspace, whose tables must exist).
            pub(crate) async fn prepare(
                session: &Session,
                options: &ScyllaOptions,
            ) -> Result<Statements> {
                Ok(Statements {
                    $(
                        $field: prepare(
                            session,
                            options,
                            Definition { name: stringify!($field), cql: $cql, kind: Kind::$kind },
                        )
                        .await?,
                    )+
                })
            }
        }
    };
}

async fn prepare(
    session: &Session,
    options: &ScyllaOptions,
    definition: Definition,
) -> Result<PreparedStatement> {
    let mut statement = session
        .prepare(definition.cql)
        .await
        .map_err(|error| context(error, &format!("cannot prepare {}", definition.name)))?;
    let serial_read = match options.serial_consistency {
        scylla::frame::types::SerialConsistency::Serial => Consistency::Serial,
        scylla::frame::types::SerialConsistency::LocalSerial => Consistency::LocalSerial,
    };
    match definition.kind {
        Kind::Read => statement.set_consistency(options.read_consistency),
        Kind::SerialRead => statement.set_consistency(serial_read),
        Kind::Write | Kind::Counter => statement.set_consistency(options.write_consistency),
        Kind::Lwt => {
            statement.set_consistency(options.write_consistency);
            statement.set_serial_consistency(Some(options.serial_consistency));
        }
    }
    statement.set_is_idempotent(definition.kind.is_idempotent());
    statement.set_page_size(PAGE_ROWS);
    Ok(statement)
}

statements! {
    /// Liveness: any answer from a node will do.
    ping: Read = "SELECT release_version FROM system.local WHERE key = 'local'";
    select_setting: Read = "SELECT value FROM settings WHERE name = ?";
    /// The first `migrate` fixes a setting; later ones find it.
    insert_setting: Lwt = "INSERT INTO settings (name, value) VALUES (?, ?) IF NOT EXISTS";
    /// A schema upgrade moves a setting on from the value it upgraded.
    advance_setting: Lwt = "UPDATE settings SET value = ? WHERE name = ? IF value = ?";

    // ----- users -----
    select_user: Read = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?");
    insert_user: Write = "INSERT INTO users (id, username, display_name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)";
    set_last_seen: Write = "UPDATE users SET last_seen_at = ? WHERE id = ?";
    /// The uniqueness of usernames.
    claim_username: Lwt = "INSERT INTO usernames (username_lower, user_id) VALUES (?, ?) IF NOT EXISTS";
    /// Gives a name back when the rest of a registration failed.
    release_username: Lwt = "DELETE FROM usernames WHERE username_lower = ? IF user_id = ?";
    select_username: Read = "SELECT user_id FROM usernames WHERE username_lower = ?";
    select_username_serial: SerialRead = "SELECT user_id FROM usernames WHERE username_lower = ?";
    insert_user_prefix: Write = "INSERT INTO users_by_prefix (prefix, username_lower, user_id) VALUES (?, ?, ?)";
    /// Directory partition = the prefix's first character.
    insert_prefix_directory: Write = "INSERT INTO username_prefixes (directory, prefix) VALUES (?, ?)";
    search_prefix: Read = "SELECT username_lower, user_id FROM users_by_prefix WHERE prefix = ? AND username_lower >= ? AND username_lower < ? LIMIT ?";
    select_prefixes: Read = "SELECT prefix FROM username_prefixes WHERE directory = ? AND prefix >= ? AND prefix < ?";

    // ----- rooms -----
    /// Creates a room (or a DM) once.
    insert_room: Lwt = concat!("INSERT INTO rooms (", room_columns!(), ", creation_token, bucket_window_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS");
    select_room: Read = concat!("SELECT ", room_columns!(), " FROM rooms WHERE room_id = ?");
    /// The room's bucket width (fixed at creation, so cached for good).
    select_room_window: Read = "SELECT bucket_window_ms FROM rooms WHERE room_id = ?";
    select_room_serial: SerialRead = concat!("SELECT ", room_columns!(), " FROM rooms WHERE room_id = ?");
    /// Who won a room creation whose transaction timed out.
    select_room_token_serial: SerialRead = "SELECT creation_token FROM rooms WHERE room_id = ?";
    /// Undoes a room whose members could not be written.
    delete_room: Lwt = "DELETE FROM rooms WHERE room_id = ? IF EXISTS";
    set_room_owner: Lwt = "UPDATE rooms SET owner_id = ? WHERE room_id = ? IF EXISTS";
    /// Joins (+1) and leaves (-1) since the room's creation.
    change_member_count: Counter = "UPDATE room_member_counts SET members = members + ? WHERE room_id = ?";
    select_member_count: Read = "SELECT members FROM room_member_counts WHERE room_id = ?";
    bump_membership_version: Counter = "UPDATE membership_versions SET version = version + 1 WHERE room_id = ?";
    select_membership_version: Read = "SELECT version FROM membership_versions WHERE room_id = ?";

    // ----- members by room -----
    /// Also the statement of the conditional batches that write a new
    /// room's members (one partition each).
    add_member: Lwt = "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES (?, ?, ?, ?) IF NOT EXISTS";
    remove_member: Lwt = "DELETE FROM room_members WHERE room_id = ? AND user_id = ? IF EXISTS";
    promote_member: Lwt = "UPDATE room_members SET role = ? WHERE room_id = ? AND user_id = ? IF EXISTS";
    select_member: Read = concat!("SELECT ", member_columns!(), " FROM room_members WHERE room_id = ? AND user_id = ?");
    select_member_serial: SerialRead = concat!("SELECT ", member_columns!(), " FROM room_members WHERE room_id = ? AND user_id = ?");
    select_members: Read = concat!("SELECT ", member_columns!(), " FROM room_members WHERE room_id = ?");
    select_members_in: Read = concat!("SELECT ", member_columns!(), " FROM room_members WHERE room_id = ? AND user_id IN ?");

    // ----- rooms by user -----
    insert_user_room: Write = "INSERT INTO user_rooms (room_id, user_id, joined_at) VALUES (?, ?, ?)";
    /// Leaving (or being kicked) deletes the row, read position included.
    leave_user_room: Write = "DELETE FROM user_rooms WHERE user_id = ? AND room_id = ?";
    select_user_room: Read = concat!("SELECT ", user_room_columns!(), " FROM user_rooms WHERE user_id = ? AND room_id = ?");
    select_user_rooms: Read = concat!("SELECT ", user_room_columns!(), " FROM user_rooms WHERE user_id = ?");
    /// Stamped with the message id's time (never before the join): the
    /// newest position wins.
    mark_read: Write = "UPDATE user_rooms USING TIMESTAMP ? SET last_read = ? WHERE user_id = ? AND room_id = ?";

    // ----- the bucket index -----
    /// Written before the messages of a bucket (idempotent: fixed key).
    index_bucket: Write = "INSERT INTO room_buckets (room_id, bucket) VALUES (?, ?)";
    /// Non-empty buckets in a range, newest first (the clustering order).
    buckets_backward: Read = "SELECT bucket FROM room_buckets WHERE room_id = ? AND bucket >= ? AND bucket <= ? LIMIT ?";
    /// Non-empty buckets in a range, oldest first.
    buckets_forward: Read = "SELECT bucket FROM room_buckets WHERE room_id = ? AND bucket >= ? AND bucket <= ? ORDER BY bucket ASC LIMIT ?";

    // ----- messages -----
    /// Stamped with the id's time, so a late retry never undoes an edit.
    insert_message: Write = concat!("INSERT INTO messages (", message_columns!(), ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?");
    select_message: Read = concat!("SELECT ", message_columns!(), " FROM messages WHERE room_id = ? AND bucket = ? AND id = ?");
    /// Which of a batch's ids one partition already holds.
    select_existing_ids: Read = "SELECT id FROM messages WHERE room_id = ? AND bucket = ? AND id IN ?";
    /// One slice of a bucket, newest first (the clustering order).
    page_backward: Read = concat!("SELECT ", message_columns!(), " FROM messages WHERE room_id = ? AND bucket = ? AND id > ? AND id < ? LIMIT ?");
    /// One slice of a bucket, oldest first.
    page_forward: Read = concat!("SELECT ", message_columns!(), " FROM messages WHERE room_id = ? AND bucket = ? AND id > ? AND id < ? ORDER BY id ASC LIMIT ?");
    unread_scan: Read = concat!("SELECT ", unread_columns!(), " FROM messages WHERE room_id = ? AND bucket = ? AND id > ? AND id < ? ORDER BY id ASC LIMIT ?");
    edit_message: Write = "UPDATE messages USING TIMESTAMP ? SET content = ?, mentions = ?, edited_at = ? WHERE room_id = ? AND bucket = ? AND id = ?";
    delete_message: Write = "UPDATE messages USING TIMESTAMP ? SET content = '', mentions = null, attachments = null, deleted = true WHERE room_id = ? AND bucket = ? AND id = ?";
    insert_client_id: Write = "INSERT INTO messages_by_client_id (sender_id, client_id, id, room_id) VALUES (?, ?, ?, ?) USING TTL ?";
    select_client_id: Read = "SELECT id, room_id FROM messages_by_client_id WHERE sender_id = ? AND client_id = ? AND id >= ? LIMIT 1";

    // ----- files -----
    insert_file: Write = "INSERT INTO uploaded_files (id, uploader, name, size, content_type, checksum, created_at, thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    select_file: Read = "SELECT id, uploader, name, size, content_type, checksum, created_at, thumbnail FROM uploaded_files WHERE id = ?";
    delete_file: Write = "DELETE FROM uploaded_files WHERE id = ?";
    insert_file_of_uploader: Write = "INSERT INTO files_by_uploader (uploader, id, size) VALUES (?, ?, ?)";
    select_sizes_of_uploader: Read = "SELECT size FROM files_by_uploader WHERE uploader = ?";
    delete_file_of_uploader: Write = "DELETE FROM files_by_uploader WHERE uploader = ? AND id = ?";
    insert_file_link: Write = "INSERT INTO file_links (file_id, room_id, message_id) VALUES (?, ?, ?)";
    select_file_rooms: Read = "SELECT room_id FROM file_links WHERE file_id = ?";
    /// Whether any message still carries the file.
    select_any_file_link: Read = "SELECT room_id FROM file_links WHERE file_id = ? LIMIT 1";
    delete_file_link: Write = "DELETE FROM file_links WHERE file_id = ? AND room_id = ? AND message_id = ?";
    delete_file_links: Write = "DELETE FROM file_links WHERE file_id = ?";
    insert_unreferenced_file: Write = "INSERT INTO unreferenced_files (shard, id, since) VALUES (?, ?, ?)";
    select_unreferenced_files: Read = "SELECT id, since FROM unreferenced_files WHERE shard = ?";
    delete_unreferenced_file: Write = "DELETE FROM unreferenced_files WHERE shard = ? AND id = ?";

    // ----- notifications -----
    insert_notification: Write = "INSERT INTO notifications (user_id, id, room_id, message_id, sender_id, created_at) VALUES (?, ?, ?, ?, ?, ?)";
    /// Newest first (the clustering order).
    select_notifications_before: Read = "SELECT id, room_id, message_id, sender_id, created_at FROM notifications WHERE user_id = ? AND id < ? LIMIT ?";
    select_notifications_after: Read = "SELECT id, room_id, message_id, sender_id, created_at FROM notifications WHERE user_id = ? AND id > ? LIMIT ?";
    select_notification_mark: Read = "SELECT up_to FROM notification_reads WHERE user_id = ?";
    /// Stamped with the mark's own time: the newest mark wins.
    mark_notifications_read: Write = "UPDATE notification_reads USING TIMESTAMP ? SET up_to = ? WHERE user_id = ?";

    // ----- room directory and member pages -----
    insert_public_room: Write = "INSERT INTO public_rooms (shard, name_lower, room_id) VALUES (?, ?, ?)";
    /// A page after a cursor and below the prefix's end, by name then id.
    select_public_rooms: Read = "SELECT room_id FROM public_rooms WHERE shard = ? AND (name_lower, room_id) > (?, ?) AND (name_lower) < (?) LIMIT ?";
    /// Every key of the directory, for the schema upgrade that re-keys it.
    select_directory_keys: Read = "SELECT name_lower, room_id FROM public_rooms WHERE shard = ?";
    delete_public_room: Write = "DELETE FROM public_rooms WHERE shard = ? AND name_lower = ? AND room_id = ?";
    select_members_after: Read = concat!("SELECT ", member_columns!(), " FROM room_members WHERE room_id = ? AND user_id > ? LIMIT ?");
    insert_room_limit: Write = "INSERT INTO room_limits (room_id, max_members) VALUES (?, ?)";
    select_room_limit: Read = "SELECT max_members FROM room_limits WHERE room_id = ?";
    // ----- accounts -----
    insert_session: Write = "INSERT INTO sessions_by_user (user_id, id, created_at, expires_at) VALUES (?, ?, ?, ?) USING TTL ?";
    select_session: Read = "SELECT id, expires_at, revoked_at FROM sessions_by_user WHERE user_id = ? AND id = ?";
    select_user_sessions: Read = "SELECT id, expires_at, revoked_at FROM sessions_by_user WHERE user_id = ?";
    revoke_session_row: Write = "UPDATE sessions_by_user USING TTL ? SET revoked_at = ? WHERE user_id = ? AND id = ?";
    insert_revocation: Write = "INSERT INTO session_revocations (day, session_id, user_id, expires_at) VALUES (?, ?, ?, ?) USING TTL ?";
    select_revocations: Read = "SELECT session_id, user_id, expires_at FROM session_revocations WHERE day = ?";
    set_display_name: Write = "UPDATE users SET display_name = ? WHERE id = ?";
    set_password_hash: Write = "UPDATE users SET password_hash = ? WHERE id = ?";
    select_account_flags: Read = "SELECT admin, banned FROM account_flags WHERE user_id = ?";
    set_admin_flag: Write = "UPDATE account_flags SET admin = ? WHERE user_id = ?";
    set_banned_flag: Write = "UPDATE account_flags SET banned = ? WHERE user_id = ?";
    insert_audit: Write = "INSERT INTO audit_log (day, id, at, kind, actor_id, target_id, room_id, ip, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?";
    /// One slice of a day, newest first (the clustering order).
    select_audit: Read = "SELECT id, at, kind, actor_id, target_id, room_id, ip, detail FROM audit_log WHERE day = ? AND id < ? LIMIT ?";
}
