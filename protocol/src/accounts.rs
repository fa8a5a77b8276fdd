//! The v1.1 account and administration calls: logout, profile and password
//! changes, admin notices, bans and the audit log (PROTOCOL.md, "v1.1
//! additions"). Kept apart from `rest` so that the account calls read as
//! one unit.

use serde::{Deserialize, Serialize};

use crate::{Id, RoomId};

/// `POST /auth/logout`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Every session of the user, not only this token's.
    #[serde(default)]
    pub all: bool,
}

/// `PATCH /users/me`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    pub display_name: String,
}

/// `POST /users/me/password`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /admin/notice`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeRequest {
    pub content: String,
    #[serde(default)]
    pub room_id: Option<RoomId>,
}

/// `POST /admin/users/{user_id}/ban`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Query of `GET /admin/audit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only events older than this event id.
    #[serde(default)]
    pub before: Option<Id>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub kind: Option<String>,
    /// Only events whose actor or target is this user.
    #[serde(default)]
    pub user_id: Option<Id>,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: Id,
    /// When it happened, ms since the Unix epoch.
    pub at: u64,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Answer to `GET /admin/audit`: newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResponse {
    pub events: Vec<AuditEvent>,
    pub has_more: bool,
}

/// The audit kinds the server writes.
pub mod audit_kind {
    pub const REGISTER: &str = "register";
    pub const LOGIN: &str = "login";
    pub const LOGIN_FAILED: &str = "login_failed";
    pub const LOGOUT: &str = "logout";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const ROOM_CREATED: &str = "room_created";
    pub const MEMBER_ADDED: &str = "member_added";
    pub const MEMBER_REMOVED: &str = "member_removed";
    pub const MESSAGE_DELETED: &str = "message_deleted";
    pub const NOTICE: &str = "notice";
    pub const BAN: &str = "ban";
    pub const UNBAN: &str = "unban";
    /// Every kind, for validating filters.
    pub const ALL: &[&str] = &[
        REGISTER,
        LOGIN,
        LOGIN_FAILED,
        LOGOUT,
        PASSWORD_CHANGED,
        ROOM_CREATED,
        MEMBER_ADDED,
        MEMBER_REMOVED,
        MESSAGE_DELETED,
        NOTICE,
        BAN,
        UNBAN,
    ];
}
