//! The two wire codecs: JSON (`chat.v1.json`, text frames) and MessagePack
//! (`chat.v1.msgpack`, binary frames, maps with the same field names).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// WebSocket subprotocol of the JSON codec (the default).
pub const JSON_SUBPROTOCOL: &str = "chat.v1.json";
/// WebSocket subprotocol of the MessagePack codec.
pub const MSGPACK_SUBPROTOCOL: &str = "chat.v1.msgpack";

/// A wire codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    Json,
    MsgPack,
}

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid MessagePack: {0}")]
    MsgPackDecode(#[from] rmp_serde::decode::Error),
    #[error("MessagePack encoding failed: {0}")]
    MsgPackEncode(#[from] rmp_serde::encode::Error),
}

impl Codec {
    /// Every codec, the default first.
    pub const ALL: [Codec; 2] = [Codec::Json, Codec::MsgPack];

    /// The codec named by a WebSocket subprotocol.
    pub fn from_subprotocol(name: &str) -> Option<Codec> {
        match name {
            JSON_SUBPROTOCOL => Some(Codec::Json),
            MSGPACK_SUBPROTOCOL => Some(Codec::MsgPack),
            _ => None,
        }
    }

    /// The subprotocol name of this codec.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Codec::Json => JSON_SUBPROTOCOL,
            Codec::MsgPack => MSGPACK_SUBPROTOCOL,
        }
    }

    /// Whether frames of this codec are binary (else UTF-8 text).
    pub fn is_binary(self) -> bool {
        self == Codec::MsgPack
    }

    pub fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        Ok(match self {
            Codec::Json => serde_json::to_vec(value)?,
            Codec::MsgPack => rmp_serde::to_vec_named(value)?,
        })
    }

    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(match self {
            Codec::Json => serde_json::from_slice(bytes)?,
            Codec::MsgPack => rmp_serde::from_slice(bytes)?,
        })
    }
}
