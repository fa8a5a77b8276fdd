//! State that must be the same for every process of a cluster.

use std::time::Duration;

use async_trait::async_trait;

use crate::partitions::Leases;
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

/// A token bucket to take tokens from (see [`SharedState::take_tokens`]).
///
/// One key may hold several independent buckets, its lanes: a backend
/// keeps a key's lanes together, so that taking tokens from several lanes
/// of one key at once (a user's action budget and send rate, for every
/// `send`) is one write (Redis: one SET, not one per bucket).
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub key: String,
    /// Which of the key's buckets: a short name without whitespace
    /// ([`Bucket::ONLY`] for a key that holds one bucket).
    pub lane: &'static str,
    /// Tokens added per second.
    pub per_second: f64,
    /// The most tokens the bucket holds (at least 1).
    pub burst: u32,
}

impl Bucket {
    /// The lane of a key that holds a single bucket.
    pub const ONLY: &'static str = "-";

    /// The only bucket under `key`.
    pub fn new(key: impl Into<String>, per_second: f64, burst: u32) -> Bucket {
        Bucket::lane(key, Bucket::ONLY, per_second, burst)
    }

    /// The bucket `lane` of those under `key`.
    pub fn lane(key: impl Into<String>, lane: &'static str, per_second: f64, burst: u32) -> Bucket {
        Bucket {
            key: key.into(),
            lane,
            per_second,
            burst,
        }
    }
}

/// An idempotency key to claim (see [`SharedState::put_if_absent`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub key: String,
    pub value: Payload,
    pub ttl: Duration,
}

/// The checks of one action in [`SharedState::admit`], in this order:
/// tokens from each of its `buckets`; its claim; then, unless the claim
/// found its key taken, tokens from each of its `unless_repeat` buckets.
/// An action whose key is taken repeats an earlier one (a `send` retried
/// with its `client_id`), which paid those already: it is answered with the
/// earlier claim's value, not refused by a limit on new work.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Admission {
    /// Charged to every action, a repeat too (a user's action budget).
    pub buckets: Vec<Bucket>,
    pub claim: Option<Claim>,
    /// Charged only to an action that claims its key, or has none (a
    /// user's send rate: a repeat creates nothing).
    pub unless_repeat: Vec<Bucket>,
}

/// The outcome of one [`Admission`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// Bucket number `bucket` refused, counting the `buckets` first and the
    /// `unless_repeat` ones after them (the tokens of the buckets before it
    /// stay taken, as separate calls would leave them); the action claimed
    /// nothing (a claim made for it is given back).
    Limited {
        bucket: usize,
        retry_after: Duration,
    },
    /// Every bucket asked gave a token; the claim (if any) answered as
    /// [`SharedState::put_if_absent`] does: `Some` live value when the key
    /// was taken already (then no `unless_repeat` bucket was charged),
    /// `None` when this claimed it.
    Admitted { existing: Option<Payload> },
}

