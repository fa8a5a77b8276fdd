//! Shared state on Redis: each operation is one command or one Lua script,
//! so it is atomic across every process, and times come from the Redis
//! server's clock (TIME), so that processes with skewed clocks agree.
//!
//! - rate limits: token buckets in a string per key, one or more lanes of
//!   it (`lua/bucket.lua`), refilled lazily by the script, expiring once
//!   every lane would be full again (same numbers as the in-process one);
//!   `admit` takes the tokens and claims of a whole batch of actions in one
//!   script (`lua/admit.lua`) on one server, and through the single-key
//!   calls on a cluster, whose keys of one batch live in many slots.
//! - idempotency keys: `SET key value NX PX ttl GET`, one command that
//!   either stores or answers the live value (Redis 7).
//! - presence: per user a sorted set connection → end of life, and per
//!   presence shard a sorted set of every connection by end of life for the
//!   sweep; see `lua/presence.lua` for the rules that make every online and
//!   offline transition answered exactly once.
//! - worker ids: `SET {workers}:N owner NX PX ttl`, the search for a free
//!   id done in one script (every id shares a hash tag), renewal only by
//!   the owner.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::{ClientLike, Expiration, KeysInterface, Options, SetOptions, Value};
use futures_util::future::try_join_all;

use super::scripts::{SCRIPTS, run};
use super::{Shared, error};
use crate::partitions::Leases;
use crate::state::MAX_WORKER_ID;
use crate::state::admit_in_turn;
use crate::{Admission, Admitted, Bucket, BusError, Payload, RateDecision, Result, SharedState};

/// Shared state across every process sharing the Redis.
pub struct RedisState {
    shared: Arc<Shared>,
    /// Where the next sweep starts, so that every presence shard is swept.
    next_sweep: AtomicUsize,
}

impl RedisState {
    pub(crate) fn new(shared: Arc<Shared>) -> RedisState {
        RedisState {
            shared,
            next_sweep: AtomicUsize::new(0),
        }
    }

    fn presence_shards(&self) -> u16 {
        self.shared.config.presence_shards.max(1)
    }

    /// The presence shard of a user: a stable hash (FNV-1a), the same in
    /// every process and every version.
    fn presence_shard(&self, user: &str) -> u16 {
        crate::partitions::partition_of(user, self.presence_shards())
    }

    /// The indexes of `users` by presence shard: a script's keys share one
    /// slot, so calls on many users take one script per shard.
    fn indexes_by_shard<'a>(
        &self,
        users: impl Iterator<Item = &'a str>,
    ) -> HashMap<u16, Vec<usize>> {
        let mut by_shard: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, user) in users.enumerate() {
            by_shard
                .entry(self.presence_shard(user))
                .or_default()
                .push(i);
        }
        by_shard
    }

    /// The user's set and their shard's set.
    fn presence_keys(&self, user: &str) -> Vec<fred::prelude::Key> {
        let shard = self.presence_shard(user);
        let keys = &self.shared.keys;
        vec![
            format!("{}{user}", keys.presence_users(shard)).into(),
            keys.presence_expiry(shard).into(),
        ]
    }
}

/// A bucket's arguments to the bucket scripts (`lua/bucket.lua`): its
/// lane, its rate and its burst. A lane is a name without whitespace, as
/// the value that keeps a key's lanes is split at whitespace.
fn bucket_args(bucket: &Bucket) -> Result<Vec<Value>> {
    if bucket.lane.is_empty() || bucket.lane.contains(char::is_whitespace) {
        return Err(BusError::Internal(format!(
            "bad bucket lane {:?}: a name without whitespace is needed",
            bucket.lane
        )));
    }
    let per_second = bucket.per_second.max(f64::MIN_POSITIVE);
    Ok(vec![
        bucket.lane.into(),
        // Exponent notation: short for any rate, and Lua reads it.
        format!("{per_second:e}").into(),
        i64::from(bucket.burst.max(1)).into(),
    ])
}

