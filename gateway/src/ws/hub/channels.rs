//! Keeping the gateway's bus subscriptions in line with the index.
//!
//! A room's (or user's) channel is subscribed while at least one local
//! connection needs it (a room's a while longer after a removal: the hub
//! asks for that reconciliation late). Whoever changes the index asks for
//! the channel to be reconciled; the reconciliation of one channel is serialized (an async
//! lock per shard of channels), reads what the index wants *after* taking
//! that lock, and only then subscribes or unsubscribes. So the last
//! reconciliation always sees the last change, a SUBSCRIBE and an
//! UNSUBSCRIBE of one channel never overtake each other, and a slow broker
//! delays only subscription changes — never the fan-out, which does not
//! look here.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use chat_bus::Subscriptions;
use tokio::sync::Mutex;

use super::index::SHARDS;
use crate::metrics;

/// The channels this gateway listens to.
pub struct Channels {
    subscriptions: Arc<dyn Subscriptions>,
    hasher: RandomState,
    subscribed: Box<[Mutex<HashSet<String>>]>,
}

impl Channels {
    pub fn new(subscriptions: Arc<dyn Subscriptions>) -> Channels {
        Channels {
            subscriptions,
            hasher: RandomState::new(),
            subscribed: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Subscribes `channel` for good (this gateway's reply channel).
    pub async fn pin(&self, channel: &str) -> chat_bus::Result<()> {
        self.subscriptions.add(channel).await
    }

    /// Subscribes or unsubscribes `channel` so that it is subscribed exactly
    /// when `wanted()` says so. Once this returns, a wanted channel is
    /// subscribed (unless the broker refused; that is logged and retried at
    /// the channel's next change).
    pub async fn reconcile(&self, channel: &str, wanted: impl FnOnce() -> bool) {
        let shard = (self.hasher.hash_one(channel) % SHARDS as u64) as usize;
        let mut subscribed = self.subscribed[shard].lock().await;
        let (wanted, is) = (wanted(), subscribed.contains(channel));
        if wanted && !is {
            match self.subscriptions.add(channel).await {
                Ok(()) => {
                    subscribed.insert(channel.to_owned());
                    metrics::SUBSCRIBED_CHANNELS.inc();
                }
                Err(error) => tracing::warn!(%error, channel, "cannot subscribe"),
            }
        } else if !wanted && is {
            subscribed.remove(channel);
            metrics::SUBSCRIBED_CHANNELS.dec();
            if let Err(error) = self.subscriptions.remove(channel).await {
                tracing::warn!(%error, channel, "cannot unsubscribe");
            }
        }
    }

    /// Whether `channel` is subscribed now, if that can be told without
    /// waiting: `false` while a reconciliation of its shard is under way.
    pub fn surely_subscribed(&self, channel: &str) -> bool {
        let shard = (self.hasher.hash_one(channel) % SHARDS as u64) as usize;
        self.subscribed[shard]
            .try_lock()
            .is_ok_and(|subscribed| subscribed.contains(channel))
    }

    /// Deliveries the subscription dropped because the dispatcher fell
    /// behind.
    pub fn dropped(&self) -> u64 {
        self.subscriptions.dropped()
    }
}