/// Small, cluster-wide state: rate limits, idempotency keys and presence.
#[async_trait]
pub trait SharedState: Send + Sync + 'static {
    /// Takes one token from `bucket` (refilled at its `per_second`, holding
    /// at most its `burst`). Atomic across every process sharing this
    /// state; the other lanes of its key are left as they are.
    async fn take_token(&self, bucket: &Bucket) -> Result<RateDecision> {
        self.take_tokens(bucket, 1).await
    }

    /// Takes `count` tokens from `bucket` at once, in one round trip: all
    /// of them, or none when fewer are there (then `Limited` with the time
    /// until `count` are). A `count` over the burst is never allowed. A
    /// `count` of 0 is taken as 1. Atomic across every process sharing this
    /// state, like [`take_token`](Self::take_token), which is this with a
    /// count of one.
    async fn take_tokens(&self, bucket: &Bucket, count: u32) -> Result<RateDecision>;

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

    /// Since when (Unix ms) this state has kept every key of everyone who
    /// acts on the same store: a key put with
    /// [`put_if_absent`](Self::put_if_absent) at or after that time stays
    /// until its `ttl` runs out or it is [removed](Self::remove), so a key
    /// found absent was not put in that span. `None` when it cannot vouch
    /// for that (Redis may lose recent writes in a restart or a failover;
    /// an in-process state beside other processes on one store sees only
    /// its own keys); callers that must not forget a key then look for it
    /// elsewhere too (the store, for `client_id`s).
    fn keeps_keys_since_ms(&self) -> Option<u64> {
        None
    }

    /// The rate limits and idempotency claims of a batch of actions, in
    /// order, as if each were [`take_token`](Self::take_token) on its
    /// `buckets` in turn (stopping at the first refusal),
    /// [`put_if_absent`](Self::put_if_absent) on its claim, then, unless
    /// that found the key taken, `take_token` on its `unless_repeat`
    /// buckets (a refusal there [removes](Self::remove) the claim just
    /// made), one after the other; an action later in the batch sees the
    /// effects of the earlier ones. A backend may do the whole batch at
    /// once (Redis: one script), which is why routers call this once per
    /// batch, writing each key of its buckets once, whatever lanes of it
    /// the batch takes from. Atomic per bucket, like the single calls, and
    /// per action on one server (Redis: nobody sees a claim that a refusal
    /// gives back); the batch as a whole need not be.
    async fn admit(&self, batch: &[Admission]) -> Result<Vec<Admitted>> {
        admit_in_turn(self, batch).await
    }

    /// Records a live connection of `user`, alive for `ttl` unless refreshed.
    /// Answers `true` when this made the user online (no other live
    /// connection), so exactly one caller announces it.
    async fn connection_opened(&self, user: &str, connection: &str, ttl: Duration) -> Result<bool>;

    /// Extends by `ttl` the life of each live connection of `connections`
    /// (`(user, connection)` pairs): a gateway vouches for all of its
    /// connections in one call, which a backend may do at once (Redis: one
    /// script per presence shard, whatever the number of connections), so
    /// that keeping connections alive costs round trips per gateway, not per
    /// connection. A connection whose life already ran out is not revived
    /// (its user may have been announced offline): it stays expired, and
    /// the caller opens it again instead. Answers the positions in
    /// `connections` of those not extended (expired, or never opened: an
    /// opening lost on its way), in order. Atomic per connection; on an
    /// error, some of them may have been extended and others not.
    async fn connections_alive(
        &self,
        connections: &[(String, String)],
        ttl: Duration,
    ) -> Result<Vec<usize>>;

    /// Forgets a connection of `user`. Answers `true` when this made the
    /// user offline (it was their last live connection), so exactly one
    /// caller announces it. Closing an expired connection that
    /// [`expired_connections`](Self::expired_connections) has not reported
    /// yet also answers `true` when the user has no live connection left:
    /// that offline transition is then announced here, and never by a sweep.
    async fn connection_closed(&self, user: &str, connection: &str) -> Result<bool>;

    /// Whether each of `users` has a live connection.
    async fn online(&self, users: &[String]) -> Result<Vec<bool>>;

    /// Forgets up to `max` connections whose life (the `ttl` of
    /// [`connection_opened`](Self::connection_opened) or the last
    /// [`connections_alive`](Self::connections_alive)) has run out, as when
    /// the process holding them died, and answers the users this made
    /// offline. Each such user is answered once, by one caller, however many
    /// callers sweep concurrently, and never when the user still has a live
    /// connection or when [`connection_closed`](Self::connection_closed)
    /// already answered `true` for the same transition. Call it
    /// periodically: each call does bounded work, and a backlog is drained
    /// by the calls that follow (an answer with fewer users than `max` does
    /// not mean that nothing more has expired).
    async fn expired_connections(&self, max: usize) -> Result<Vec<String>>;

    /// Leases a worker id in `0..=1023` that no other live lease holds, to
    /// `owner`, for `ttl`. Fails with `Unavailable` when every id is taken.
    /// Keep it with [`renew_worker_id`](Self::renew_worker_id) well within
    /// `ttl`; once a lease runs out, another owner may get the id.
    async fn lease_worker_id(&self, owner: &str, ttl: Duration) -> Result<u16>;

    /// Extends the lease of `id` by `ttl` if `owner` still holds it; answers
    /// `false` (and changes nothing) when the lease ran out or belongs to
    /// someone else, in which case the owner must stop using the id.
    async fn renew_worker_id(&self, id: u16, owner: &str, ttl: Duration) -> Result<bool>;

    /// One renewal of `member`'s place in the consumer group `group`,
    /// whose work is split in `partitions` partitions (see
    /// [`partitions`](crate::partitions)). Atomically: records `member` as
    /// live for `ttl`, forgets members whose time ran out, extends by `ttl`
    /// the lease of every partition `member` holds, and leases it free
    /// partitions (never one another live member holds) until it holds its
    /// fair share. Answers what it holds and its share; a partition it held
    /// before and does not hold now was lost (its lease ran out) and must
    /// not be worked on any more. Call it every third of `ttl` or more often.
    async fn claim_partitions(
        &self,
        group: &str,
        member: &str,
        partitions: u16,
        ttl: Duration,
    ) -> Result<Leases>;

    /// Gives back those of `partitions` that `member` holds, once their
    /// work is acknowledged, so another member may take them at once; with
    /// `leaving`, also forgets `member` (it stops, and the others' shares
    /// grow at their next claim).
    async fn release_partitions(
        &self,
        group: &str,
        member: &str,
        partitions: &[u16],
        leaving: bool,
    ) -> Result<()>;

    /// Answers `Ok` when the backend is reachable and answering now
    /// (readiness checks).
    async fn ping(&self) -> Result<()>;
}

