//! Work streams on Redis Streams with consumer groups.
//!
//! - append: one script checks the length and XADDs (field `p` holds the
//!   payload), so that a full stream pushes back instead of growing; the
//!   caller retries with back-off until `append_timeout`.
//! - read: XREADGROUP `>` for new entries, BLOCKing on a connection of its
//!   own (the exclusive pool) so that other commands are not held up. The
//!   group is created at first use with XGROUP CREATE … 0 MKSTREAM, so it
//!   starts at the oldest entry still in the stream.
//! - ack: one script XACKs, then trims (XTRIM MINID) below the oldest entry
//!   some group still needs: its oldest pending entry, or the first it has
//!   not been handed yet. Unacknowledged entries are never trimmed.
//! - claim_stale: one script runs XAUTOCLAIM and reads each claimed entry's
//!   delivery count from XPENDING (XAUTOCLAIM does not answer it).
//!
//! With `stream_shards` > 1 a stream is several keys (`chat:{inbound:0}`,
//! `chat:{inbound:1}`, …, each its own hash slot, so they spread over a
//! cluster's nodes). Appends go round-robin over the shards, so the order of
//! entries is kept within a shard only; entry ids are `shard/redis-id`.
//! XREADGROUP cannot span slots on a cluster, so a reader takes what the
//! shards hold one after the other, and when all are empty blocks on one
//! shard at a time for `shard_poll_interval`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::{ClientLike, FredResult, Options, StreamsInterface, Value};

use super::scripts::{SCRIPTS, run};
use super::{Shared, error, is_reply};
use crate::{BusError, Entry, EntryId, Payload, Result, WorkQueue};

/// The longest single XREADGROUP BLOCK; longer waits are several blocks,
/// so that a connection is never blocked for long.
const MAX_BLOCK: Duration = Duration::from_secs(5);

/// Work streams across every process sharing the Redis.
pub struct RedisQueue {
    shared: Arc<Shared>,
    /// Groups known to exist: (stream key, group).
    groups: Mutex<HashSet<(String, String)>>,
    /// Round-robin over shards for appends and reads.
    next_append: AtomicUsize,
    next_read: AtomicUsize,
}

impl RedisQueue {
    pub(crate) fn new(shared: Arc<Shared>) -> RedisQueue {
        RedisQueue {
            shared,
            groups: Mutex::default(),
            next_append: AtomicUsize::new(0),
            next_read: AtomicUsize::new(0),
        }
    }

    fn shards(&self) -> u16 {
        self.shared.config.stream_shards.max(1)
    }

    fn key(&self, stream: &str, shard: u16) -> String {
        self.shared.keys.stream(stream, shard, self.shards())
    }

    fn entry_id(&self, shard: u16, id: String) -> EntryId {
        if self.shards() <= 1 {
            EntryId(id)
        } else {
            EntryId(format!("{shard}/{id}"))
        }
    }

