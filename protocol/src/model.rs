//! The objects of the protocol: users, rooms, messages and files.
//!
//! Optional fields are left out of the encoding when absent, as PROTOCOL.md
//! marks them with `?`.

use serde::{Deserialize, Serialize};

use crate::{Id, RoomId};

/// A user as other users see it. Never carries credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub username: String,
    pub display_name: String,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<u64>,
}

/// Whether a room is a group room or a direct-message room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    Group,
    Dm,
}

/// Who may join a group room: anyone (public) or only those added (private).
/// Direct-message rooms are private.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Public,
    Private,
}

/// A member's role in a room. Owners and admins may add members to private
/// rooms, kick, and delete others' messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    /// Whether this role may moderate the room (add to private rooms, kick,
    /// delete others' messages).
    pub fn is_moderator(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Role, ()> {
        match s {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            _ => Err(()),
        }
    }
}

/// A room as its members (and, for public rooms, anyone) see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    pub id: RoomId,
    pub kind: RoomKind,
    pub name: String,
    pub visibility: Visibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Id>,
    pub member_count: u32,
    pub created_at: u64,
    /// The most members the room may have (v1.1); absent: the server's
    /// default cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
}

/// A room from one member's point of view: the room plus that member's
/// unread count, role and the room's newest message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    #[serde(flatten)]
    pub room: Room,
    pub unread_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<Message>,
    pub role: Role,
    /// Unread mentions of this member in the room (v1.1): stored mentions
    /// newer than both their notification read mark and their read position.
    #[serde(default)]
    pub mention_count: u32,
}

/// What a notification is about. Only mentions today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Mention,
}

/// A stored notification of one user (v1.1): one per message that mentions
/// them, written with the message whether they were online or not. Its id
/// is the message's id (a user is mentioned at most once per message), so
/// notifications sort like messages and a retried write cannot duplicate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: Id,
    pub kind: NotificationKind,
    pub room_id: RoomId,
    pub message_id: Id,
    pub sender_id: Id,
    pub created_at: u64,
    pub read: bool,
}

impl Notification {
    /// The (unread) notification `message` makes for a user it mentions.
    pub fn of_mention(message: &Message) -> Notification {
        Notification {
            id: message.id,
            kind: NotificationKind::Mention,
            room_id: message.room_id,
            message_id: message.id,
            sender_id: message.sender_id,
            created_at: message.created_at,
            read: false,
        }
    }
}

/// Metadata of an uploaded file. `created_at` is the time of its id (files
/// get their id when the upload starts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub id: Id,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    pub created_at: u64,
    /// Where a small PNG preview of an image is served (same access as
    /// the file); absent when the file has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
}

/// A chat message. A deleted message keeps its id and position, with empty
/// content, no attachments and `deleted: true`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Id,
    pub room_id: RoomId,
    pub sender_id: Id,
    pub content: String,
    #[serde(default)]
    pub mentions: Vec<Id>,
    #[serde(default)]
    pub attachments: Vec<File>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}
