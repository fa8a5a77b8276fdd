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
                let published = self.pubsub.publish(channel, bytes.into()).await;
                count("event", published.is_ok(), 1);
                if let Err(error) = published {
                    tracing::warn!(%error, channel, "event not published");
                }
            }
            Err(error) => {
                count("event", false, 1);
                tracing::error!(%error, "event not encodable");
            }
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
                let published = self.pubsub.publish(&channel, bytes.into()).await;
                count("reply", published.is_ok(), 1);
                if let Err(error) = published {
                    tracing::warn!(%error, "reply not published");
                }
            }
            Err(error) => {
                count("reply", false, 1);
                tracing::error!(%error, "reply not encodable");
            }
        }
    }

    /// Publishes everything `outbox` holds, in the order it was put there,
    /// with one [`crate::PubSub::publish_all`] (one Redis round trip).
    /// Failures are logged, like every publish.
    pub async fn send(&self, outbox: Outbox) {
        let (events, total) = (outbox.events, outbox.items.len());
        let published = self.pubsub.publish_all(outbox.items).await;
        count("event", published.is_ok(), events);
        count("reply", published.is_ok(), total as u64 - events);
        if let Err(error) = published {
            tracing::warn!(%error, total, "some events or replies of a batch not published");
        }
    }

    /// Appends an envelope to a work stream.
    pub async fn append<T: Serialize + Sync>(
        &self,
        stream: &str,
        envelope: &T,
    ) -> Result<EntryId, BusError> {
        let appended = match internal::encode(envelope) {
            Ok(bytes) => self.queue.append(stream, bytes.into()).await,
            Err(e) => Err(BusError::Internal(e.to_string())),
        };
        count("stream", appended.is_ok(), 1);
        appended
    }
}

/// Events and replies gathered for one [`Bus::send`]: a stage that handles
/// a batch publishes what the whole batch produced at once, instead of one
/// round trip per event.
#[derive(Default)]
pub struct Outbox {
    items: Vec<(String, crate::Payload)>,
    /// How many of `items` are events and replies (the rest), for the
    /// publish counters.
    events: u64,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Queues an event on a channel.
    pub fn event(&mut self, channel: String, event: &Event) {
        match internal::encode(event) {
            Ok(bytes) => {
                self.items.push((channel, bytes.into()));
                self.events += 1;
            }
            Err(error) => {
                count("event", false, 1);
                tracing::error!(%error, "event not encodable");
            }
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
            Err(error) => {
                count("reply", false, 1);
                tracing::error!(%error, "reply not encodable");
            }
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

/// Counts `n` messages put on the bus, or failing to be.
fn count(kind: &str, ok: bool, n: u64) {
    let counter = if ok {
        &crate::metrics::PUBLISHED
    } else {
        &crate::metrics::PUBLISH_ERRORS
    };
    counter.with_label_values(&[kind]).inc_by(n);
}

/// An event with a fresh random id (ids only need to tell events apart),
/// in the trace of the current span.
pub fn new_event(frame: ServerFrame, except_user: Option<Id>) -> Event {
    Event {
        id: rand::random(),
        except_user,
        membership_version: None,
        frame,
        trace: crate::trace::current(),
    }
}
