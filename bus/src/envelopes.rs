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

    /// Publishes everything `outbox` holds, in the order it was put there,
    /// with one [`crate::PubSub::publish_all`] (one Redis round trip).
    /// Failures are logged, like every publish.
    pub async fn send(&self, outbox: Outbox) {
        let count = outbox.items.len();
        if let Err(error) = self.pubsub.publish_all(outbox.items).await {
            tracing::warn!(%error, count, "some events or replies of a batch not published");
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

/// Events and replies gathered for one [`Bus::send`]: a stage that handles
/// a batch publishes what the whole batch produced at once, instead of one
/// round trip per event.
#[derive(Default)]
pub struct Outbox {
    items: Vec<(String, crate::Payload)>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Queues an event on a channel.
    pub fn event(&mut self, channel: String, event: &Event) {
        match internal::encode(event) {
            Ok(bytes) => self.items.push((channel, bytes.into())),
            Err(error) => tracing::error!(%error, "event not encodable"),
        }
    }

    /// Queues `frame` on a channel as a new event.
    pub fn frame(&mut self, channel: String, frame: ServerFrame, except_user: Option<Id>) {
        self.event(channel, &new_event(frame, except_user));
    }

    /// Queues an answer to an action's origin gateway.
    pub fn reply(&mut self, origin: Origin, outcome: Outcome) {
        let channel = names::gateway_channel(&origin.gateway);
        match internal::encode(&Reply { origin, outcome }) {
            Ok(bytes) => self.items.push((channel, bytes.into())),
            Err(error) => tracing::error!(%error, "reply not encodable"),
        }
    }

    /// How many payloads are queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// An event with a fresh random id (ids only need to tell events apart).
pub fn new_event(frame: ServerFrame, except_user: Option<Id>) -> Event {
    Event {
        id: rand::random(),
        except_user,
        membership_version: None,
        frame,
    }
}
