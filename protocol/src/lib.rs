//! The public wire contract of chat protocol v1 (see `docs/protocol.md`).
//!
//! Everything a client can observe is defined here exactly once: the ids,
//! the objects, the REST bodies, the WebSocket frames, the closed set of
//! error codes and the two codecs. Every other crate speaks these types, so a
//! change to the contract is a change to this crate and nothing else.

pub mod accounts;
pub mod codec;
pub mod error;
pub mod frames;
pub mod id;
pub mod internal;
pub mod limits;
pub mod model;
pub mod rest;
pub mod room_id;

pub use codec::{Codec, CodecError};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use id::{Id, IdGenerator};
pub use model::{
    File, Message, Notification, NotificationKind, Role, Room, RoomKind, RoomSummary, User,
    Visibility,
};
pub use room_id::RoomId;
