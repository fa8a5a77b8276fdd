//! A server frame, encoded lazily and at most once per codec.
//!
//! Fan-out to a room of N connections encodes the frame once for JSON and
//! once for MessagePack (only if someone uses it) and hands every connection
//! a reference-counted copy of the same bytes.

use std::sync::OnceLock;

use axum::extract::ws::{Message, Utf8Bytes};
use chat_protocol::Codec;
use chat_protocol::frames::ServerFrame;

/// A frame and its encodings.
pub struct Encoded<'a> {
    frame: &'a ServerFrame,
    json: OnceLock<Option<Message>>,
    msgpack: OnceLock<Option<Message>>,
}

impl<'a> Encoded<'a> {
    pub fn new(frame: &'a ServerFrame) -> Encoded<'a> {
        Encoded {
            frame,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        }
    }

    /// The WebSocket message for `codec`; `None` only if the frame cannot be
    /// encoded, which is a bug and is logged.
    pub fn message(&self, codec: Codec) -> Option<Message> {
        let slot = match codec {
            Codec::Json => &self.json,
            Codec::MsgPack => &self.msgpack,
        };
        slot.get_or_init(|| encode(self.frame, codec)).clone()
    }
}

/// One frame as a WebSocket message of `codec`.
pub fn encode(frame: &ServerFrame, codec: Codec) -> Option<Message> {
    match codec.encode(frame) {
        Ok(bytes) if codec.is_binary() => Some(Message::Binary(bytes.into())),
        Ok(bytes) => match Utf8Bytes::try_from(bytes::Bytes::from(bytes)) {
            Ok(text) => Some(Message::Text(text)),
            Err(error) => {
                tracing::error!(%error, "JSON encoding produced invalid UTF-8");
                None
            }
        },
        Err(error) => {
            tracing::error!(%error, "frame not encodable");
            None
        }
    }
}
