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

use crate::metrics::kind;
use crate::{Bus, BusError, EntryId, names};

impl Bus {
    /// Publishes an event on a channel.
    pub async fn publish_event(&self, channel: &str, event: &Event) {
        match internal::encode(event) {
            Ok(bytes) => {
                let published = self.pubsub.publish(channel, bytes.into()).await;
                count(kind::EVENT, published.is_ok(), 1);
                if let Err(error) = published {
                    tracing::warn!(%error, channel, "event not published");
                }
            }
            Err(error) => {
                count(kind::EVENT, false, 1);
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
                count(kind::REPLY, published.is_ok(), 1);
                if let Err(error) = published {
                    tracing::warn!(%error, "reply not published");
                }
            }
            Err(error) => {
                count(kind::REPLY, false, 1);
                tracing::error!(%error, "reply not encodable");
            }
        }
    }

    /// Publishes everything `outbox` holds with one
    /// [`crate::PubSub::publish_all`] (one Redis round trip): the events in
    /// the order they were put there, then each gateway's replies as one
    /// payload (a list of [`Reply`], or a lone `Reply`), so every event is
    /// out before the answer to the action that caused it. Failures are
    /// logged, like every publish.
    pub async fn send(&self, outbox: Outbox) {
        let (events, replies) = (outbox.events, outbox.replies_len());
        let items = outbox.into_items();
        let published = self.pubsub.publish_all(items).await;
        count(kind::EVENT, published.is_ok(), events);
        count(kind::REPLY, published.is_ok(), replies);
        if let Err(error) = published {
            let total = events + replies;
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
        count(kind::STREAM, appended.is_ok(), 1);
        appended
    }
}

/// Events and replies gathered for one [`Bus::send`]: a stage that handles
/// a batch publishes what the whole batch produced at once, instead of one
/// round trip per event.
#[derive(Default)]
pub struct Outbox {
    /// The events, in order.
    items: Vec<(String, crate::Payload)>,
    events: u64,
    /// The replies by gateway name, each gateway's in order: one publish
    /// per gateway and batch rather than one per answer.
    replies: Vec<(String, Vec<Reply>)>,
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
                count(kind::EVENT, false, 1);
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
        let reply = Reply { origin, outcome };
        // A handful of gateways: a scan beats hashing their names.
        match self
            .replies
            .iter_mut()
            .find(|(gateway, _)| *gateway == reply.origin.gateway)
        {
            Some((_, replies)) => replies.push(reply),
            None => self
                .replies
                .push((reply.origin.gateway.clone(), vec![reply])),
        }
    }

    /// How many events and replies are queued.
    pub fn len(&self) -> usize {
        self.items.len() + self.replies_len() as usize
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.replies.is_empty()
    }

    fn replies_len(&self) -> u64 {
        self.replies.iter().map(|(_, r)| r.len() as u64).sum()
    }

    /// The payloads to publish: the events, then one per gateway.
    fn into_items(self) -> Vec<(String, crate::Payload)> {
        let mut items = self.items;
        for (gateway, replies) in self.replies {
            let channel = names::gateway_channel(&gateway);
            let encoded = match replies.as_slice() {
                [reply] => internal::encode(reply),
                replies => internal::encode(&replies),
            };
            match encoded {
                Ok(bytes) => items.push((channel, bytes.into())),
                Err(error) => {
                    count(kind::REPLY, false, replies.len() as u64);
                    tracing::error!(%error, "replies not encodable");
                }
            }
        }
        items
    }
}

/// Counts `n` messages put on the bus, or failing to be.
fn count(label: &str, ok: bool, n: u64) {
    let counter = if ok {
        &crate::metrics::PUBLISHED
    } else {
        &crate::metrics::PUBLISH_ERRORS
    };
    counter.with_label_values(&[label]).inc_by(n);
}

/// An event with a fresh random id (ids only need to tell events apart),
/// in the trace of the current span.
pub fn new_event(frame: ServerFrame, except_user: Option<Id>) -> Event {
    event_with_id(rand::random(), frame, except_user)
}

/// An event under `id`, in the trace of the current span: for a publisher
/// that may publish the same event again and wants gateways to drop the
/// copy (they pass an id on to a connection once).
pub fn event_with_id(id: u64, frame: ServerFrame, except_user: Option<Id>) -> Event {
    Event {
        id,
        except_user,
        membership_version: None,
        frame,
        trace: crate::trace::current(),
        ack: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(gateway: &str, request: u64) -> Origin {
        Origin {
            gateway: gateway.into(),
            request,
            connection: None,
            reference: None,
            trace: None,
            hears_room: false,
        }
    }

    #[test]
    fn replies_leave_after_the_events_one_payload_per_gateway() {
        let mut outbox = Outbox::new();
        outbox.reply(origin("a", 1), Outcome::Done);
        outbox.frame("room:1".into(), ServerFrame::Pong { reference: None }, None);
        outbox.reply(origin("b", 2), Outcome::Done);
        outbox.reply(origin("a", 3), Outcome::Done);
        assert_eq!(outbox.len(), 4);

        let items = outbox.into_items();
        let channels: Vec<&str> = items.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(channels, ["room:1", "gateway:a", "gateway:b"]);
        let to_a: Vec<Reply> = internal::decode(&items[1].1).unwrap();
        let requests: Vec<u64> = to_a.iter().map(|r| r.origin.request).collect();
        assert_eq!(requests, [1, 3], "a gateway's replies keep their order");
        assert!(internal::decode::<Reply>(&items[1].1).is_err());
        // A lone reply keeps the single-reply form, which the hub (trying
        // a list first) must not take for a list.
        let to_b: Reply = internal::decode(&items[2].1).unwrap();
        assert_eq!(to_b.origin.request, 2);
        assert!(internal::decode::<Vec<Reply>>(&items[2].1).is_err());
    }
}