    /// The shard and Redis id of an entry id this queue handed out.
    fn parse_id<'a>(&self, id: &'a EntryId) -> Option<(u16, &'a str)> {
        if self.shards() <= 1 {
            return Some((0, &id.0));
        }
        let (shard, id) = id.0.split_once('/')?;
        let shard: u16 = shard.parse().ok()?;
        (shard < self.shards()).then_some((shard, id))
    }

    /// Shards in the order to visit them, starting from a rotating one so
    /// that no shard is always served last.
    fn shard_order(&self, counter: &AtomicUsize) -> impl Iterator<Item = u16> + use<> {
        let shards = self.shards();
        let first = (counter.fetch_add(1, Ordering::Relaxed) % usize::from(shards)) as u16;
        (0..shards).map(move |i| (first + i) % shards)
    }

    /// How many entries `stream` holds, acknowledged-but-untrimmed ones
    /// included (for tests and metrics).
    pub async fn len(&self, stream: &str) -> Result<u64> {
        let mut total = 0;
        for shard in 0..self.shards() {
            let len: u64 = self
                .shared
                .pool
                .xlen(self.key(stream, shard))
                .await
                .map_err(error)?;
            total += len;
        }
        Ok(total)
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        // The set holds no invariant that a panic could break half-way.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates `group` on `key` unless this process saw it exist already.
    async fn ensure_group(&self, key: &str, group: &str) -> Result<()> {
        let known = (key.to_owned(), group.to_owned());
        if self.groups().contains(&known) {
            return Ok(());
        }
        // "0": the group starts at the oldest entry still in the stream, so
        // entries appended before it existed are handed out too.
        let created: FredResult<Value> =
            self.shared.pool.xgroup_create(key, group, "0", true).await;
        match created {
            Ok(_) => {}
            Err(e) if is_reply(&e, "BUSYGROUP") => {}
            Err(e) => return Err(error(e)),
        }
        self.groups().insert(known);
        Ok(())
    }

    /// Forgets that a group exists (Redis answered NOGROUP: it lost its
    /// data, e.g. restarted without persistence).
    fn forget_group(&self, key: &str, group: &str) {
        self.groups().remove(&(key.to_owned(), group.to_owned()));
    }

    /// One XREADGROUP of new entries on one shard, blocking up to `block`
    /// (on a connection of the exclusive pool) or not at all.
    async fn read_shard(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Vec<(String, Payload)>> {
        for attempt in 0..2 {
            self.ensure_group(key, group).await?;
            let read = match block {
                Some(block) => {
                    let client = self.shared.blocking.acquire().await;
                    let options = Options {
                        timeout: Some(block + self.shared.config.command_timeout),
                        ..Options::default()
                    };
                    client
                        .with_options(&options)
                        .xreadgroup::<Value, _, _, _, _>(
                            group,
                            consumer,
                            Some(max as u64),
                            Some(block.as_millis().max(1) as u64),
                            false,
                            key,
                            ">",
                        )
                        .await
                }
                None => {
                    self.shared
                        .pool
                        .xreadgroup::<Value, _, _, _, _>(
                            group,
                            consumer,
                            Some(max as u64),
                            None,
                            false,
                            key,
                            ">",
                        )
                        .await
                }
            };
            match read {
                Ok(response) => return entries_of(response),
                Err(e) if attempt == 0 && is_reply(&e, "NOGROUP") => {
                    self.forget_group(key, group);
                }
                Err(e) => return Err(error(e)),
            }
        }
        Err(BusError::Internal(format!(
            "consumer group {group} of {key} keeps vanishing"
        )))
    }

    async fn read_sharded(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Entry>> {
        loop {
            // Take what is there, shard after shard.
            let mut entries = Vec::new();
            let order: Vec<u16> = self.shard_order(&self.next_read).collect();
            for &shard in &order {
                let want = max - entries.len();
                if want == 0 {
                    break;
                }
                let key = self.key(stream, shard);
                for (id, payload) in self.read_shard(&key, group, consumer, want, None).await? {
                    entries.push(new_entry(self.entry_id(shard, id), payload));
                }
            }
            let now = tokio::time::Instant::now();
            if !entries.is_empty() || now >= deadline {
                return Ok(entries);
            }
            // All empty: wait on one shard for a while, then look again.
            let block = (deadline - now).min(self.shared.config.shard_poll_interval);
            let shard = order[0];
            let key = self.key(stream, shard);
            let got = self
                .read_shard(&key, group, consumer, max, Some(block))
                .await?;
            if !got.is_empty() {
                return Ok(got
                    .into_iter()
                    .map(|(id, payload)| new_entry(self.entry_id(shard, id), payload))
                    .collect());
            }
        }
    }
}

fn new_entry(id: EntryId, payload: Payload) -> Entry {
    Entry {
        id,
        payload,
        deliveries: 1,
    }
}

/// The (id, payload) pairs of an XREADGROUP answer on one stream: nil
/// when nothing came, else per stream (an array of [key, entries] pairs in
/// RESP2, a map in RESP3) the entries as [id, [field, value, …]].
fn entries_of(response: Value) -> Result<Vec<(String, Payload)>> {
    let unexpected = || BusError::Internal("unexpected XREADGROUP answer".into());
    let streams: Vec<Value> = match response {
        Value::Null => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => Ok(pair.swap_remove(1)),
                _ => Err(unexpected()),
            })
            .collect::<Result<_>>()?,
        Value::Map(map) => map.inner().into_values().collect(),
        _ => return Err(unexpected()),
    };
    let mut entries = Vec::new();
    for entry in streams.into_iter().flat_map(Value::into_array) {
        let mut parts = entry.into_array().into_iter();
        let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
            return Err(unexpected());
        };
        let id = id.into_string().ok_or_else(unexpected)?;
        // An entry without our field was not appended by this bus; it is
        // handed out empty, so that its consumer can drop and acknowledge
        // it rather than have it claimed forever.
        let mut payload = Payload::new();
        let mut fields = fields.into_array().into_iter();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            if name.as_bytes() == Some(b"p") {
                payload = value.convert::<Bytes>().map_err(|_| unexpected())?;
            }
        }
        entries.push((id, payload));
    }
    Ok(entries)
}