/// Most connections one `connections_alive` script extends: it unpacks
/// two values per connection into one ZADD, and Lua unpacks at most a few
/// thousand values at once.
const ALIVE_PER_SCRIPT: usize = 500;

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl SharedState for RedisState {
    async fn take_tokens(&self, bucket: &Bucket, count: u32) -> Result<RateDecision> {
        let mut args = bucket_args(bucket)?;
        args.push(i64::from(count.max(1)).into());
        let (allowed, retry): (i64, String) = run(
            &self.shared.pool,
            &SCRIPTS.take_token,
            vec![self.shared.keys.rate(&bucket.key).into()],
            args,
        )
        .await?;
        if allowed == 1 {
            return Ok(RateDecision::Allowed);
        }
        let seconds: f64 = retry
            .parse()
            .map_err(|_| BusError::Internal(format!("bad retry time from Redis: {retry:?}")))?;
        Ok(RateDecision::Limited {
            retry_after: Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX),
        })
    }

    async fn admit(&self, batch: &[Admission]) -> Result<Vec<Admitted>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if self.shared.clustered {
            // One script cannot span the slots of a batch's keys.
            return admit_in_turn(self, batch).await;
        }
        let keys = &self.shared.keys;
        let mut bucket_keys: Vec<fred::prelude::Key> = Vec::new();
        let mut claim_keys: Vec<fred::prelude::Key> = Vec::new();
        let mut args: Vec<Value> = vec![(batch.len() as i64).into()];
        for admission in batch {
            let buckets = admission.buckets.len() + admission.unless_repeat.len();
            args.push((buckets as i64).into());
            args.push((admission.buckets.len() as i64).into());
            for bucket in admission.buckets.iter().chain(&admission.unless_repeat) {
                bucket_keys.push(keys.rate(&bucket.key).into());
                args.extend(bucket_args(bucket)?);
            }
            // A claim that lives for no time is stored and gone at once:
            // nothing to claim (as put_if_absent answers).
            match admission.claim.as_ref().filter(|c| millis(c.ttl) > 0) {
                Some(claim) => {
                    claim_keys.push(keys.kv(&claim.key).into());
                    args.push(1.into());
                    args.push(Value::Bytes(claim.value.clone()));
                    args.push(millis(claim.ttl).into());
                }
                None => args.push(0.into()),
            }
        }
        bucket_keys.extend(claim_keys);
        let answer: Vec<Value> = run(&self.shared.pool, &SCRIPTS.admit, bucket_keys, args).await?;
        let unexpected = || BusError::Internal("unexpected answer from the admit script".into());
        if answer.len() != batch.len() * 3 {
            return Err(unexpected());
        }
        let mut answers = Vec::with_capacity(batch.len());
        let mut values = answer.into_iter();
        while let (Some(kind), Some(retry), Some(third)) =
            (values.next(), values.next(), values.next())
        {
            if kind.as_i64() == Some(1) {
                let existing = match third {
                    Value::Null | Value::Boolean(false) => None,
                    other => Some(other.convert::<Bytes>().map_err(|_| unexpected())?),
                };
                answers.push(Admitted::Admitted { existing });
            } else {
                let seconds: f64 = retry
                    .as_string()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(unexpected)?;
                let bucket = third.as_u64().ok_or_else(unexpected)? as usize;
                answers.push(Admitted::Limited {
                    bucket,
                    retry_after: Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX),
                });
            }
        }
        Ok(answers)
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Payload,
        ttl: Duration,
    ) -> Result<Option<Payload>> {
        // A value that lives for no time is stored and gone at once, like
        // in-process; Redis refuses a zero expiry.
        let ttl = millis(ttl);
        if ttl == 0 {
            return Ok(None);
        }
        // NX with GET (Redis 7): stores unless a live value exists, and
        // answers that value; one command, so atomic.
        let existing: Option<Bytes> = self
            .shared
            .pool
            .set(
                self.shared.keys.kv(key),
                value,
                Some(Expiration::PX(ttl)),
                Some(SetOptions::NX),
                true,
            )
            .await
            .map_err(error)?;
        Ok(existing)
    }

    async fn remove(&self, key: &str) -> Result<()> {
        let _removed: i64 = self
            .shared
            .pool
            .del(self.shared.keys.kv(key))
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn connection_opened(&self, user: &str, connection: &str, ttl: Duration) -> Result<bool> {
        let became_online: i64 = run(
            &self.shared.pool,
            &SCRIPTS.presence_opened,
            self.presence_keys(user),
            vec![user.into(), connection.into(), millis(ttl).into()],
        )
        .await?;
        Ok(became_online == 1)
    }

    async fn connections_alive(
        &self,
        connections: &[(String, String)],
        ttl: Duration,
    ) -> Result<Vec<usize>> {
        // One script per presence shard, in chunks that keep each
        // script's argument lists short.
        let by_shard = self.indexes_by_shard(connections.iter().map(|(user, _)| user.as_str()));
        let keys = &self.shared.keys;
        let scripts = by_shard.into_iter().flat_map(|(shard, indexes)| {
            let prefix = keys.presence_users(shard);
            let expiry = keys.presence_expiry(shard);
            indexes
                .chunks(ALIVE_PER_SCRIPT)
                .map(|chunk| {
                    let mut script_keys: Vec<fred::prelude::Key> = vec![expiry.clone().into()];
                    let mut args: Vec<Value> = vec![millis(ttl).into()];
                    for (user, connection) in chunk.iter().map(|&i| &connections[i]) {
                        script_keys.push(format!("{prefix}{user}").into());
                        args.push(user.as_str().into());
                        args.push(connection.as_str().into());
                    }
                    (chunk.to_vec(), script_keys, args)
                })
                .collect::<Vec<_>>()
        });
        let answers = try_join_all(scripts.map(|(chunk, script_keys, args)| async move {
            // Positions from 1 within the chunk.
            let not_live: Vec<i64> = run(
                &self.shared.pool,
                &SCRIPTS.presence_alive,
                script_keys,
                args,
            )
            .await?;
            let in_batch = not_live.into_iter().filter_map(move |position| {
                let position = usize::try_from(position).ok()?;
                chunk.get(position.checked_sub(1)?).copied()
            });
            Ok::<_, BusError>(in_batch.collect::<Vec<usize>>())
        }))
        .await?;
        let mut not_live: Vec<usize> = answers.into_iter().flatten().collect();
        not_live.sort_unstable();
        Ok(not_live)
    }

    async fn connection_closed(&self, user: &str, connection: &str) -> Result<bool> {
        let went_offline: i64 = run(
            &self.shared.pool,
            &SCRIPTS.presence_closed,
            self.presence_keys(user),
            vec![user.into(), connection.into()],
        )
        .await?;
        Ok(went_offline == 1)
    }

    async fn online(&self, users: &[String]) -> Result<Vec<bool>> {
        let by_shard = self.indexes_by_shard(users.iter().map(String::as_str));
        let keys = &self.shared.keys;
        let answers = try_join_all(by_shard.into_iter().map(|(shard, indexes)| async move {
            let prefix = keys.presence_users(shard);
            let user_keys = indexes
                .iter()
                .map(|&i| format!("{prefix}{}", users[i]).into())
                .collect();
            let online: Vec<i64> = run(
                &self.shared.pool,
                &SCRIPTS.presence_online,
                user_keys,
                Vec::new(),
            )
            .await?;
            Ok::<_, BusError>((indexes, online))
        }))
        .await?;
        let mut online = vec![false; users.len()];
        for (indexes, answer) in answers {
            for (i, live) in indexes.into_iter().zip(answer) {
                online[i] = live == 1;
            }
        }
        Ok(online)
    }

    async fn expired_connections(&self, max: usize) -> Result<Vec<String>> {
        let shards = self.presence_shards();
        let first = self.next_sweep.fetch_add(1, Ordering::Relaxed) % usize::from(shards);
        let keys = &self.shared.keys;
        let mut remaining = max;
        let mut offline = Vec::new();
        for i in 0..shards {
            if remaining == 0 {
                break;
            }
            let shard = ((first + usize::from(i)) % usize::from(shards)) as u16;
            let answer: Vec<Value> = run(
                &self.shared.pool,
                &SCRIPTS.presence_sweep,
                vec![keys.presence_expiry(shard).into()],
                vec![(remaining as i64).into(), keys.presence_users(shard).into()],
            )
            .await?;
            let mut answer = answer.into_iter();
            let removed = answer.next().and_then(|v| v.as_u64()).unwrap_or(0);
            remaining = remaining.saturating_sub(removed as usize);
            offline.extend(answer.filter_map(Value::into_string));
        }
        Ok(offline)
    }

    async fn lease_worker_id(&self, owner: &str, ttl: Duration) -> Result<u16> {
        let prefix = self.shared.keys.workers();
        let count = i64::from(MAX_WORKER_ID) + 1;
        // A random first try: leasers starting together rarely collide.
        let start = rand::random_range(0..count);
        let id: i64 = run(
            &self.shared.pool,
            &SCRIPTS.lease_worker,
            vec![format!("{prefix}0").into()],
            vec![
                prefix.into(),
                owner.into(),
                millis(ttl).max(1).into(),
                start.into(),
                count.into(),
            ],
        )
        .await?;
        u16::try_from(id).map_err(|_| BusError::Unavailable("every worker id is leased".into()))
    }

    async fn renew_worker_id(&self, id: u16, owner: &str, ttl: Duration) -> Result<bool> {
        let key = format!("{}{id}", self.shared.keys.workers());
        let renewed: i64 = run(
            &self.shared.pool,
            &SCRIPTS.renew_worker,
            vec![key.into()],
            vec![owner.into(), millis(ttl).max(1).into()],
        )
        .await?;
        Ok(renewed == 1)
    }

    async fn claim_partitions(
        &self,
        group: &str,
        member: &str,
        partitions: u16,
        ttl: Duration,
    ) -> Result<Leases> {
        let [members, leases] = self.shared.keys.partition_group(group);
        let answer: Vec<i64> = run(
            &self.shared.pool,
            &SCRIPTS.claim_partitions,
            vec![members.into(), leases.into()],
            vec![
                member.into(),
                i64::from(partitions).into(),
                millis(ttl).max(1).into(),
            ],
        )
        .await?;
        let mut answer = answer.into_iter();
        let share = answer.next().unwrap_or(0);
        let mut held: Vec<u16> = answer.filter_map(|p| u16::try_from(p).ok()).collect();
        held.sort_unstable();
        Ok(Leases {
            held,
            share: u16::try_from(share).unwrap_or(partitions),
        })
    }

    async fn release_partitions(
        &self,
        group: &str,
        member: &str,
        partitions: &[u16],
        leaving: bool,
    ) -> Result<()> {
        let [members, leases] = self.shared.keys.partition_group(group);
        let mut args: Vec<Value> = vec![member.into(), if leaving { "1" } else { "0" }.into()];
        args.extend(partitions.iter().map(|p| Value::from(i64::from(*p))));
        let _: i64 = run(
            &self.shared.pool,
            &SCRIPTS.release_partitions,
            vec![members.into(), leases.into()],
            args,
        )
        .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        // Fail at once while disconnected, rather than wait for a
        // reconnection: a readiness probe wants the state now.
        let options = Options {
            fail_fast: true,
            timeout: Some(self.shared.config.command_timeout),
            ..Options::default()
        };
        let _pong: Value = self
            .shared
            .pool
            .with_options(&options)
            .ping(None)
            .await
            .map_err(error)?;
        Ok(())
    }
}
