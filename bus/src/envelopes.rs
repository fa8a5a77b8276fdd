//! Typed sending over the bus: the envelopes of `chat_protocol::internal`,
//! encoded once here for every role.
//!
//! Publishing is at most once, so these log failures instead of returning
//! them: the action that caused an event is already durable, and clients
//! close gaps with `resume` and `history`.

use chat_protocol::Id;
use chat_protocol::frames::ServerFrame;
use chat_protocol::internal::{self, Event, Origin, Outcome, Reply};
use serde::Serialize;

use crate::{Bus, BusError, EntryId, names};

impl Bus {
    /// Publishes an event on a channel.
    pub async fn publish_event(&self, channel: &str, event: &Event) {
        match internal::encode(event) {
            Ok(bytes) => {
                if let Err(error) = self.pubsub.publish(channel, bytes.into()).await {
                    tracing::warn!(%error, channel, "event not published");
                }
            }
            Err(error) => tracing::error!(%error, "event not encodable"),
        }
    }

    /// Publishes `frame` on a channel as a new event.
    pub async fn publish_frame(&self, channel: &str, frame: ServerFrame, except_user: Option<Id>) {
        self.publish_event(channel, &new_event(frame, except_user))
            .await;
    }

    /// Answers an action's origin gateway.
    pub async fn reply(&self, origin: Origin, outcome: Outcome) {
        let channel = names::gateway_channel(&origin.gateway);
        match internal::encode(&Reply { origin, outcome }) {
            Ok(bytes) => {
                if let Err(error) = self.pubsub.publish(&channel, bytes.into()).await {
                    tracing::warn!(%error, "reply not published");
                }
            }
            Err(error) => tracing::error!(%error, "reply not encodable"),
        }
    }

    /// Appends an envelope to a work stream.
    pub async fn append<T: Serialize + Sync>(
        &self,
        stream: &str,
        envelope: &T,
    ) -> Result<EntryId, BusError> {
        let bytes = internal::encode(envelope).map_err(|e| BusError::Internal(e.to_string()))?;
        self.queue.append(stream, bytes.into()).await
    }
}

/// An event with a fresh random id (ids only need to tell events apart).
pub fn new_event(frame: ServerFrame, except_user: Option<Id>) -> Event {
    Event {
        id: rand::random(),
        except_user,
        frame,
    }
}
