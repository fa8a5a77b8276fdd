//! In-process shared state: token buckets, expiring keys, presence and
//! worker ids.
//!
//! Maps are pruned as they grow, so memory follows the live keys. Presence
//! follows the same rules as the Redis implementation (connections expire
//! unless kept alive, and every transition is answered once), so that the
//! roles behave the same in both modes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::partitions::{Leases, fair_share};
use crate::state::MAX_WORKER_ID;
use crate::{Bucket, BusError, Payload, RateDecision, Result, SharedState};

/// Pruning starts once a map holds this many keys.
const MIN_PRUNE: usize = 4096;

/// Shared state within one process.
pub struct LocalState {
    /// When this state began (Unix ms): it has kept every key since. `None`
    /// when it must not vouch for that (see [`LocalState::beside_others`]).
    started_ms: Option<u64>,
    /// Token buckets by lane and key (`"<lane> <key>"`): in memory a lane
    /// is simply a bucket of its own.
    buckets: Mutex<Pruned<TokenBucket>>,
    keys: Mutex<Pruned<(Payload, Instant)>>,
    presence: Mutex<Presence>,
    /// worker id → (owner, end of the lease).
    workers: Mutex<HashMap<u16, (String, Instant)>>,
    /// Consumer groups' members and partition leases, by group.
    groups: Mutex<HashMap<String, PartitionGroup>>,
}

/// One consumer group's live members and partition leases.
#[derive(Default)]
struct PartitionGroup {
    /// member → end of its life.
    members: HashMap<String, Instant>,
    /// partition → (holder, end of the lease).
    leases: HashMap<u16, (String, Instant)>,
}

/// Connections and when each one expires.
#[derive(Default)]
struct Presence {
    /// user → connection → end of its life. A user is here while they have
    /// at least one connection, live or expired-but-not-yet-swept.
    users: HashMap<String, HashMap<String, Instant>>,
    /// Every connection by the end of its life, for the sweep.
    by_expiry: BTreeSet<(Instant, String, String)>,
}

impl Presence {
    /// Sets the end of life of a connection, in both indexes.
    fn set(&mut self, user: &str, connection: &str, expires: Instant) {
        let connections = self.users.entry(user.to_owned()).or_default();
        if let Some(old) = connections.insert(connection.to_owned(), expires) {
            self.by_expiry
                .remove(&(old, user.to_owned(), connection.to_owned()));
        }
        self.by_expiry
            .insert((expires, user.to_owned(), connection.to_owned()));
    }

    /// Drops the expired connections of `user`; drops the user when none
    /// is left, answering whether that happened.
    fn purge(&mut self, user: &str, now: Instant) -> bool {
        let Some(connections) = self.users.get_mut(user) else {
            return false;
        };
        let by_expiry = &mut self.by_expiry;
        connections.retain(|connection, expires| {
            let live = *expires > now;
            if !live {
                by_expiry.remove(&(*expires, user.to_owned(), connection.clone()));
            }
            live
        });
        if connections.is_empty() {
            self.users.remove(user);
            return true;
        }
        false
    }

    fn live(&self, user: &str, now: Instant) -> usize {
        self.users
            .get(user)
            .map_or(0, |c| c.values().filter(|e| **e > now).count())
    }
}

