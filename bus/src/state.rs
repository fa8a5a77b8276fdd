//! State that must be the same for every process of a cluster.

use std::time::Duration;

use async_trait::async_trait;

use crate::{Payload, Result};

/// The outcome of a rate-limit check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Refused; a token will be available after this long.
    Limited {
        retry_after: Duration,
    },
}

/// Small, cluster-wide state: rate limits, idempotency keys and presence.
#[async_trait]
pub trait SharedState: Send + Sync + 'static {
    /// Takes one token from the bucket `key` (refilled at `per_second`, holding
    /// at most `burst`). Atomic across every process sharing this state.
    async fn take_token(&self, key: &str, per_second: f64, burst: u32) -> Result<RateDecision>;

    /// Stores `value` under `key` for `ttl` unless the key holds a live
    /// value; answers that value in that case. Atomic: of concurrent calls
    /// for one key, exactly one stores.
    async fn put_if_absent(
        &self,
        key: &str,
        value: Payload,
        ttl: Duration,
    ) -> Result<Option<Payload>>;

    /// Removes `key`.
    async fn remove(&self, key: &str) -> Result<()>;

    /// Records a live connection of `user`, alive for `ttl` unless refreshed.
    /// Answers `true` when this made the user online (no other live
    /// connection), so exactly one caller announces it.
    async fn connection_opened(&self, user: &str, connection: &str, ttl: Duration) -> Result<bool>;

    /// Extends the life of a live connection by `ttl`.
    async fn connection_alive(&self, user: &str, connection: &str, ttl: Duration) -> Result<()>;

    /// Forgets a connection of `user`. Answers `true` when this made the
    /// user offline (it was their last live connection), so exactly one
    /// caller announces it.
    async fn connection_closed(&self, user: &str, connection: &str) -> Result<bool>;

    /// Whether each of `users` has a live connection.
    async fn online(&self, users: &[String]) -> Result<Vec<bool>>;
}
