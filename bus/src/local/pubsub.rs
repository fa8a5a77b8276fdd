//! In-process pub/sub: a map from channel to the subscriptions listening.
//!
//! The map holds weak references, so a subscription that is dropped stops
//! receiving without any explicit cleanup; dead entries are pruned when a
//! publish finds them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{Delivery, Payload, PubSub, Result, Subscription, Subscriptions};

type ChannelMap = HashMap<Arc<str>, Vec<Weak<Listener>>>;

/// Pub/sub within one process.
#[derive(Clone, Default)]
pub struct LocalPubSub {
    channels: Arc<Mutex<ChannelMap>>,
}

/// Where deliveries for one subscription go.
struct Listener {
    sender: mpsc::Sender<Delivery>,
    dropped: AtomicU64,
}

/// The control handle of one subscription; owns its listener.
struct LocalSubscription {
    listener: Arc<Listener>,
    channels: Mutex<HashSet<Arc<str>>>,
    hub: LocalPubSub,
}

impl LocalPubSub {
    pub fn new() -> LocalPubSub {
        LocalPubSub::default()
    }

    fn channels(&self) -> MutexGuard<'_, ChannelMap> {
        // The map holds no invariant that a panic could break half-way.
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl PubSub for LocalPubSub {
    async fn publish(&self, channel: &str, payload: Payload) -> Result<()> {
        let (name, listeners) = {
            let mut channels = self.channels();
            let Some((name, weak)) = channels.get_key_value(channel) else {
                return Ok(());
            };
            let name = name.clone();
            let live: Vec<Arc<Listener>> = weak.iter().filter_map(Weak::upgrade).collect();
            if live.len() != weak.len() {
                let entry = channels.entry(name.clone()).or_default();
                entry.retain(|w| w.strong_count() > 0);
                if entry.is_empty() {
                    channels.remove(&name);
                }
            }
            (name, live)
        };
        for listener in listeners {
            let delivery = Delivery {
                channel: name.clone(),
                payload: payload.clone(),
            };
            if listener.sender.try_send(delivery).is_err() {
                listener.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    async fn subscribe(&self, capacity: usize) -> Result<Subscription> {
        let (sender, deliveries) = mpsc::channel(capacity.max(1));
        let control = LocalSubscription {
            listener: Arc::new(Listener {
                sender,
                dropped: AtomicU64::new(0),
            }),
            channels: Mutex::default(),
            hub: self.clone(),
        };
        Ok(Subscription {
            control: Arc::new(control),
            deliveries,
        })
    }
}

#[async_trait]
impl Subscriptions for LocalSubscription {
    async fn add(&self, channel: &str) -> Result<()> {
        let name: Arc<str> = Arc::from(channel);
        let mut mine = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if mine.insert(name.clone()) {
            self.hub
                .channels()
                .entry(name)
                .or_default()
                .push(Arc::downgrade(&self.listener));
        }
        Ok(())
    }

    async fn remove(&self, channel: &str) -> Result<()> {
        let mut mine = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if mine.remove(channel) {
            let me = Arc::as_ptr(&self.listener);
            let mut channels = self.hub.channels();
            if let Some(listeners) = channels.get_mut(channel) {
                listeners.retain(|w| !std::ptr::eq(w.as_ptr(), me) && w.strong_count() > 0);
                if listeners.is_empty() {
                    channels.remove(channel);
                }
            }
        }
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.listener.dropped.load(Ordering::Relaxed)
    }
}

// The guarantees of `PubSub` are tested by the conformance suite
// (`tests/local_bus.rs`); here, what only this implementation does.
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropped_subscriptions_are_forgotten() {
        let bus = LocalPubSub::new();
        let sub = bus.subscribe(1).await.unwrap();
        sub.control.add("c").await.unwrap();
        drop(sub);
        bus.publish("c", Payload::from_static(b"p")).await.unwrap();
        assert!(bus.channels().is_empty());
    }
}
