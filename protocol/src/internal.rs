//! What the roles of the service send each other over the bus. Not part of
//! the public contract: gateways, routers and persistence workers of one
//! release speak it, in MessagePack.
//!
//! The path of a client action:
//!
//! ```text
//! gateway ──Inbound──▶ router ──ToPersist──▶ persistence writer ──Event──▶ room/user channels
//!    ▲                   │                           │
//!    └──────Reply────────┴────────Reply──────────────┘   (on the origin gateway's channel)
//! ```
//!
//! A posted message's answer (the `ack`) rides its room `message` event
//! instead ([`Event::ack`]) when the sending gateway hears the room.

use serde::{Deserialize, Serialize};

use crate::frames::{ClientAction, ServerFrame};
use crate::{Codec, CodecError, ErrorCode, Id, Message, RoomId};

/// Where an action came from, so that its answer finds its way back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The gateway that received the action; replies go to its channel.
    pub gateway: String,
    /// The request within that gateway (a WebSocket connection's frame or a
    /// REST call waiting for its answer).
    pub request: u64,
    /// The connection, for WebSocket actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<u64>,
    /// The client's `ref`, echoed on the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The W3C `traceparent` of the span that last handled the action
    /// (gateway, then router), so that each role's span joins one trace.
    /// Absent when the sender exports no traces, and in entries written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Set on a connection's `send` when its gateway hears the room's
    /// channel: the message's `ack` then rides its room `message` event
    /// ([`Event::ack`]) instead of a reply of its own, one publish less
    /// per gateway and read. Absent in entries of gateways before it:
    /// they are answered with a reply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hears_room: bool,
}

/// An action a gateway forwards to the routers (the inbound stream).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    pub origin: Origin,
    /// The authenticated user who asked.
    pub user: Id,
    pub work: Work,
}

impl Inbound {
    /// What decides the partition this action goes to: its room, so that a
    /// room's actions are handled in one order; the user for what concerns
    /// no room (presence), so that a user's connects and disconnects do.
    pub fn partition_key(&self) -> String {
        match &self.work {
            Work::Client(
                ClientAction::Send(crate::frames::SendMessage { room_id, .. })
                | ClientAction::Edit { room_id, .. }
                | ClientAction::Delete { room_id, .. }
                | ClientAction::Typing { room_id, .. }
                | ClientAction::Read { room_id, .. }
                | ClientAction::History { room_id, .. }
                | ClientAction::Join { room_id }
                | ClientAction::Leave { room_id },
            ) => room_id.to_string(),
            Work::Member(
                MemberAction::Add { room_id, .. } | MemberAction::Kick { room_id, .. },
            ) => room_id.to_string(),
            Work::Member(MemberAction::CreateRoom { room_id, .. }) => {
                RoomId::Group(*room_id).to_string()
            }
            // The DM room's partition, so that its creation and its first
            // messages are handled in one order.
            Work::Member(MemberAction::OpenDm { user_id }) => RoomId::dm(self.user, *user_id)
                .map_or_else(|_| self.user.to_string(), |room| room.to_string()),
            Work::Client(ClientAction::Resume { .. } | ClientAction::Ping)
            | Work::Connected { .. }
            | Work::Disconnected { .. } => self.user.to_string(),
        }
    }
}

/// What a router is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Work {
    /// A client action (`send`, `edit`, `delete`, `typing`, `read`, `join`,
    /// `leave`).
    Client(ClientAction),
    /// A connection of the user opened (presence).
    Connected { connection: String },
    /// A connection of the user closed (presence).
    Disconnected { connection: String },
    /// A membership action that only the REST API offers. It has no
    /// WebSocket frame (the wire contract is unchanged); it travels here so
    /// that the router applies it like every other state-changing action,
    /// with the same semantics and errors.
    Member(MemberAction),
}

/// The room and membership actions of the REST API without a WebSocket
/// frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberAction {
    /// `POST /rooms/{room_id}/members`: the user adds `user_id`.
    Add { room_id: RoomId, user_id: Id },
    /// `DELETE /rooms/{room_id}/members/{user_id}`: the user kicks `user_id`.
    Kick { room_id: RoomId, user_id: Id },
    /// `POST /dms`: the DM room of the user and `user_id`, created if needed.
    OpenDm { user_id: Id },
    /// `POST /rooms`: the user creates a group room. Its id is minted by
    /// the gateway, so that the action has the new room's partition and
    /// the gateway can read the room for its answer; a repeat of the same
    /// creation (a router that died before acknowledging it) is a no-op.
    CreateRoom {
        room_id: Id,
        request: crate::rest::CreateRoomRequest,
    },
}

impl MemberAction {
    /// The room it acts on, if it names one (for traces and logs).
    pub fn room_id(&self) -> Option<RoomId> {
        match self {
            MemberAction::Add { room_id, .. } | MemberAction::Kick { room_id, .. } => {
                Some(*room_id)
            }
            MemberAction::CreateRoom { room_id, .. } => Some(RoomId::Group(*room_id)),
            MemberAction::OpenDm { .. } => None,
        }
    }

    /// A short name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            MemberAction::Add { .. } => "add_member",
            MemberAction::Kick { .. } => "kick",
            MemberAction::OpenDm { .. } => "open_dm",
            MemberAction::CreateRoom { .. } => "create_room",
        }
    }
}

