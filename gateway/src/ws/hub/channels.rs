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
use std::sync::atomic::{AtomicU64, Ordering};

use chat_bus::Subscriptions;
use tokio::sync::Mutex;

use super::index::SHARDS;
use crate::metrics;

/// The channels this gateway listens to.
pub struct Channels {
    subscriptions: Arc<dyn Subscriptions>,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    /// SUBSCRIBEs the broker refused.
    refused: AtomicU64,
}

/// The channels of one shard, by what the broker last answered.
#[derive(Default)]
struct Shard {
    /// Subscribed: the broker confirmed it.
    subscribed: HashSet<String>,
    /// Asked for but refused (the broker was out of reach): the
    /// subscription still wants them, and subscribes them when it
    /// reconnects, so they must be given up like subscribed ones once no
    /// connection needs them, or this gateway would hear them for good.
    failed: HashSet<String>,
}

impl Channels {
    pub fn new(subscriptions: Arc<dyn Subscriptions>) -> Channels {
        Channels {
            subscriptions,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            refused: AtomicU64::new(0),
        }
    }

    /// Subscribes `channel` for good (this gateway's reply channel).
    pub async fn pin(&self, channel: &str) -> chat_bus::Result<()> {
        self.subscriptions.add(channel).await
    }

    /// Subscribes or unsubscribes `channel` so that it is subscribed exactly
    /// when `wanted()` says so. Once this returns, a wanted channel is
    /// subscribed (unless the broker refused; that is logged and retried at
    /// the channel's next change, or by the subscription when it
    /// reconnects); one no longer wanted is given up, a refused one too.
    pub async fn reconcile(&self, channel: &str, wanted: impl FnOnce() -> bool) {
        let mut shard = self.shard(channel).lock().await;
        let (wanted, is) = (wanted(), shard.subscribed.contains(channel));
        if wanted && !is {
            match self.subscriptions.add(channel).await {
                Ok(()) => {
                    shard.failed.remove(channel);
                    shard.subscribed.insert(channel.to_owned());
                    metrics::SUBSCRIBED_CHANNELS.inc();
                }
                Err(error) => {
                    tracing::warn!(%error, channel, "cannot subscribe");
                    shard.failed.insert(channel.to_owned());
                    self.refused.fetch_add(1, Ordering::Release);
                }
            }
        } else if !wanted && (is || shard.failed.contains(channel)) {
            if shard.subscribed.remove(channel) {
                metrics::SUBSCRIBED_CHANNELS.dec();
            }
            shard.failed.remove(channel);
            if let Err(error) = self.subscriptions.remove(channel).await {
                tracing::warn!(%error, channel, "cannot unsubscribe");
            }
        }
    }

    /// Whether `channel` is subscribed now, if that can be told without
    /// waiting: `false` while a reconciliation of its shard is under way.
    pub fn surely_subscribed(&self, channel: &str) -> bool {
        self.shard(channel)
            .try_lock()
            .is_ok_and(|shard| shard.subscribed.contains(channel))
    }

    fn shard(&self, channel: &str) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(channel) % SHARDS as u64) as usize]
    }

    /// Deliveries the subscription dropped because the dispatcher fell
    /// behind.
    pub fn dropped(&self) -> u64 {
        self.subscriptions.dropped()
    }

    /// A count that grows whenever this gateway may have missed events:
    /// deliveries dropped, subscriptions restored after a lost connection
    /// (what was published meanwhile is gone), SUBSCRIBEs refused.
    pub fn losses(&self) -> u64 {
        self.subscriptions
            .dropped()
            .wrapping_add(self.subscriptions.restored())
            .wrapping_add(self.refused.load(Ordering::Acquire))
    }
}
