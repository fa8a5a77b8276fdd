//! Pub/sub on Redis: PUBLISH/SUBSCRIBE on one server, SPUBLISH/SSUBSCRIBE
//! (sharded pub/sub) on a cluster, so that a publish reaches only the
//! shard that owns the channel's slot instead of every node.
//!
//! Publishing goes through the shared pool and waits for the server's
//! answer, so one caller's consecutive publishes on a channel are processed
//! in order. Each [`Subscription`] has its own fred `SubscriberClient` (a
//! connection per node) and two tasks: the pump moves messages into the
//! bounded delivery queue with `try_send`, counting what does not fit, and
//! the re-subscriber subscribes every wanted channel again after each
//! reconnect.
//!
//! Why not fred's `manage_subscriptions`: its `resubscribe_all` sends
//! SUBSCRIBE for the plain channels first, even when there are none, and
//! Redis refuses an empty SUBSCRIBE, so sharded channels would never be
//! restored; and it re-subscribes what fred last saw succeed, while a
//! channel whose SUBSCRIBE failed during an outage must come back too. The
//! set of wanted channels here is the source of truth.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::{ClientLike, EventInterface, FredResult, PubsubInterface};
use fred::types::Message;
use futures_util::future::join_all;
use tokio::sync::{broadcast, mpsc};

use super::{Shared, error};
use crate::{BusError, Delivery, Payload, PubSub, Result, Subscription, Subscriptions};

/// Most channels per SUBSCRIBE when restoring them.
const RESUBSCRIBE_CHUNK: usize = 500;

/// Pub/sub across every process sharing the Redis.
pub struct RedisPubSub {
    shared: Arc<Shared>,
}

impl RedisPubSub {
    pub(crate) fn new(shared: Arc<Shared>) -> RedisPubSub {
        RedisPubSub { shared }
    }
}

#[async_trait]
impl PubSub for RedisPubSub {
    async fn publish(&self, channel: &str, payload: Payload) -> Result<()> {
        let name = self.shared.keys.channel(channel);
        // Pool has no pub/sub interface (subscribing on a pool makes no
        // sense); publishing is a plain command on one of its clients.
        let client = self.shared.pool.next_connected();
        let published: FredResult<i64> = if self.shared.clustered {
            client.spublish(name, payload).await
        } else {
            client.publish(name, payload).await
        };
        published.map(|_receivers| ()).map_err(error)
    }

    async fn publish_all(&self, items: Vec<(String, Payload)>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        // One pipeline on one pooled connection: one round trip (per node
        // on a cluster), and Redis runs the commands in the order queued,
        // so each channel's payloads keep theirs.
        let pipeline = self.shared.pool.next_connected().pipeline();
        for (channel, payload) in items {
            let name = self.shared.keys.channel(&channel);
            let queued: FredResult<()> = if self.shared.clustered {
                pipeline.spublish(name, payload).await
            } else {
                pipeline.publish(name, payload).await
            };
            queued.map_err(error)?;
        }
        let answers: Vec<FredResult<i64>> = pipeline.try_all().await;
        answers
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), |failed| Err(error(failed)))
    }

    async fn subscribe(&self, capacity: usize) -> Result<Subscription> {
        let settings = &self.shared.client_config;
        let mut performance = settings.performance.clone();
        // fred's own buffer between its connections and the pump; the pump
        // only moves messages on, so this rarely holds more than a few.
        performance.broadcast_channel_capacity = capacity.clamp(64, 4096);
        let client = SubscriberClient::new(
            settings.config.clone(),
            Some(performance),
            Some(settings.connection.clone()),
            Some(settings.policy.clone()),
        );
        // Taken before connecting, so that nothing is missed.
        let messages = client.message_rx();
        let reconnects = client.reconnect_rx();
        if let Err(e) = client.init().await {
            let _ = client.quit().await;
            return Err(error(e));
        }
        let inner = Arc::new(Inner {
            client,
            sharded: self.shared.clustered,
            prefix: self.shared.keys.prefix().to_owned(),
            wanted: RwLock::default(),
            changing: tokio::sync::Mutex::new(()),
            dropped: AtomicU64::new(0),
            restored: AtomicU64::new(0),
        });
        let (sender, deliveries) = mpsc::channel(capacity.max(1));
        tokio::spawn(pump(inner.clone(), messages, sender));
        tokio::spawn(resubscribe_on_reconnect(inner.clone(), reconnects));
        Ok(Subscription {
            control: Arc::new(RedisSubscription { inner }),
            deliveries,
        })
    }
}

/// The control handle of one subscription.
struct RedisSubscription {
    inner: Arc<Inner>,
}

struct Inner {
    client: SubscriberClient,
    sharded: bool,
    prefix: String,
    /// Redis channel name → the bus's name for it. Only these channels are
    /// delivered: a message still in flight for a removed channel is not.
    wanted: RwLock<HashMap<String, Arc<str>>>,
    /// Serialises changes to the subscriptions, so that a re-subscription
    /// after a reconnect cannot undo a concurrent `remove`.
    changing: tokio::sync::Mutex<()>,
    dropped: AtomicU64,
    /// Reconnects after which every wanted channel was subscribed again.
    restored: AtomicU64,
}