/// An accepted message for the writer stage: the persistence workers
/// (through the persist stream), or the router itself when
/// `realtime.write_stage` is `router`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToPersist {
    /// A new message: write it, then deliver it and answer its origin.
    New {
        message: Message,
        origin: Origin,
        /// Set when the message opened a DM room: deliver it on these users'
        /// channels too, since their connections may not have subscribed to
        /// the new room yet.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        also_to_users: Vec<Id>,
    },
    /// A repeated `client_id`: answer the origin with the original message.
    /// `message` is the retry under the original id, written only if the
    /// original never was (its router died before handing it on); writes
    /// are idempotent by id, so this cannot duplicate. `None` when the retry
    /// names another room than the original, which is then only looked up.
    Repeat {
        room_id: RoomId,
        message_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<Message>,
        /// The repeated `client_id`, for the answer to carry (an error too).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        origin: Origin,
        /// Publish the original's events again when it is found stored. Set
        /// by a router that writes messages itself when it handles an
        /// inbound entry a second time: its previous holder may have died
        /// between writing the message and publishing it. (Through the
        /// persist stream the `New` entry itself is handled again instead.)
        /// Gateways pass a message on once per connection (its id is the
        /// event's), so a copy goes no further.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        republish: bool,
    },
}

impl ToPersist {
    /// The room of the message (which decides its partition).
    pub fn room_id(&self) -> RoomId {
        match self {
            ToPersist::New { message, .. } => message.room_id,
            ToPersist::Repeat { room_id, .. } => *room_id,
        }
    }
}

/// The messages a router accepted from one batch of one partition, in
/// order: one entry of that partition of the persist stream (one append per
/// batch, not per message). A single [`ToPersist`] entry, as routers
/// before batching wrote, is read too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistBatch {
    pub items: Vec<ToPersist>,
}

/// An answer to an origin (on its gateway's channel).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub origin: Origin,
    pub outcome: Outcome,
}

/// How an action ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The message is durable (the `ack`; REST answers it whole).
    Posted(Message),
    /// The action is done; its effects travel as events.
    Done,
    /// The action was refused or failed.
    Failed {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// Something that happened, published on a room's or a user's channel for
/// the gateways to pass on to their connections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per event, so that a connection that hears the same event on
    /// several channels (presence goes to every room of the user) passes it
    /// on once.
    pub id: u64,
    /// Connections of this user do not get the event (`typing` goes to the
    /// room's other members only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except_user: Option<Id>,
    /// On a room's events: the room's membership version when the event was
    /// published (`Store::membership_version`, read after the change it
    /// may announce). A gateway whose view of a connection's membership is
    /// older re-checks it before passing the event on. `None`: no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_version: Option<u64>,
    pub frame: ServerFrame,
    /// The W3C `traceparent` of the span that published the event, so that
    /// the gateways' fan-out joins the trace of the action that caused it.
    /// Absent when the publisher exports no traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// On a room's `message` event: the origin of its send, whose gateway
    /// hears the room ([`Origin::hears_room`]) and answers the sending
    /// connection's `ack` from this event. No reply is published for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Origin>,
}

// ----- accounts: revocations and notices --------------------------------

/// The pub/sub channel every gateway listens to for account changes that
/// concern all of them: revoked sessions and notices to everyone.
pub const ACCOUNTS_CHANNEL: &str = "accounts";

/// A session that no longer admits its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub session: Id,
    pub user: Id,
    /// When the session's tokens expire anyway (ms): the revocation need not
    /// be remembered after it.
    pub expires_at: u64,
}

/// What travels on [`ACCOUNTS_CHANNEL`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// These sessions are revoked: refuse their tokens, close their
    /// connections with 4001.
    Revoked(Vec<Revocation>),
    /// An admin's notice to every connection.
    Notice { content: String },
}

/// Encodes an envelope for the bus.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Codec::MsgPack.encode(value)
}

/// Decodes an envelope from the bus.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Codec::MsgPack.decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::SendMessage;

    #[test]
    fn envelopes_round_trip() {
        let origin = Origin {
            gateway: "g1".into(),
            request: 7,
            connection: Some(3),
            reference: Some("r".into()),
            trace: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            hears_room: true,
        };
        let inbound = Inbound {
            origin: origin.clone(),
            user: Id(5),
            work: Work::Client(ClientAction::Send(SendMessage {
                room_id: RoomId::Group(Id(9)),
                content: "hi".into(),
                client_id: None,
                reply_to: None,
                attachment_ids: vec![],
            })),
        };
        assert_eq!(
            decode::<Inbound>(&encode(&inbound).unwrap()).unwrap(),
            inbound
        );
        let reply = Reply {
            origin: origin.clone(),
            outcome: Outcome::Failed {
                code: ErrorCode::RateLimited,
                message: "slow".into(),
                client_id: None,
                retry_after_ms: Some(100),
            },
        };
        assert_eq!(decode::<Reply>(&encode(&reply).unwrap()).unwrap(), reply);
        let event = Event {
            id: 1,
            except_user: Some(Id(2)),
            trace: None,
            membership_version: Some(3),
            frame: ServerFrame::Typing {
                room_id: RoomId::Group(Id(9)),
                user_id: Id(2),
                typing: true,
            },
            ack: Some(origin),
        };
        assert_eq!(decode::<Event>(&encode(&event).unwrap()).unwrap(), event);
    }

    /// Entries written before `Origin::trace` existed still decode.
    #[test]
    fn an_origin_without_trace_context_decodes() {
        #[derive(Serialize)]
        struct OldOrigin {
            gateway: String,
            request: u64,
        }
        let old = encode(&OldOrigin {
            gateway: "g1".into(),
            request: 7,
        })
        .unwrap();
        let origin: Origin = decode(&old).unwrap();
        assert_eq!(origin.trace, None);
        assert_eq!(origin.request, 7);
    }
}
