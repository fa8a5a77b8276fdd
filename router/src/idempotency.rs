//! `client_id` de-duplication.
//!
//! The store is the source of truth: a send whose `client_id` the same user
//! used within the window finds the original message there (this survives
//! restarts). What the store cannot do alone is stop two concurrent sends
//! with the same key from both missing it, so sends with the same
//! `(user, client_id)` are serialised by a per-key lock held until the first
//! one's message is durable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use chat_protocol::Id;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Key = (Id, String);

/// Per-`(user, client_id)` locks. Entries die with their last holder and
/// are swept out as the map grows, so memory follows the sends in flight.
#[derive(Default)]
pub struct ClientIdLocks {
    inner: Mutex<Locks>,
}

#[derive(Default)]
struct Locks {
    by_key: HashMap<Key, Weak<AsyncMutex<()>>>,
    sweep_at: usize,
}

/// Sweeping starts once this many keys are tracked.
const MIN_SWEEP: usize = 1024;

impl ClientIdLocks {
    /// Waits until no other send of `user` with `client_id` is in flight,
    /// and keeps others out until the guard is dropped.
    pub async fn lock(&self, user: Id, client_id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            locks.get_or_insert((user, client_id.to_owned()))
        };
        lock.lock_owned().await
    }

    /// How many keys are tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .len()
    }
}

impl Locks {
    fn get_or_insert(&mut self, key: Key) -> Arc<AsyncMutex<()>> {
        if let Some(lock) = self.by_key.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        if self.by_key.len() >= self.sweep_at.max(MIN_SWEEP) {
            self.by_key.retain(|_, lock| lock.strong_count() > 0);
            self.sweep_at = self.by_key.len() * 2;
        }
        let lock = Arc::new(AsyncMutex::new(()));
        self.by_key.insert(key, Arc::downgrade(&lock));
        lock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_key_is_serialised_other_keys_are_not() {
        let locks = Arc::new(ClientIdLocks::default());
        let held = locks.lock(Id(1), "k").await;
        let other_key = tokio::time::timeout(Duration::from_secs(1), locks.lock(Id(1), "j")).await;
        assert!(other_key.is_ok(), "a different key is not blocked");
        let other_user = tokio::time::timeout(Duration::from_secs(1), locks.lock(Id(2), "k")).await;
        assert!(
            other_user.is_ok(),
            "the same key of another user is not blocked"
        );
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock(Id(1), "k")).await;
        assert!(same.is_err(), "the same key waits");
        drop(held);
        let same = tokio::time::timeout(Duration::from_secs(1), locks.lock(Id(1), "k")).await;
        assert!(same.is_ok(), "and proceeds once the first is done");
    }

    #[tokio::test]
    async fn released_keys_are_swept() {
        let locks = ClientIdLocks::default();
        for i in 0..10 * MIN_SWEEP {
            drop(locks.lock(Id(1), &i.to_string()).await);
        }
        assert!(locks.tracked() <= MIN_SWEEP + 1, "{}", locks.tracked());
    }
}
