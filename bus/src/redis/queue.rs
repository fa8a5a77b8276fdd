//! Work streams on Redis Streams with consumer groups.
//!
//! - append: a plain XADD (field `p` holds the payload). The length is
//!   checked against `stream_capacity` only now and then (`LengthCheck`):
//!   by a script that checks the length and XADDs, at least once a second
//!   per stream and after every eighth of the capacity appended by this
//!   process, and on every append while the stream was last seen full (a
//!   stream found full is trimmed first, so acknowledged entries make room
//!   at once). So a
//!   full stream pushes back (the caller retries with back-off until
//!   `append_timeout`) at the cost of one command per append, not three;
//!   a stream may overshoot its capacity by an eighth per appending process.
//! - read: XREADGROUP `>` for new entries, BLOCKing on a connection of its
//!   own (the exclusive pool) so that other commands are not held up. The
//!   group is created at first use with XGROUP CREATE … 0 MKSTREAM, so it
//!   starts at the oldest entry still in the stream.
//! - ack: one XACK. Trimming is separate (`trim`, called by the consumers
//!   every few seconds, not per batch): one script trims (XTRIM MINID)
//!   below the oldest entry some group still needs: its oldest pending
//!   entry, or the first it has not been handed yet. Unacknowledged entries
//!   are never trimmed.
//! - claim_stale: one script runs XAUTOCLAIM and reads each claimed entry's
//!   delivery count from XPENDING (XAUTOCLAIM does not answer it).
//!
//! - read_many: on one server, one XREADGROUP over every stream asked for
//!   (a consumer holding several partitions blocks on all of them at once);
//!   on a cluster, where XREADGROUP cannot span slots, a look at each stream
//!   in turn, then a block on one of them for `shard_poll_interval`.
//!
//! Each stream is one key, `chat:{inbound.3}`: its own hash slot, so the
//! partitions of a stream spread over a cluster's nodes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::{ClientLike, FredResult, Options, StreamsInterface, Value};

use super::scripts::{SCRIPTS, run};
use super::{Shared, error, is_reply};
use crate::{Backlog, BusError, Entry, EntryId, Payload, Result, WorkQueue};

/// The longest single XREADGROUP BLOCK; longer waits are several blocks,
/// so that a connection is never blocked for long.
const MAX_BLOCK: Duration = Duration::from_secs(5);

/// Longest time between two length checks of a stream this process
/// appends to.
const LENGTH_CHECK_EVERY: Duration = Duration::from_secs(1);

/// When this process last checked a stream's length against the capacity,
/// and what it has appended since.
#[derive(Clone, Copy, Debug)]
struct LengthCheck {
    at: tokio::time::Instant,
    appended_since: usize,
    /// The stream was full at the last check.
    full: bool,
}

/// Work streams across every process sharing the Redis.
pub struct RedisQueue {
    shared: Arc<Shared>,
    /// Groups known to exist: (stream key, group).
    groups: Mutex<HashSet<(String, String)>>,
    /// Which stream a polling read (on a cluster) blocks on next.
    next_read: AtomicUsize,
    /// Length checks by stream key (see the module docs).
    checks: Mutex<HashMap<String, LengthCheck>>,
}

impl RedisQueue {
    pub(crate) fn new(shared: Arc<Shared>) -> RedisQueue {
        RedisQueue {
            shared,
            groups: Mutex::default(),
            next_read: AtomicUsize::new(0),
            checks: Mutex::default(),
        }
    }

    fn checks(&self) -> std::sync::MutexGuard<'_, HashMap<String, LengthCheck>> {
        // Plain records; a panic cannot leave one half-written.
        self.checks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the next append to `key` must check the length first.
    fn length_check_due(&self, key: &str) -> bool {
        let capacity = self.shared.config.stream_capacity.max(1);
        match self.checks().get(key) {
            None => true,
            Some(check) => {
                check.full
                    || check.at.elapsed() >= LENGTH_CHECK_EVERY
                    || check.appended_since >= (capacity / 8).max(1)
            }
        }
    }

    /// Records an append to `key`: `checked` if it went through the length
    /// check (answering whether the stream was full).
    fn record_append(&self, key: &str, checked: Option<bool>) {
        let mut checks = self.checks();
        match checked {
            Some(full) => {
                checks.insert(
                    key.to_owned(),
                    LengthCheck {
                        at: tokio::time::Instant::now(),
                        appended_since: usize::from(!full),
                        full,
                    },
                );
            }
            None => {
                if let Some(check) = checks.get_mut(key) {
                    check.appended_since += 1;
                }
            }
        }
    }

