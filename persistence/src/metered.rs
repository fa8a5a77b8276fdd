//! Store operation latencies for Prometheus: [`Metered`] wraps any
//! [`Store`] and times every call by operation (the method name: a fixed,
//! small set of labels) and outcome (`ok` or `error`).
//!
//! A decorator rather than timing inside each implementation, so that both
//! stores (and any later one) are measured the same way. A method added to
//! [`Store`] is forwarded here too (the compiler insists).

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use async_trait::async_trait;
use chat_protocol::{Id, Message, Notification, Role, Room, RoomId};
use prometheus::{HistogramVec, register_histogram_vec};

use crate::records::*;
use crate::{Result, Store};

/// How long store operations took, by operation and outcome.
pub static OPERATION_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "chat_store_operation_duration_seconds",
        "Time a store operation took, by operation and outcome (ok, error)",
        &["op", "outcome"],
        prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")
    )
    .expect("metric names are valid and registered once")
});

/// A [`Store`] whose every call is timed.
pub struct Metered {
    inner: Arc<dyn Store>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Metered {
        Metered { inner }
    }
}

async fn timed<T>(op: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = call.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    OPERATION_SECONDS
        .with_label_values(&[op, outcome])
        .observe(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl Store for Metered {
    async fn ping(&self) -> Result<()> {
        timed("ping", self.inner.ping()).await
    }

    async fn create_user(&self, user: NewUser) -> Result<UserRecord> {
        timed("create_user", self.inner.create_user(user)).await
    }

    async fn user(&self, id: Id) -> Result<Option<UserRecord>> {
        timed("user", self.inner.user(id)).await
    }

    async fn users(&self, ids: &[Id]) -> Result<Vec<UserRecord>> {
        timed("users", self.inner.users(ids)).await
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        timed("credentials", self.inner.credentials(username)).await
    }

    async fn users_by_username(&self, usernames: &[String]) -> Result<Vec<UserRecord>> {
        timed("users_by_username", self.inner.users_by_username(usernames)).await
    }

    async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserRecord>> {
        timed("search_users", self.inner.search_users(prefix, limit)).await
    }

    async fn set_last_seen(&self, user: Id, at: u64) -> Result<()> {
        timed("set_last_seen", self.inner.set_last_seen(user, at)).await
    }

    async fn create_room(&self, room: NewRoom, members: &[(Id, Role)]) -> Result<Room> {
        timed("create_room", self.inner.create_room(room, members)).await
    }

    async fn open_dm(&self, room: NewRoom) -> Result<(Room, bool)> {
        timed("open_dm", self.inner.open_dm(room)).await
    }

    async fn room(&self, id: &RoomId) -> Result<Option<Room>> {
        timed("room", self.inner.room(id)).await
    }

    async fn membership(&self, room: &RoomId, user: Id) -> Result<Option<Membership>> {
        timed("membership", self.inner.membership(room, user)).await
    }

    async fn memberships(&self, room: &RoomId, users: &[Id]) -> Result<Vec<(Id, Role)>> {
        timed("memberships", self.inner.memberships(room, users)).await
    }

    async fn add_member(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
    ) -> Result<bool> {
        timed(
            "add_member",
            self.inner.add_member(room, user, role, joined_at),
        )
        .await
    }

    async fn remove_member(&self, room: &RoomId, user: Id) -> Result<bool> {
        timed("remove_member", self.inner.remove_member(room, user)).await
    }

    async fn set_owner(&self, room: &RoomId, user: Id) -> Result<()> {
        timed("set_owner", self.inner.set_owner(room, user)).await
    }

    async fn members(&self, room: &RoomId) -> Result<Vec<MemberRecord>> {
        timed("members", self.inner.members(room)).await
    }

    async fn member_ids(&self, room: &RoomId) -> Result<Vec<Id>> {
        timed("member_ids", self.inner.member_ids(room)).await
    }

    async fn rooms_of(&self, user: Id) -> Result<Vec<UserRoom>> {
        timed("rooms_of", self.inner.rooms_of(user)).await
    }

    async fn mark_read(&self, room: &RoomId, user: Id, message_id: Id) -> Result<bool> {
        timed("mark_read", self.inner.mark_read(room, user, message_id)).await
    }

    async fn unread_count(
        &self,
        room: &RoomId,
        user: Id,
        after: Option<Id>,
        cap: u32,
    ) -> Result<u32> {
        timed(
            "unread_count",
            self.inner.unread_count(room, user, after, cap),
        )
        .await
    }

    async fn insert_messages(&self, messages: &[Message]) -> Result<MembershipVersions> {
        timed("insert_messages", self.inner.insert_messages(messages)).await
    }

    async fn message(&self, room: &RoomId, id: Id) -> Result<Option<Message>> {
        timed("message", self.inner.message(room, id)).await
    }

    async fn message_by_client_id(
        &self,
        sender: Id,
        client_id: &str,
        since: Id,
    ) -> Result<Option<Message>> {
        timed(
            "message_by_client_id",
            self.inner.message_by_client_id(sender, client_id, since),
        )
        .await
    }

    async fn messages(&self, room: &RoomId, page: PageRequest) -> Result<Page> {
        timed("messages", self.inner.messages(room, page)).await
    }

    async fn last_message(&self, room: &RoomId) -> Result<Option<Message>> {
        timed("last_message", self.inner.last_message(room)).await
    }

    async fn edit_message(
        &self,
        room: &RoomId,
        id: Id,
        content: &str,
        mentions: &[Id],
        edited_at: u64,
    ) -> Result<Option<Message>> {
        timed(
            "edit_message",
            self.inner
                .edit_message(room, id, content, mentions, edited_at),
        )
        .await
    }

    async fn delete_message(&self, room: &RoomId, id: Id) -> Result<Option<Message>> {
        timed("delete_message", self.inner.delete_message(room, id)).await
    }

    async fn insert_file(&self, file: FileRecord) -> Result<()> {
        timed("insert_file", self.inner.insert_file(file)).await
    }

    async fn file(&self, id: Id) -> Result<Option<FileRecord>> {
        timed("file", self.inner.file(id)).await
    }

    async fn uploaded_bytes(&self, uploader: Id) -> Result<u64> {
        timed("uploaded_bytes", self.inner.uploaded_bytes(uploader)).await
    }

    async fn link_files(&self, room: &RoomId, message: Id, files: &[Id]) -> Result<()> {
        timed("link_files", self.inner.link_files(room, message, files)).await
    }

    async fn file_rooms(&self, file: Id) -> Result<Vec<RoomId>> {
        timed("file_rooms", self.inner.file_rooms(file)).await
    }

    async fn unlink_files(&self, room: &RoomId, message: Id, files: &[Id], at: u64) -> Result<()> {
        timed(
            "unlink_files",
            self.inner.unlink_files(room, message, files, at),
        )
        .await
    }

    async fn unreferenced_files(&self, before: u64, limit: u32) -> Result<Vec<FileRecord>> {
        timed(
            "unreferenced_files",
            self.inner.unreferenced_files(before, limit),
        )
        .await
    }

    async fn delete_file(&self, id: Id) -> Result<()> {
        timed("delete_file", self.inner.delete_file(id)).await
    }

    async fn create_session(&self, session: SessionRecord) -> Result<()> {
        timed("create_session", self.inner.create_session(session)).await
    }

    async fn revoke_session(&self, user: Id, session: Id, at: u64) -> Result<Option<Revocation>> {
        timed(
            "revoke_session",
            self.inner.revoke_session(user, session, at),
        )
        .await
    }

    async fn revoke_sessions(
        &self,
        user: Id,
        except: Option<Id>,
        at: u64,
    ) -> Result<Vec<Revocation>> {
        timed(
            "revoke_sessions",
            self.inner.revoke_sessions(user, except, at),
        )
        .await
    }

    async fn revocations(&self, now: u64) -> Result<Vec<Revocation>> {
        timed("revocations", self.inner.revocations(now)).await
    }

    async fn set_display_name(&self, user: Id, display_name: &str) -> Result<Option<UserRecord>> {
        timed(
            "set_display_name",
            self.inner.set_display_name(user, display_name),
        )
        .await
    }

    async fn set_password_hash(&self, user: Id, password_hash: &str) -> Result<bool> {
        timed(
            "set_password_hash",
            self.inner.set_password_hash(user, password_hash),
        )
        .await
    }

    async fn account_flags(&self, user: Id) -> Result<AccountFlags> {
        timed("account_flags", self.inner.account_flags(user)).await
    }

    async fn set_admin(&self, user: Id, admin: bool) -> Result<()> {
        timed("set_admin", self.inner.set_admin(user, admin)).await
    }

    async fn set_banned(&self, user: Id, banned: bool) -> Result<()> {
        timed("set_banned", self.inner.set_banned(user, banned)).await
    }

    async fn insert_audit(&self, events: &[AuditEvent], retention_ms: u64) -> Result<()> {
        timed(
            "insert_audit",
            self.inner.insert_audit(events, retention_ms),
        )
        .await
    }

    async fn audit_events(&self, filter: AuditFilter) -> Result<(Vec<AuditEvent>, bool)> {
        timed("audit_events", self.inner.audit_events(filter)).await
    }

    async fn prune_audit(&self, before: u64) -> Result<u64> {
        timed("prune_audit", self.inner.prune_audit(before)).await
    }

    async fn add_member_within(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
        max_members: u32,
    ) -> Result<MemberAdded> {
        timed(
            "add_member_within",
            self.inner
                .add_member_within(room, user, role, joined_at, max_members),
        )
        .await
    }

    async fn notifications(
        &self,
        user: Id,
        before: Option<Id>,
        limit: u32,
    ) -> Result<NotificationPage> {
        timed(
            "notifications",
            self.inner.notifications(user, before, limit),
        )
        .await
    }

    async fn mark_notifications_read(&self, user: Id, up_to: Id) -> Result<()> {
        timed(
            "mark_notifications_read",
            self.inner.mark_notifications_read(user, up_to),
        )
        .await
    }

    async fn unread_notifications(&self, user: Id, cap: u32) -> Result<Vec<Notification>> {
        timed(
            "unread_notifications",
            self.inner.unread_notifications(user, cap),
        )
        .await
    }

    async fn members_page(
        &self,
        room: &RoomId,
        after: Option<Id>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>> {
        timed("members_page", self.inner.members_page(room, after, limit)).await
    }

    async fn public_rooms(
        &self,
        prefix: &str,
        after: Option<DirectoryCursor>,
        limit: u32,
    ) -> Result<Vec<Room>> {
        timed(
            "public_rooms",
            self.inner.public_rooms(prefix, after, limit),
        )
        .await
    }

    async fn membership_version(&self, room: &RoomId) -> Result<u64> {
        timed("membership_version", self.inner.membership_version(room)).await
    }
}
