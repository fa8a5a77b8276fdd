//! In-process shared state: token buckets, expiring keys and presence.
//!
//! Maps are pruned as they grow, so memory follows the live keys.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{Payload, RateDecision, Result, SharedState};

/// Pruning starts once a map holds this many keys.
const MIN_PRUNE: usize = 4096;

/// Shared state within one process.
#[derive(Default)]
pub struct LocalState {
    buckets: Mutex<Pruned<Bucket>>,
    keys: Mutex<Pruned<(Payload, Instant)>>,
    /// user → their live connections.
    presence: Mutex<HashMap<String, HashSet<String>>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
    /// When the bucket is full again and can be forgotten.
    full_at: Instant,
}

/// A map that drops its expired values as it grows.
struct Pruned<V> {
    map: HashMap<String, V>,
    prune_at: usize,
}

impl<V> Default for Pruned<V> {
    fn default() -> Self {
        Pruned {
            map: HashMap::new(),
            prune_at: MIN_PRUNE,
        }
    }
}

impl<V> Pruned<V> {
    fn prune_if_large(&mut self, expired: impl Fn(&V) -> bool) {
        if self.map.len() >= self.prune_at {
            self.map.retain(|_, v| !expired(v));
            self.prune_at = (self.map.len() * 2).max(MIN_PRUNE);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // These maps hold no invariant that a panic could break half-way.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalState {
    pub fn new() -> LocalState {
        LocalState::default()
    }
}

#[async_trait]
impl SharedState for LocalState {
    async fn take_token(&self, key: &str, per_second: f64, burst: u32) -> Result<RateDecision> {
        let now = Instant::now();
        let burst = f64::from(burst.max(1));
        let per_second = per_second.max(f64::MIN_POSITIVE);
        let mut buckets = lock(&self.buckets);
        buckets.prune_if_large(|b| b.full_at <= now);
        let bucket = buckets.map.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
            full_at: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.updated = now;
        let decision = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            RateDecision::Allowed
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            RateDecision::Limited {
                retry_after: Duration::from_secs_f64(wait),
            }
        };
        bucket.full_at = now + Duration::from_secs_f64((burst - bucket.tokens) / per_second);
        Ok(decision)
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Payload,
        ttl: Duration,
    ) -> Result<Option<Payload>> {
        let now = Instant::now();
        let mut keys = lock(&self.keys);
        keys.prune_if_large(|(_, expires)| *expires <= now);
        match keys.map.get(key) {
            Some((existing, expires)) if *expires > now => Ok(Some(existing.clone())),
            _ => {
                keys.map.insert(key.to_owned(), (value, now + ttl));
                Ok(None)
            }
        }
    }

    async fn remove(&self, key: &str) -> Result<()> {
        lock(&self.keys).map.remove(key);
        Ok(())
    }

    async fn connection_opened(
        &self,
        user: &str,
        connection: &str,
        _ttl: Duration,
    ) -> Result<bool> {
        let mut presence = lock(&self.presence);
        let connections = presence.entry(user.to_owned()).or_default();
        let was_offline = connections.is_empty();
        connections.insert(connection.to_owned());
        Ok(was_offline)
    }

    async fn connection_alive(&self, _user: &str, _connection: &str, _ttl: Duration) -> Result<()> {
        // Connections in this process cannot outlive it, so they need no
        // expiry: they are removed when they close.
        Ok(())
    }

    async fn connection_closed(&self, user: &str, connection: &str) -> Result<bool> {
        let mut presence = lock(&self.presence);
        let Some(connections) = presence.get_mut(user) else {
            return Ok(false);
        };
        let removed = connections.remove(connection);
        let now_offline = removed && connections.is_empty();
        if connections.is_empty() {
            presence.remove(user);
        }
        Ok(now_offline)
    }

    async fn online(&self, users: &[String]) -> Result<Vec<bool>> {
        let presence = lock(&self.presence);
        Ok(users.iter().map(|u| presence.contains_key(u)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_bucket_allows_a_burst_then_the_rate() {
        let state = LocalState::new();
        for _ in 0..20 {
            assert_eq!(
                state.take_token("u", 10.0, 20).await.unwrap(),
                RateDecision::Allowed
            );
        }
        let RateDecision::Limited { retry_after } = state.take_token("u", 10.0, 20).await.unwrap()
        else {
            panic!("the 21st is limited");
        };
        assert!(
            retry_after > Duration::ZERO && retry_after <= Duration::from_millis(100),
            "{retry_after:?}"
        );
        assert_eq!(
            state.take_token("other", 10.0, 20).await.unwrap(),
            RateDecision::Allowed
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(
            state.take_token("u", 10.0, 20).await.unwrap(),
            RateDecision::Allowed
        );
    }

    #[tokio::test]
    async fn put_if_absent_keeps_the_first_live_value() {
        let state = LocalState::new();
        assert_eq!(
            state
                .put_if_absent("k", Payload::from("a"), Duration::from_secs(60))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            state
                .put_if_absent("k", Payload::from("b"), Duration::from_secs(60))
                .await
                .unwrap(),
            Some(Payload::from("a"))
        );
        assert_eq!(
            state
                .put_if_absent("short", Payload::from("a"), Duration::ZERO)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            state
                .put_if_absent("short", Payload::from("b"), Duration::ZERO)
                .await
                .unwrap(),
            None,
            "expired"
        );
        state.remove("k").await.unwrap();
        assert_eq!(
            state
                .put_if_absent("k", Payload::from("c"), Duration::from_secs(60))
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn presence_turns_on_with_the_first_connection_and_off_with_the_last() {
        let state = LocalState::new();
        let ttl = Duration::from_secs(60);
        assert!(state.connection_opened("u", "c1", ttl).await.unwrap());
        assert!(!state.connection_opened("u", "c2", ttl).await.unwrap());
        assert_eq!(
            state.online(&["u".into(), "v".into()]).await.unwrap(),
            [true, false]
        );
        assert!(!state.connection_closed("u", "c1").await.unwrap());
        assert!(
            !state.connection_closed("u", "c1").await.unwrap(),
            "closing twice"
        );
        assert!(state.connection_closed("u", "c2").await.unwrap());
        assert_eq!(state.online(&["u".into()]).await.unwrap(), [false]);
    }
}