    /// One append that checks the length first (a script: XLEN, then XADD
    /// unless full); `None` when the stream is full.
    async fn append_checked(&self, key: &str, payload: &Payload) -> Result<Option<String>> {
        let config = &self.shared.config;
        let id: Option<String> = run(
            &self.shared.pool,
            &SCRIPTS.append,
            vec![key.to_owned().into()],
            vec![
                (config.stream_capacity.max(1) as i64).into(),
                Value::Bytes(payload.clone()),
                self.trim_mode().into(),
            ],
        )
        .await?;
        self.record_append(key, Some(id.is_none()));
        Ok(id)
    }

    /// XTRIM's mode: exact (`=`) or whole nodes only (`~`).
    fn trim_mode(&self) -> &'static str {
        if self.shared.config.exact_trim {
            "="
        } else {
            "~"
        }
    }

    /// One plain XADD.
    async fn append_unchecked(&self, key: &str, payload: &Payload) -> Result<String> {
        let id: String = self
            .shared
            .pool
            .xadd(
                key,
                false,
                None::<()>,
                "*",
                vec![("p", Value::Bytes(payload.clone()))],
            )
            .await
            .map_err(error)?;
        self.record_append(key, None);
        Ok(id)
    }

    /// Trims `stream` below the oldest entry one of its groups still needs
    /// (see the module docs); the consumers call this now and then.
    pub async fn trim_stream(&self, stream: &str) -> Result<()> {
        let _: i64 = run(
            &self.shared.pool,
            &SCRIPTS.trim,
            vec![self.key(stream).into()],
            vec![self.trim_mode().into()],
        )
        .await?;
        Ok(())
    }

    fn key(&self, stream: &str) -> String {
        self.shared.keys.stream(stream)
    }

    /// How many entries `stream` holds, acknowledged-but-untrimmed ones
    /// included (for tests and metrics).
    pub async fn len(&self, stream: &str) -> Result<u64> {
        self.shared.pool.xlen(self.key(stream)).await.map_err(error)
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

    /// One XREADGROUP of new entries on `keys` (all in one slot on a
    /// cluster), blocking up to `block` (on a connection of the exclusive
    /// pool) or not at all. Answers (index in `keys`, id, payload).
    async fn read_keys(
        &self,
        keys: &[String],
        group: &str,
        consumer: &str,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Vec<(usize, String, Payload)>> {
        let ids = vec![">"; keys.len()];
        for attempt in 0..2 {
            for key in keys {
                self.ensure_group(key, group).await?;
            }
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
                            keys.to_vec(),
                            ids.clone(),
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
                            keys.to_vec(),
                            ids.clone(),
                        )
                        .await
                }
            };
            match read {
                Ok(response) => {
                    let mut entries = Vec::new();
                    for (key, got) in entries_by_stream(response)? {
                        let Some(index) = keys.iter().position(|k| *k == key) else {
                            return Err(BusError::Internal(format!(
                                "XREADGROUP answered for {key}, not asked for"
                            )));
                        };
                        entries.extend(got.into_iter().map(|(id, p)| (index, id, p)));
                    }
                    return Ok(entries);
                }
                Err(e) if attempt == 0 && is_reply(&e, "NOGROUP") => {
                    for key in keys {
                        self.forget_group(key, group);
                    }
                }
                Err(e) => return Err(error(e)),
            }
        }
        Err(BusError::Internal(format!(
            "consumer group {group} of {keys:?} keeps vanishing"
        )))
    }

    /// On a cluster: each stream in turn without waiting, then a block on
    /// one of them (rotating) for a while, until something comes or the
    /// deadline passes.
    async fn read_polling(
        &self,
        keys: &[String],
        group: &str,
        consumer: &str,
        max: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<(usize, String, Payload)>> {
        loop {
            let mut entries = Vec::new();
            for (index, key) in keys.iter().enumerate() {
                let got = self
                    .read_keys(std::slice::from_ref(key), group, consumer, max, None)
                    .await?;
                entries.extend(got.into_iter().map(|(_, id, p)| (index, id, p)));
            }
            let now = tokio::time::Instant::now();
            if !entries.is_empty() || now >= deadline {
                return Ok(entries);
            }
            let block = (deadline - now).min(self.shared.config.shard_poll_interval);
            let index = self.next_read.fetch_add(1, Ordering::Relaxed) % keys.len();
            let got = self
                .read_keys(
                    std::slice::from_ref(&keys[index]),
                    group,
                    consumer,
                    max,
                    Some(block),
                )
                .await?;
            if !got.is_empty() {
                return Ok(got.into_iter().map(|(_, id, p)| (index, id, p)).collect());
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

/// An entry as Redis answers it: its id and payload.
type RawEntry = (String, Payload);

/// The entries of an XREADGROUP answer, by stream key: nil when nothing
/// came, else per stream (an array of [key, entries] pairs in RESP2, a map
/// in RESP3) the entries as [id, [field, value, …]].
fn entries_by_stream(response: Value) -> Result<Vec<(String, Vec<RawEntry>)>> {
    let unexpected = || BusError::Internal("unexpected XREADGROUP answer".into());
    let streams: Vec<(Value, Value)> = match response {
        Value::Null => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let entries = pair.swap_remove(1);
                    Ok((pair.swap_remove(0), entries))
                }
                _ => Err(unexpected()),
            })
            .collect::<Result<_>>()?,
        Value::Map(map) => map
            .inner()
            .into_iter()
            .map(|(key, entries)| (Value::from(key), entries))
            .collect(),
        _ => return Err(unexpected()),
    };
    let mut by_stream = Vec::new();
    for (key, entries) in streams {
        let key = key.into_string().ok_or_else(unexpected)?;
        let mut got = Vec::new();
        for entry in entries.into_array() {
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
            got.push((id, payload));
        }
        by_stream.push((key, got));
    }
    Ok(by_stream)
}

#[async_trait]
impl WorkQueue for RedisQueue {
    async fn append(&self, stream: &str, payload: Payload) -> Result<EntryId> {
        let config = &self.shared.config;
        let deadline = tokio::time::Instant::now() + config.append_timeout;
        let key = self.key(stream);
        if !self.length_check_due(&key) {
            return self.append_unchecked(&key, &payload).await.map(EntryId);
        }
        let mut delay = Duration::from_millis(10);
        loop {
            if let Some(id) = self.append_checked(&key, &payload).await? {
                return Ok(EntryId(id));
            }
            // Full: room comes as consumers acknowledge and trim.
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(BusError::Unavailable(format!("stream {stream} is full")));
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    async fn read_many(
        &self,
        streams: &[String],
        group: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<(usize, Entry)>> {
        if max == 0 || streams.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + wait;
        let keys: Vec<String> = streams.iter().map(|s| self.key(s)).collect();
        let got = if self.shared.clustered && keys.len() > 1 {
            self.read_polling(&keys, group, consumer, max, deadline)
                .await?
        } else {
            loop {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                // BLOCK 0 would mean forever: under a millisecond, don't block.
                let block =
                    (remaining >= Duration::from_millis(1)).then(|| remaining.min(MAX_BLOCK));
                let got = self.read_keys(&keys, group, consumer, max, block).await?;
                if !got.is_empty() || tokio::time::Instant::now() >= deadline || block.is_none() {
                    break got;
                }
            }
        };
        Ok(got
            .into_iter()
            .map(|(index, id, payload)| (index, new_entry(EntryId(id), payload)))
            .collect())
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = ids.iter().map(|id| id.0.as_str()).collect();
        let _acked: i64 = self
            .shared
            .pool
            .xack(self.key(stream), group, ids)
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn trim(&self, stream: &str, _group: &str) -> Result<()> {
        self.trim_stream(stream).await
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Entry>> {
        let answer: FredResult<Vec<Value>> = SCRIPTS
            .claim
            .evalsha_with_reload(
                self.shared.pool.next_connected(),
                vec![self.key(stream)],
                vec![
                    Value::from(group),
                    Value::from(consumer),
                    Value::from(min_idle.as_millis() as i64),
                    Value::from(max as i64),
                ],
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            // No group (or no stream) yet: nothing was ever handed out.
            Err(e) if is_reply(&e, "NOGROUP") => return Ok(Vec::new()),
            Err(e) => return Err(error(e)),
        };
        let mut claimed = Vec::new();
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
                id: EntryId(id),
                payload,
                deliveries: deliveries as u32,
            });
        }
        Ok(claimed)
    }

    async fn backlog(&self, stream: &str, group: &str) -> Result<Backlog> {
        let (entries, oldest): (u64, String) = run(
            &self.shared.pool,
            &SCRIPTS.backlog,
            vec![self.key(stream).into()],
            vec![group.into()],
        )
        .await?;
        // An entry id is `<milliseconds>-<sequence>` of the Redis clock.
        let appended_ms = oldest
            .split_once('-')
            .and_then(|(ms, _)| ms.parse::<u64>().ok());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok(Backlog {
            entries,
            oldest_age: appended_ms.map(|ms| Duration::from_millis(now_ms.saturating_sub(ms))),
        })
    }
}
