//! WebSocket frames. Every frame is an object with a `type`; a client frame
//! may carry `ref`, which the server echoes on the reply or error it causes.
//!
//! Client frames ignore unknown fields so that newer clients can talk to
//! older servers; a wrong type for a known field is a `bad_request`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, Id, Message, RoomId, RoomSummary, User};

/// A frame sent by a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(flatten)]
    pub action: ClientAction,
}

/// What a client frame asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientAction {
    Send(SendMessage),
    Edit {
        room_id: RoomId,
        message_id: Id,
        content: String,
    },
    Delete {
        room_id: RoomId,
        message_id: Id,
    },
    Typing {
        room_id: RoomId,
        typing: bool,
    },
    Read {
        room_id: RoomId,
        message_id: Id,
    },
    History {
        room_id: RoomId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Id>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Id>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    Resume {
        rooms: BTreeMap<RoomId, Id>,
    },
    Join {
        room_id: RoomId,
    },
    Leave {
        room_id: RoomId,
    },
    Ping,
}

/// The `send` frame, also the body of a REST post (with the room in the path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMessage {
    pub room_id: RoomId,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Id>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachment_ids: Vec<Id>,
}

/// Per-room outcome of a `resume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumedRoom {
    pub replayed: u32,
    pub complete: bool,
}

/// A frame sent by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Ready {
        session_id: String,
        user: User,
        rooms: Vec<RoomSummary>,
        heartbeat_interval_ms: u64,
        /// The user has more rooms than `ready` lists (the server's
        /// `limits.ready_rooms`): the rest are read with `GET /rooms`
        /// (`cursor` = the last listed room's id). Absent when false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rooms_truncated: bool,
    },
    Message {
        message: Message,
    },
    Ack {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        message_id: Id,
        created_at: u64,
    },
    Mention {
        room_id: RoomId,
        message_id: Id,
        sender_id: Id,
        content: String,
    },
    /// A stored notification (v1.1), beside `mention`.
    Notification {
        notification: crate::Notification,
    },
    MessageUpdated {
        message: Message,
    },
    MessageDeleted {
        room_id: RoomId,
        message_id: Id,
    },
    Typing {
        room_id: RoomId,
        user_id: Id,
        typing: bool,
    },
    Presence {
        user_id: Id,
        online: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen_at: Option<u64>,
    },
    Read {
        room_id: RoomId,
        user_id: Id,
        message_id: Id,
    },
    MemberJoined {
        room_id: RoomId,
        user_id: Id,
    },
    MemberLeft {
        room_id: RoomId,
        user_id: Id,
    },
    RoomAdded {
        room: RoomSummary,
    },
    RoomRemoved {
        room_id: RoomId,
    },
    History {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        room_id: RoomId,
        messages: Vec<Message>,
        has_more: bool,
    },
    Resumed {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        rooms: BTreeMap<RoomId, ResumedRoom>,
    },
    Notice {
        content: String,
        /// The room whose members got the notice; absent for everyone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_id: Option<RoomId>,
    },
    Error(ErrorFrame),
    Pong {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

/// The `error` frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub message: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Every frame's `type`, client's and server's: named once for
/// [`ClientAction::kind`], [`ServerFrame::kind`] and the metric labels
/// that count frames by type. A name both sides use (`typing`, `read`,
/// `history`) is one constant.
pub mod frame_type {
    pub const SEND: &str = "send";
    pub const EDIT: &str = "edit";
    pub const DELETE: &str = "delete";
    pub const TYPING: &str = "typing";
    pub const READ: &str = "read";
    pub const HISTORY: &str = "history";
    pub const RESUME: &str = "resume";
    pub const JOIN: &str = "join";
    pub const LEAVE: &str = "leave";
    pub const PING: &str = "ping";
    pub const READY: &str = "ready";
    pub const MESSAGE: &str = "message";
    pub const ACK: &str = "ack";
    pub const MENTION: &str = "mention";
    pub const NOTIFICATION: &str = "notification";
    pub const MESSAGE_UPDATED: &str = "message_updated";
    pub const MESSAGE_DELETED: &str = "message_deleted";
    pub const PRESENCE: &str = "presence";
    pub const MEMBER_JOINED: &str = "member_joined";
    pub const MEMBER_LEFT: &str = "member_left";
    pub const ROOM_ADDED: &str = "room_added";
    pub const ROOM_REMOVED: &str = "room_removed";
    pub const RESUMED: &str = "resumed";
    pub const NOTICE: &str = "notice";
    pub const ERROR: &str = "error";
    pub const PONG: &str = "pong";
}

/// WebSocket close codes of the protocol.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    /// A WebSocket protocol violation (unmasked client frame, reserved bits
    /// set, unknown opcode, ...).
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const POLICY: u16 = 1008;
    pub const TOO_LARGE: u16 = 1009;
    /// A failure of the server itself.
    pub const INTERNAL: u16 = 1011;
    pub const RESTARTING: u16 = 1012;
    /// The server cannot serve for a while (store or bus unreachable).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const TOO_SLOW: u16 = 4003;
}

