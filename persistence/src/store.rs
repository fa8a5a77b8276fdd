//! The [`Store`] trait: the one seam between the chat logic and durable state.
//!
//! Every method states its guarantee; the conformance suite checks each one
//! against every implementation. "Durable" means: once the call returns
//! `Ok`, the effect survives a crash of the process.

use async_trait::async_trait;
use chat_protocol::{Id, Message, Notification, Role, Room, RoomId};

use crate::Result;
use crate::records::*;

/// Durable storage of users, rooms, memberships, read positions and messages.
///
/// Implementations are cheap to share (`Arc<dyn Store>`) and safe to call
/// concurrently from many tasks.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the backing database answers. Used by `/readyz`.
    async fn ping(&self) -> Result<()>;

    // ----- users -------------------------------------------------------

    /// Creates a user. Durable on return. Fails with
    /// [`StoreError::Conflict`](crate::StoreError::Conflict) when the
    /// username is taken, compared case-insensitively (ASCII), even under
    /// concurrent registrations of the same name.
    async fn create_user(&self, user: NewUser) -> Result<UserRecord>;

    /// The user with this id.
    async fn user(&self, id: Id) -> Result<Option<UserRecord>>;

    /// The users with these ids, in no particular order; unknown ids are
    /// skipped.
    async fn users(&self, ids: &[Id]) -> Result<Vec<UserRecord>>;

    /// The user with this username (case-insensitive) and their password hash.
    async fn credentials(&self, username: &str) -> Result<Option<Credentials>>;

    /// The users with these usernames (case-insensitive); unknown names are
    /// skipped.
    async fn users_by_username(&self, usernames: &[String]) -> Result<Vec<UserRecord>>;

    /// Up to `limit` users whose username starts with `prefix`
    /// (case-insensitive), ordered by lower-cased username.
    async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserRecord>>;

    /// Records when a user was last seen online.
    async fn set_last_seen(&self, user: Id, at: u64) -> Result<()>;

    // ----- rooms and members -------------------------------------------

    /// Creates a room with its initial members, atomically: either the room
    /// and all its members exist afterwards, or nothing does. Fails with
    /// `Conflict` if a room with this id exists.
    async fn create_room(&self, room: NewRoom, members: &[(Id, Role)]) -> Result<Room>;

    /// Creates the direct-message room of its two users (both members, role
    /// `member`) unless it exists. Answers the room and whether this call
    /// created it; concurrent calls create it once.
    async fn open_dm(&self, room: NewRoom) -> Result<(Room, bool)>;

    /// The room with this id, with its current member count.
    async fn room(&self, id: &RoomId) -> Result<Option<Room>>;

    /// `user`'s membership of `room`, if they are a member.
    async fn membership(&self, room: &RoomId, user: Id) -> Result<Option<Membership>>;

    /// Of `users`, those who are members of `room`, with their roles.
    async fn memberships(&self, room: &RoomId, users: &[Id]) -> Result<Vec<(Id, Role)>>;

    /// Adds a member. Answers `false` (and changes nothing) if they already
    /// are one.
    async fn add_member(&self, room: &RoomId, user: Id, role: Role, joined_at: u64)
    -> Result<bool>;

    /// Adds a member unless they already are one or the room already has
    /// `max_members` members (v1.1). Concurrent calls never leave the room
    /// with more than `max_members` members (the ScyllaDB store may, under
    /// such a race, refuse a join that would have fitted; never the
    /// reverse).
    async fn add_member_within(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
        max_members: u32,
    ) -> Result<MemberAdded>;

    /// Removes a member. Answers `false` if they were not one.
    async fn remove_member(&self, room: &RoomId, user: Id) -> Result<bool>;

    /// Makes `user` (a member) the room's owner: sets their role to owner and
    /// the room's `owner_id`, atomically.
    async fn set_owner(&self, room: &RoomId, user: Id) -> Result<()>;

    /// Every member of the room with their role, ordered by join time.
    async fn members(&self, room: &RoomId) -> Result<Vec<MemberRecord>>;

    /// The ids of every member of the room.
    async fn member_ids(&self, room: &RoomId) -> Result<Vec<Id>>;

    /// Every room `user` belongs to, DMs included, with their membership.
    async fn rooms_of(&self, user: Id) -> Result<Vec<UserRoom>>;

    /// The room's membership version: it grows with every
    /// [`add_member`](Store::add_member) and
    /// [`remove_member`](Store::remove_member) that changes something, before
    /// that call returns, and never decreases (other calls may move it
    /// too); 0 for a room whose members never changed this way (or no room).
    /// Room events carry it, so that a gateway can tell when its view of
    /// who belongs to the room may be stale (docs/architecture.md).
    async fn membership_version(&self, room: &RoomId) -> Result<u64>;

    // ----- read positions ----------------------------------------------

    /// Moves `user`'s read position in `room` forward to `message_id`. A
    /// position never moves backwards: an older id leaves it unchanged.
    /// Answers `false` if the user is not a member.
    async fn mark_read(&self, room: &RoomId, user: Id, message_id: Id) -> Result<bool>;

    /// How many messages of `room` newer than `after` (all, if `None`) were
    /// sent by someone other than `user` and are not deleted, counting no
    /// further than `cap`.
    async fn unread_count(
        &self,
        room: &RoomId,
        user: Id,
        after: Option<Id>,
        cap: u32,
    ) -> Result<u32>;

    // ----- messages ----------------------------------------------------

    /// Writes messages, durably on return. Idempotent by `(room_id, id)`: a
    /// message already stored is left as it is, so a retried batch never
    /// duplicates. A batch may span rooms.
    ///
    /// The same write stores, for every user in a message's `mentions`, the
    /// notification [`Notification::of_mention`] (id = the message id, so
    /// retries cannot duplicate it either): when this returns `Ok`, the
    /// mentions are as durable as the messages.
    ///
    /// Answers the [membership version](Store::membership_version) of each
    /// room the messages are in, read with the write, so that the
    /// messages' events carry it without a read of their own (SQLite: in
    /// the write's transaction). A room whose version could not be read
    /// once its messages were stored is left out; its events then go out
    /// without one, as they would after a failed `membership_version`.
    async fn insert_messages(&self, messages: &[Message]) -> Result<MembershipVersions>;

    /// The message with this id in this room.
    async fn message(&self, room: &RoomId, id: Id) -> Result<Option<Message>>;

    /// The message `sender` sent with `client_id` whose id is at least
    /// `since` (the idempotency window), if any.
    async fn message_by_client_id(
        &self,
        sender: Id,
        client_id: &str,
        since: Id,
    ) -> Result<Option<Message>>;

    /// A page of the room's history; see [`PageRequest`] and [`Page`].
    /// Pages are consistent with concurrent inserts: walking back with
    /// `before` from the newest page never yields a message twice and never
    /// skips one that was stored before the walk began.
    async fn messages(&self, room: &RoomId, page: PageRequest) -> Result<Page>;

    /// The newest message of the room (deleted ones included, as tombstones).
    async fn last_message(&self, room: &RoomId) -> Result<Option<Message>>;

    /// Replaces a message's content and mentions and sets `edited_at`.
    /// Answers the updated message, or `None` if there is no such message
    /// or it is deleted.
    async fn edit_message(
        &self,
        room: &RoomId,
        id: Id,
        content: &str,
        mentions: &[Id],
        edited_at: u64,
    ) -> Result<Option<Message>>;

    /// Turns a message into a tombstone: same id and position, empty
    /// content, no mentions or attachments, `deleted: true`. Answers the
    /// tombstone, or `None` if there is no such message. Deleting twice is
    /// harmless.
    async fn delete_message(&self, room: &RoomId, id: Id) -> Result<Option<Message>>;

    // ----- files -------------------------------------------------------
    //
    // A file is *referenced* while a stored, undeleted message carries it.
    // Unreferenced files (never attached, or whose messages were deleted)
    // are candidates for the sweep once they have been so for a while.

    /// Stores a file's metadata, durably on return; the file starts
    /// unreferenced since its `created_at`. Idempotent by id (ids are fresh
    /// Snowflakes): storing the same record again changes nothing.
    async fn insert_file(&self, file: FileRecord) -> Result<()>;

    /// The file with this id.
    async fn file(&self, id: Id) -> Result<Option<FileRecord>>;

    /// The total size of the files `uploader` has stored (their quota use).
    async fn uploaded_bytes(&self, uploader: Id) -> Result<u64>;

    /// Records that message `message` of `room` carries `files`, which
    /// makes them referenced. Idempotent.
    async fn link_files(&self, room: &RoomId, message: Id, files: &[Id]) -> Result<()>;

    /// The rooms in which a linked (not unlinked) message carries the file.
    async fn file_rooms(&self, file: Id) -> Result<Vec<RoomId>>;

    /// Undoes [`link_files`](Store::link_files) for a deleted message: the
    /// files are no longer carried by it, and those that no other message
    /// carries become unreferenced since `at`. Idempotent.
    async fn unlink_files(&self, room: &RoomId, message: Id, files: &[Id], at: u64) -> Result<()>;

    /// Up to `limit` files unreferenced since before `before` (ms), oldest
    /// first as far as the implementation can tell.
    async fn unreferenced_files(&self, before: u64, limit: u32) -> Result<Vec<FileRecord>>;

    /// Forgets a file's metadata (after its bytes are gone). Deleting a
    /// missing file is harmless.
    async fn delete_file(&self, id: Id) -> Result<()>;

    // ----- notifications -----------------------------------------------
    //
    // Written by `insert_messages` (one per mentioned user and message). A
    // user's notifications are read when their id is at most the user's
    // read mark, which only moves forward.

    /// A page of `user`'s notifications, newest first: up to `limit` (at
    /// least 1) with ids below `before` (from the newest if `None`), each
    /// with its `read` flag, and whether older ones exist.
    async fn notifications(
        &self,
        user: Id,
        before: Option<Id>,
        limit: u32,
    ) -> Result<NotificationPage>;

    /// Moves `user`'s notification read mark forward to `up_to`: every
    /// notification with an id up to it (included) is read. An older mark
    /// leaves it unchanged, even under concurrent calls.
    async fn mark_notifications_read(&self, user: Id, up_to: Id) -> Result<()>;

    /// `user`'s unread notifications, newest first, at most `cap` of them
    /// (for the rooms' `mention_count`).
    async fn unread_notifications(&self, user: Id, cap: u32) -> Result<Vec<Notification>>;

    // ----- room directory and member pages -----------------------------

    /// Up to `limit` members of `room` whose user id is above `after` (from
    /// the first if `None`), ordered by user id, with their roles: one page
    /// of the member list, stable under concurrent joins and leaves.
    async fn members_page(
        &self,
        room: &RoomId,
        after: Option<Id>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>>;

    /// The room directory: up to `limit` public group rooms whose name,
    /// folded by [`directory_name`], starts with
    /// `prefix` (which the store folds the same way), ordered by folded
    /// name then room id, strictly
    /// after `after` (from the first if `None`), with their member counts.
    /// Private rooms and DMs are never listed.
    async fn public_rooms(
        &self,
        prefix: &str,
        after: Option<DirectoryCursor>,
        limit: u32,
    ) -> Result<Vec<Room>>;
    // ----- accounts: sessions, profile, flags, audit -------------------
    //
    // Sessions back token revocation: a node keeps the outstanding
    // revocations in memory (loaded with `revocations`, then kept current
    // from the bus), so checking a token never reads the store.

    /// Records a new session, durably on return.
    async fn create_session(&self, session: SessionRecord) -> Result<()>;

    /// Revokes `user`'s session `session` at `at`. Answers the revocation,
    /// or `None` if the user has no such session. Revoking twice is
    /// harmless (and answers the revocation again).
    async fn revoke_session(&self, user: Id, session: Id, at: u64) -> Result<Option<Revocation>>;

    /// Revokes every session of `user` that has not expired by `at`, except
    /// `except`. Answers the revocations (including sessions already
    /// revoked), durably on return.
    async fn revoke_sessions(
        &self,
        user: Id,
        except: Option<Id>,
        at: u64,
    ) -> Result<Vec<Revocation>>;

    /// Every revoked session whose tokens have not expired by `now`: what a
    /// starting node must refuse.
    async fn revocations(&self, now: u64) -> Result<Vec<Revocation>>;

    /// Changes a user's display name. Answers the updated user, or `None`
    /// for an unknown user.
    async fn set_display_name(&self, user: Id, display_name: &str) -> Result<Option<UserRecord>>;

    /// Replaces a user's password hash. Answers `false` for an unknown user.
    async fn set_password_hash(&self, user: Id, password_hash: &str) -> Result<bool>;

    /// The user's flags (all off for users never flagged, and unknown ones).
    async fn account_flags(&self, user: Id) -> Result<AccountFlags>;

    /// Grants or withdraws the stored admin flag.
    async fn set_admin(&self, user: Id, admin: bool) -> Result<()>;

    /// Bans or unbans a user.
    async fn set_banned(&self, user: Id, banned: bool) -> Result<()>;

    /// Appends audit events, durably on return; idempotent by id. Stores
    /// that expire rows by themselves keep them `retention_ms`.
    async fn insert_audit(&self, events: &[AuditEvent], retention_ms: u64) -> Result<()>;

    /// Audit events matching `filter`, newest (highest id) first, and
    /// whether more match beyond `limit`.
    async fn audit_events(&self, filter: AuditFilter) -> Result<(Vec<AuditEvent>, bool)>;

    /// Forgets audit events older than `before` (ms). Answers how many went
    /// (stores that expire rows by themselves answer 0).
    async fn prune_audit(&self, before: u64) -> Result<u64>;
}