/// [`SharedState::admit`] through the single-key calls, one action after
/// the other: the default, and what a backend falls back to when it cannot
/// take a batch at once.
pub async fn admit_in_turn<S: SharedState + ?Sized>(
    state: &S,
    batch: &[Admission],
) -> Result<Vec<Admitted>> {
    let mut answers = Vec::with_capacity(batch.len());
    for admission in batch {
        answers.push(admit_one(state, admission).await?);
    }
    Ok(answers)
}

/// One [`Admission`] through the single-key calls.
async fn admit_one<S: SharedState + ?Sized>(state: &S, admission: &Admission) -> Result<Admitted> {
    if let Some(limited) = take_each(state, &admission.buckets, 0).await? {
        return Ok(limited);
    }
    let existing = match &admission.claim {
        Some(claim) => {
            state
                .put_if_absent(&claim.key, claim.value.clone(), claim.ttl)
                .await?
        }
        None => None,
    };
    if existing.is_some() {
        return Ok(Admitted::Admitted { existing });
    }
    let first = admission.buckets.len();
    if let Some(limited) = take_each(state, &admission.unless_repeat, first).await? {
        if let Some(claim) = &admission.claim {
            state.remove(&claim.key).await?;
        }
        return Ok(limited);
    }
    Ok(Admitted::Admitted { existing: None })
}

/// A token from each of `buckets` in turn, up to the first refusal, which
/// is answered as the refusal of bucket number `first` + its index.
async fn take_each<S: SharedState + ?Sized>(
    state: &S,
    buckets: &[Bucket],
    first: usize,
) -> Result<Option<Admitted>> {
    for (index, bucket) in buckets.iter().enumerate() {
        if let RateDecision::Limited { retry_after } = state.take_token(bucket).await? {
            return Ok(Some(Admitted::Limited {
                bucket: first + index,
                retry_after,
            }));
        }
    }
    Ok(None)
}

/// The largest worker id [`SharedState::lease_worker_id`] hands out
/// (Snowflake ids have 10 bits for it).
pub const MAX_WORKER_ID: u16 = 1023;