/// `now + ttl`, or far in the future when that does not fit.
fn deadline(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

struct TokenBucket {
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
    /// The state of a process that is the only one acting on its store
    /// (one `chatd serve` on its SQLite file, which it locks): every key
    /// the store's users put went through here, so it vouches for them
    /// from its start ([`SharedState::keeps_keys_since_ms`]).
    pub fn new() -> LocalState {
        LocalState {
            started_ms: Some(chat_protocol::id::now_ms()),
            buckets: Mutex::default(),
            keys: Mutex::default(),
            presence: Mutex::default(),
            workers: Mutex::default(),
            groups: Mutex::default(),
        }
    }

    /// The state of a process whose store others act on too, each with a
    /// state of its own (embedded servers sharing one ScyllaDB keyspace):
    /// a key absent here may have been put elsewhere, so it vouches for
    /// nothing.
    pub fn beside_others() -> LocalState {
        LocalState {
            started_ms: None,
            ..LocalState::new()
        }
    }
}

impl Default for LocalState {
    fn default() -> LocalState {
        LocalState::new()
    }
}

#[async_trait]
impl SharedState for LocalState {
    async fn take_tokens(&self, bucket: &Bucket, count: u32) -> Result<RateDecision> {
        let now = Instant::now();
        let count = f64::from(count.max(1));
        let burst = f64::from(bucket.burst.max(1));
        let per_second = bucket.per_second.max(f64::MIN_POSITIVE);
        let mut buckets = lock(&self.buckets);
        buckets.prune_if_large(|b| b.full_at <= now);
        // A lane has no whitespace, so the first space ends it.
        let key = format!("{} {}", bucket.lane, bucket.key);
        let bucket = buckets.map.entry(key).or_insert(TokenBucket {
            tokens: burst,
            updated: now,
            full_at: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.updated = now;
        let decision = if count <= burst && bucket.tokens >= count {
            bucket.tokens -= count;
            RateDecision::Allowed
        } else {
            let wait = (count.min(burst) - bucket.tokens).max(0.0) / per_second;
            RateDecision::Limited {
                retry_after: Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX),
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

    /// Keys are dropped only once expired, and nothing else holds them.
    fn keeps_keys_since_ms(&self) -> Option<u64> {
        self.started_ms
    }

    async fn connection_opened(&self, user: &str, connection: &str, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut presence = lock(&self.presence);
        let was_offline = presence.live(user, now) == 0;
        // Expired connections are dead; the new one takes over announcing
        // the user, so their expiry is not reported by a sweep either.
        presence.purge(user, now);
        presence.set(user, connection, deadline(now, ttl));
        Ok(was_offline)
    }

    async fn connections_alive(
        &self,
        connections: &[(String, String)],
        ttl: Duration,
    ) -> Result<Vec<usize>> {
        let now = Instant::now();
        let mut presence = lock(&self.presence);
        let mut not_live = Vec::new();
        for (at, (user, connection)) in connections.iter().enumerate() {
            let live = presence
                .users
                .get(user)
                .and_then(|c| c.get(connection))
                .is_some_and(|expires| *expires > now);
            if live {
                presence.set(user, connection, deadline(now, ttl));
            } else {
                not_live.push(at);
            }
        }
        Ok(not_live)
    }

    async fn connection_closed(&self, user: &str, connection: &str) -> Result<bool> {
        let now = Instant::now();
        let mut presence = lock(&self.presence);
        let Presence { users, by_expiry } = &mut *presence;
        let Some(connections) = users.get_mut(user) else {
            return Ok(false);
        };
        if let Some(expires) = connections.remove(connection) {
            by_expiry.remove(&(expires, user.to_owned(), connection.to_owned()));
        }
        if connections.is_empty() {
            users.remove(user);
            return Ok(true);
        }
        // Whoever removes the user's last connection announces them offline.
        Ok(presence.live(user, now) == 0 && presence.purge(user, now))
    }

    async fn online(&self, users: &[String]) -> Result<Vec<bool>> {
        let now = Instant::now();
        let presence = lock(&self.presence);
        Ok(users.iter().map(|u| presence.live(u, now) > 0).collect())
    }

    async fn expired_connections(&self, max: usize) -> Result<Vec<String>> {
        let now = Instant::now();
        let mut presence = lock(&self.presence);
        let mut offline = Vec::new();
        let mut removed = 0;
        while removed < max {
            let Some((expires, user, connection)) = presence.by_expiry.first().cloned() else {
                break;
            };
            if expires > now {
                break;
            }
            presence.by_expiry.pop_first();
            removed += 1;
            let Some(connections) = presence.users.get_mut(&user) else {
                continue;
            };
            connections.remove(&connection);
            if connections.is_empty() {
                presence.users.remove(&user);
                offline.push(user);
            }
        }
        Ok(offline)
    }

    async fn lease_worker_id(&self, owner: &str, ttl: Duration) -> Result<u16> {
        let now = Instant::now();
        let mut workers = lock(&self.workers);
        let free = (0..=MAX_WORKER_ID)
            .find(|id| workers.get(id).is_none_or(|(_, until)| *until <= now))
            .ok_or_else(|| BusError::Unavailable("every worker id is leased".into()))?;
        workers.insert(free, (owner.to_owned(), deadline(now, ttl)));
        Ok(free)
    }

    async fn renew_worker_id(&self, id: u16, owner: &str, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut workers = lock(&self.workers);
        match workers.get_mut(&id) {
            Some((holder, until)) if holder == owner && *until > now => {
                *until = deadline(now, ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_partitions(
        &self,
        group: &str,
        member: &str,
        partitions: u16,
        ttl: Duration,
    ) -> Result<Leases> {
        let now = Instant::now();
        let until = deadline(now, ttl);
        let mut groups = lock(&self.groups);
        let group = groups.entry(group.to_owned()).or_default();
        group.members.insert(member.to_owned(), until);
        group.members.retain(|_, end| *end > now);
        let share = fair_share(partitions, group.members.len());
        let mut held = Vec::new();
        let mut free = Vec::new();
        for partition in 0..partitions {
            match group.leases.get_mut(&partition) {
                Some((holder, end)) if *end > now => {
                    if holder == member {
                        *end = until;
                        held.push(partition);
                    }
                }
                _ => free.push(partition),
            }
        }
        for partition in free {
            if held.len() >= usize::from(share) {
                break;
            }
            group.leases.insert(partition, (member.to_owned(), until));
            held.push(partition);
        }
        held.sort_unstable();
        Ok(Leases { held, share })
    }

    async fn release_partitions(
        &self,
        group: &str,
        member: &str,
        partitions: &[u16],
        leaving: bool,
    ) -> Result<()> {
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(group) else {
            return Ok(());
        };
        for partition in partitions {
            if group
                .leases
                .get(partition)
                .is_some_and(|(holder, _)| holder == member)
            {
                group.leases.remove(partition);
            }
        }
        if leaving {
            group.members.remove(member);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

// The guarantees of `SharedState` are tested by the conformance suite
// (`tests/local_bus.rs`); here, what only this implementation does.
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn worker_ids_are_handed_out_lowest_first() {
        let state = LocalState::new();
        let ttl = Duration::from_secs(60);
        assert_eq!(state.lease_worker_id("a", ttl).await.unwrap(), 0);
        assert_eq!(state.lease_worker_id("b", ttl).await.unwrap(), 1);
        let short = state
            .lease_worker_id("c", Duration::from_millis(20))
            .await
            .unwrap();
        assert_eq!(short, 2);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(state.lease_worker_id("d", ttl).await.unwrap(), 2, "expired");
    }

    /// The router skips the store's `client_id` look-up on the strength of
    /// this: it must be when this state began, never later.
    #[tokio::test]
    async fn keeps_keys_since_it_began() {
        let before = chat_protocol::id::now_ms();
        let state = LocalState::new();
        let after = chat_protocol::id::now_ms();
        let since = state.keeps_keys_since_ms().unwrap();
        assert!(
            (before..=after).contains(&since),
            "{before} ≤ {since} ≤ {after}"
        );
        let ttl = Duration::from_secs(60);
        assert_eq!(
            state
                .put_if_absent("k", Payload::from_static(b"v"), ttl)
                .await
                .unwrap(),
            None
        );
        let kept = state
            .put_if_absent("k", Payload::from_static(b"w"), ttl)
            .await
            .unwrap();
        assert_eq!(kept.as_deref(), Some(&b"v"[..]));
        assert_eq!(LocalState::beside_others().keeps_keys_since_ms(), None);
    }
}