#[async_trait]
impl WorkQueue for RedisQueue {
    async fn append(&self, stream: &str, payload: Payload) -> Result<EntryId> {
        let config = &self.shared.config;
        let shards = self.shards();
        let per_shard = config.stream_capacity.max(1).div_ceil(usize::from(shards));
        let deadline = tokio::time::Instant::now() + config.append_timeout;
        let mut delay = Duration::from_millis(10);
        loop {
            for shard in self.shard_order(&self.next_append) {
                let key = self.key(stream, shard);
                let id: Option<String> = run(
                    &self.shared.pool,
                    &SCRIPTS.append,
                    vec![key.into()],
                    vec![(per_shard as i64).into(), Value::Bytes(payload.clone())],
                )
                .await?;
                if let Some(id) = id {
                    return Ok(self.entry_id(shard, id));
                }
            }
            // Full: room comes as consumers acknowledge (ack trims).
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(BusError::Unavailable(format!("stream {stream} is full")));
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Entry>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + wait;
        if self.shards() > 1 {
            return self
                .read_sharded(stream, group, consumer, max, deadline)
                .await;
        }
        let key = self.key(stream, 0);
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            // BLOCK 0 would mean forever: under a millisecond, don't block.
            let block = (remaining >= Duration::from_millis(1)).then(|| remaining.min(MAX_BLOCK));
            let got = self.read_shard(&key, group, consumer, max, block).await?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline || block.is_none() {
                return Ok(got
                    .into_iter()
                    .map(|(id, payload)| new_entry(self.entry_id(0, id), payload))
                    .collect());
            }
        }
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        let mut by_shard: HashMap<u16, Vec<Value>> = HashMap::new();
        for id in ids {
            match self.parse_id(id) {
                Some((shard, id)) => by_shard.entry(shard).or_default().push(id.into()),
                None => tracing::warn!(?id, stream, "not an entry id of this bus; ignored"),
            }
        }
        let trim = if self.shared.config.exact_trim {
            "="
        } else {
            "~"
        };
        for (shard, ids) in by_shard {
            let mut args: Vec<Value> = vec![group.into(), trim.into()];
            args.extend(ids);
            let _acked: i64 = run(
                &self.shared.pool,
                &SCRIPTS.ack,
                vec![self.key(stream, shard).into()],
                args,
            )
            .await?;
        }
        Ok(())
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Entry>> {
        let mut claimed = Vec::new();
        for shard in self.shard_order(&self.next_read) {
            let want = max.saturating_sub(claimed.len());
            if want == 0 {
                break;
            }
            let answer: FredResult<Vec<Value>> = SCRIPTS
                .claim
                .evalsha_with_reload(
                    self.shared.pool.next_connected(),
                    vec![self.key(stream, shard)],
                    vec![
                        Value::from(group),
                        Value::from(consumer),
                        Value::from(min_idle.as_millis() as i64),
                        Value::from(want as i64),
                    ],
                )
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                // No group (or no stream) yet: nothing was ever handed out.
                Err(e) if is_reply(&e, "NOGROUP") => continue,
                Err(e) => return Err(error(e)),
            };
            let mut fields = answer.into_iter();
            while let (Some(id), Some(payload), Some(deliveries)) =
                (fields.next(), fields.next(), fields.next())
            {
                let (Some(id), Ok(payload)) = (id.into_string(), payload.convert::<Bytes>()) else {
                    return Err(BusError::Internal(
                        "unexpected answer from the claim script".into(),
                    ));
                };
                let deliveries = deliveries.as_u64().unwrap_or(2).min(u64::from(u32::MAX));
                claimed.push(Entry {
                    id: self.entry_id(shard, id),
                    payload,
                    deliveries: deliveries as u32,
                });
            }
        }
        Ok(claimed)
    }
}
