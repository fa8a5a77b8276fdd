//! Client frames as they arrive: decoded, or refused with what can be
//! salvaged of them (their `ref` and `client_id`, so that the error names
//! the request it answers); and the bad-frame budget, past which a
//! connection sending garbage is closed with 1008.

use std::collections::VecDeque;
use std::time::Duration;

use chat_protocol::Codec;
use chat_protocol::frames::ClientFrame;
use chat_protocol::limits::CLIENT_ID_MAX;
use serde::Deserialize;
use tokio::time::Instant;

/// More bad frames than this within [`BAD_FRAME_WINDOW`] close with 1008.
const MAX_BAD_FRAMES: usize = 20;
const BAD_FRAME_WINDOW: Duration = Duration::from_secs(60);

/// Bad frames in the last minute.
#[derive(Default)]
pub(super) struct BadFrames {
    at: VecDeque<Instant>,
}

impl BadFrames {
    /// Records one more; answers whether the limit is now exceeded.
    pub(super) fn too_many(&mut self) -> bool {
        let now = Instant::now();
        while self
            .at
            .front()
            .is_some_and(|t| now.duration_since(*t) > BAD_FRAME_WINDOW)
        {
            self.at.pop_front();
        }
        self.at.push_back(now);
        self.at.len() > MAX_BAD_FRAMES
    }
}

/// Why a client frame was refused, with what could be salvaged of it.
pub(super) struct FrameError {
    pub(super) message: String,
    pub(super) reference: Option<String>,
    pub(super) client_id: Option<String>,
}

/// `ref` and `client_id` of a frame that may be malformed otherwise.
#[derive(Default, Deserialize)]
struct Salvage {
    #[serde(rename = "ref", default)]
    reference: Option<MaybeString>,
    #[serde(default)]
    client_id: Option<MaybeString>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MaybeString {
    Text(String),
    Other(serde::de::IgnoredAny),
}

impl MaybeString {
    fn text(self) -> Option<String> {
        match self {
            MaybeString::Text(text) => Some(text),
            MaybeString::Other(_) => None,
        }
    }
}

/// Decodes a client frame, or says why not with what it could salvage.
pub(super) fn decode_frame(bytes: &[u8], codec: Codec) -> Result<ClientFrame, FrameError> {
    {
        let refuse = |message: String| {
            let salvage: Salvage = codec.decode(bytes).unwrap_or_default();
            FrameError {
                message,
                reference: salvage
                    .reference
                    .and_then(MaybeString::text)
                    .filter(|r| r.chars().count() <= CLIENT_ID_MAX),
                client_id: salvage.client_id.and_then(MaybeString::text),
            }
        };
        let frame: ClientFrame = codec
            .decode(bytes)
            .map_err(|error| refuse(format!("malformed frame: {error}")))?;
        if frame
            .reference
            .as_ref()
            .is_some_and(|r| r.chars().count() > CLIENT_ID_MAX)
        {
            return Err(refuse(format!(
                "ref is longer than {CLIENT_ID_MAX} characters"
            )));
        }
        Ok(frame)
    }
}