impl ClientAction {
    /// The frame's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientAction::Send(_) => frame_type::SEND,
            ClientAction::Edit { .. } => frame_type::EDIT,
            ClientAction::Delete { .. } => frame_type::DELETE,
            ClientAction::Typing { .. } => frame_type::TYPING,
            ClientAction::Read { .. } => frame_type::READ,
            ClientAction::History { .. } => frame_type::HISTORY,
            ClientAction::Resume { .. } => frame_type::RESUME,
            ClientAction::Join { .. } => frame_type::JOIN,
            ClientAction::Leave { .. } => frame_type::LEAVE,
            ClientAction::Ping => frame_type::PING,
        }
    }

    /// The room the action concerns, if one (for trace fields).
    pub fn room_id(&self) -> Option<RoomId> {
        match self {
            ClientAction::Send(SendMessage { room_id, .. })
            | ClientAction::Edit { room_id, .. }
            | ClientAction::Delete { room_id, .. }
            | ClientAction::Typing { room_id, .. }
            | ClientAction::Read { room_id, .. }
            | ClientAction::History { room_id, .. }
            | ClientAction::Join { room_id }
            | ClientAction::Leave { room_id } => Some(*room_id),
            ClientAction::Resume { .. } | ClientAction::Ping => None,
        }
    }
}

impl ServerFrame {
    /// The frame's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Ready { .. } => frame_type::READY,
            ServerFrame::Message { .. } => frame_type::MESSAGE,
            ServerFrame::Ack { .. } => frame_type::ACK,
            ServerFrame::Mention { .. } => frame_type::MENTION,
            ServerFrame::Notification { .. } => frame_type::NOTIFICATION,
            ServerFrame::MessageUpdated { .. } => frame_type::MESSAGE_UPDATED,
            ServerFrame::MessageDeleted { .. } => frame_type::MESSAGE_DELETED,
            ServerFrame::Typing { .. } => frame_type::TYPING,
            ServerFrame::Presence { .. } => frame_type::PRESENCE,
            ServerFrame::Read { .. } => frame_type::READ,
            ServerFrame::MemberJoined { .. } => frame_type::MEMBER_JOINED,
            ServerFrame::MemberLeft { .. } => frame_type::MEMBER_LEFT,
            ServerFrame::RoomAdded { .. } => frame_type::ROOM_ADDED,
            ServerFrame::RoomRemoved { .. } => frame_type::ROOM_REMOVED,
            ServerFrame::History { .. } => frame_type::HISTORY,
            ServerFrame::Resumed { .. } => frame_type::RESUMED,
            ServerFrame::Notice { .. } => frame_type::NOTICE,
            ServerFrame::Error(_) => frame_type::ERROR,
            ServerFrame::Pong { .. } => frame_type::PONG,
        }
    }
}
