//! Pub/sub on named channels.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Payload, Result};

/// Fan-out of payloads to whoever listens on a channel right now.
#[async_trait]
pub trait PubSub: Send + Sync + 'static {
    /// Publishes `payload` on `channel`.
    ///
    /// Delivered at most once to every subscription of `channel` that exists
    /// when the publish is processed, on any node. Payloads one caller
    /// publishes on one channel arrive in the order published. Nothing is
    /// kept for subscribers that come later, and a subscriber that falls
    /// behind loses payloads rather than slowing the publisher.
    async fn publish(&self, channel: &str, payload: Payload) -> Result<()>;

    /// Publishes each `(channel, payload)` in the order given, with the
    /// guarantees of [`PubSub::publish`] for each (so payloads on one
    /// channel arrive in list order), as one unit of work where the backend
    /// allows: on Redis one pipeline, one round trip for a whole batch.
    /// Every item is attempted; the first failure is answered.
    async fn publish_all(&self, items: Vec<(String, Payload)>) -> Result<()> {
        let mut outcome = Ok(());
        for (channel, payload) in items {
            if let Err(error) = self.publish(&channel, payload).await {
                outcome = outcome.and(Err(error));
            }
        }
        outcome
    }

    /// Opens a subscription: one stream of deliveries for any number of
    /// channels, typically one per process. `capacity` bounds the deliveries
    /// waiting to be received; beyond it, deliveries to this subscription are
    /// dropped (and counted).
    async fn subscribe(&self, capacity: usize) -> Result<Subscription>;
}

/// The receiving end of a subscription.
pub struct Subscription {
    /// Which channels this subscription listens to; shareable across tasks.
    pub control: Arc<dyn Subscriptions>,
    /// Payloads published on those channels, in publish order per channel.
    /// Ends when the subscription is closed.
    pub deliveries: tokio::sync::mpsc::Receiver<Delivery>,
}

/// One payload received on one channel.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub channel: Arc<str>,
    pub payload: Payload,
}

/// The set of channels a subscription listens to.
#[async_trait]
pub trait Subscriptions: Send + Sync + 'static {
    /// Starts receiving `channel`. Idempotent. Once this returns, every later
    /// publish on the channel reaches this subscription (at most once).
    /// Implementations restore their channels by themselves after a
    /// reconnect.
    async fn add(&self, channel: &str) -> Result<()>;

    /// Stops receiving `channel`. Idempotent.
    async fn remove(&self, channel: &str) -> Result<()>;

    /// How many deliveries were dropped because the receiver fell behind.
    fn dropped(&self) -> u64;

    /// How many times the channels were subscribed again after the
    /// connection to the broker was lost: whatever was published on them
    /// in between never arrives. Counted once the broker has confirmed
    /// every channel again, so a read of state begun after seeing the count
    /// grow is no older than what the subscription hears from then on. An
    /// in-process bus never loses its subscribers: 0.
    fn restored(&self) -> u64 {
        0
    }
}