impl Inner {
    fn wanted(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<str>>> {
        // The map holds no invariant that a panic could break half-way.
        self.wanted.read().unwrap_or_else(|p| p.into_inner())
    }

    fn wanted_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<str>>> {
        self.wanted.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes, and returns only once the server has: SSUBSCRIBE waits
    /// for its answer, but fred resolves SUBSCRIBE as soon as it is queued
    /// (it expects no response). Redis answers a connection's commands in
    /// order, so the answer to a PING sent after it on the same connection
    /// proves the SUBSCRIBE was processed.
    async fn subscribe(&self, names: Vec<String>) -> FredResult<()> {
        if self.sharded {
            self.client.ssubscribe(names).await
        } else {
            self.client.subscribe(names).await?;
            let _: fred::types::Value = self.client.ping(None).await?;
            Ok(())
        }
    }

    async fn unsubscribe(&self, name: String) -> FredResult<()> {
        if self.sharded {
            self.client.sunsubscribe(name).await
        } else {
            self.client.unsubscribe(name).await
        }
    }

    /// Subscribes every wanted channel again (after a reconnect the server
    /// knows none of them).
    async fn resubscribe(&self) -> FredResult<()> {
        let _changing = self.changing.lock().await;
        let names: Vec<String> = self.wanted().keys().cloned().collect();
        if names.is_empty() {
            return Ok(());
        }
        let batches: Vec<Vec<String>> = if self.sharded {
            // SSUBSCRIBE takes channels of one slot only.
            let mut by_slot: HashMap<u16, Vec<String>> = HashMap::new();
            for name in names {
                by_slot
                    .entry(fred::util::redis_keyslot(name.as_bytes()))
                    .or_default()
                    .push(name);
            }
            by_slot.into_values().collect()
        } else {
            names
                .chunks(RESUBSCRIBE_CHUNK)
                .map(<[String]>::to_vec)
                .collect()
        };
        let results = join_all(batches.into_iter().map(|batch| self.subscribe(batch))).await;
        results.into_iter().collect::<FredResult<Vec<()>>>()?;
        tracing::debug!(
            channels = self.wanted().len(),
            "redis subscriptions restored"
        );
        Ok(())
    }
}

#[async_trait]
impl Subscriptions for RedisSubscription {
    async fn add(&self, channel: &str) -> Result<()> {
        let inner = &self.inner;
        let name = format!("{}{channel}", inner.prefix);
        let _changing = inner.changing.lock().await;
        inner
            .wanted_mut()
            .entry(name.clone())
            .or_insert_with(|| Arc::from(channel));
        // Sent even when already wanted: harmless to the server, and it
        // completes a subscription whose earlier attempt failed. The answer
        // comes once the server has subscribed, so later publishes reach
        // it. On failure the channel stays wanted and is subscribed at the
        // next reconnect.
        inner.subscribe(vec![name]).await.map_err(error)
    }

    async fn remove(&self, channel: &str) -> Result<()> {
        let inner = &self.inner;
        let name = format!("{}{channel}", inner.prefix);
        let _changing = inner.changing.lock().await;
        inner.wanted_mut().remove(&name);
        // Nothing more is delivered from here on: the pump drops messages
        // of unwanted channels. If the server cannot be told now, the
        // subscription ends with the connection at the next reconnect.
        if let Err(e) = inner.unsubscribe(name).await {
            tracing::warn!(error = %e, channel, "redis unsubscribe failed; ignored until reconnect");
        }
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn restored(&self) -> u64 {
        self.inner.restored.load(Ordering::Acquire)
    }
}

/// Moves messages from fred into the subscription's bounded queue, until
/// the receiver is dropped or the client closes; then closes the client.
async fn pump(
    inner: Arc<Inner>,
    mut messages: broadcast::Receiver<Message>,
    sender: mpsc::Sender<Delivery>,
) {
    loop {
        let message = tokio::select! {
            () = sender.closed() => break,
            message = messages.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                inner.dropped.fetch_add(missed, Ordering::Relaxed);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        let Some(channel) = inner.wanted().get(&*message.channel).cloned() else {
            continue;
        };
        let Ok(payload) = message.value.convert::<Bytes>() else {
            tracing::warn!(%channel, "redis message without a payload dropped");
            continue;
        };
        match sender.try_send(Delivery { channel, payload }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
    // Ends the re-subscriber too: quitting closes the reconnect events.
    let _ = inner.client.quit().await;
}

/// Restores the subscriptions after every reconnect, retrying while the
/// server refuses, until the client closes.
async fn resubscribe_on_reconnect(
    inner: Arc<Inner>,
    mut reconnects: broadcast::Receiver<fred::types::config::Server>,
) {
    loop {
        match reconnects.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
        let mut delay = Duration::from_millis(50);
        loop {
            match inner.resubscribe().await {
                Ok(()) => {
                    inner.restored.fetch_add(1, Ordering::Release);
                    break;
                }
                Err(e) => {
                    let e: BusError = error(e);
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot restore redis subscriptions");
                }
            }
            // A newer reconnect restarts the restoration; a closed client
            // ends it.
            match tokio::time::timeout(delay, reconnects.recv()).await {
                Err(_elapsed) => {}
                Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}
