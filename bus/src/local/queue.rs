//! In-process work streams with consumer groups, pending entries and
//! claiming, mirroring Redis Streams so that the roles behave the same in
//! both modes.
//!
//! An entry is dropped once every group has acknowledged it. A stream holds
//! at most `capacity` entries; `append` waits for room (back-pressure on
//! the callers) up to `append_timeout`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::{Backlog, BusError, Entry, EntryId, Payload, Result, WorkQueue};

/// Work streams within one process.
#[derive(Clone)]
pub struct LocalQueue {
    inner: Arc<Inner>,
}

struct Inner {
    streams: Mutex<HashMap<String, Stream>>,
    /// Per consumer group, woken when a stream it reads gets an entry: an
    /// append wakes the readers of that stream's groups only, not every
    /// consumer of the process (the router's appends to `persist` would
    /// otherwise wake the routers too, for nothing).
    appended: Mutex<HashMap<String, Arc<Notify>>>,
    /// Woken on every trim (appenders wait for room).
    trimmed: Notify,
    capacity: usize,
    append_timeout: Duration,
}

#[derive(Default)]
struct Stream {
    entries: BTreeMap<u64, Payload>,
    /// When each entry still held was appended (for [`Backlog`] ages).
    appended: BTreeMap<u64, Instant>,
    next_id: u64,
    groups: HashMap<String, Group>,
}

#[derive(Default)]
struct Group {
    /// The highest id handed out to this group.
    last_delivered: u64,
    pending: BTreeMap<u64, Pending>,
}

struct Pending {
    consumer: String,
    since: Instant,
    deliveries: u32,
}

impl LocalQueue {
    /// Streams of at most `capacity` entries each; appends wait up to
    /// `append_timeout` for room.
    pub fn new(capacity: usize, append_timeout: Duration) -> LocalQueue {
        LocalQueue {
            inner: Arc::new(Inner {
                streams: Mutex::default(),
                appended: Mutex::default(),
                trimmed: Notify::new(),
                capacity: capacity.max(1),
                append_timeout,
            }),
        }
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, Stream>> {
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The signal of `group`'s readers.
    fn appended(&self, group: &str) -> Arc<Notify> {
        let mut signals = self
            .inner
            .appended
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        get_or_insert_with(&mut signals, group, Default::default).clone()
    }

    /// Wakes the readers of every group of `stream`. Called with the
    /// streams locked, so a reader that found nothing under that lock is
    /// already waiting (its `notified()` was created before it looked).
    fn wake_readers(&self, stream: &Stream) {
        let signals = self
            .inner
            .appended
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for group in stream.groups.keys() {
            if let Some(signal) = signals.get(group) {
                signal.notify_waiters();
            }
        }
    }

    /// How many entries `stream` holds (for tests and metrics).
    pub fn len(&self, stream: &str) -> usize {
        self.streams().get(stream).map_or(0, |s| s.entries.len())
    }
}

impl Stream {
    /// Drops the entries every group is done with.
    fn trim(&mut self) -> bool {
        let done_below = self
            .groups
            .values()
            .map(|g| {
                g.pending
                    .keys()
                    .next()
                    .copied()
                    .unwrap_or(g.last_delivered + 1)
            })
            .min()
            .unwrap_or(0);
        let before = self.entries.len();
        self.entries = self.entries.split_off(&done_below);
        self.appended = self.appended.split_off(&done_below);
        before != self.entries.len()
    }

    /// Hands up to `max` entries `group` has not been handed yet to
    /// `consumer`, pending with it from now on.
    fn take_fresh(&mut self, group: &str, consumer: &str, max: usize) -> Vec<Entry> {
        let from = self.group(group).last_delivered + 1;
        let fresh: Vec<(u64, Payload)> = self
            .entries
            .range(from..)
            .take(max)
            .map(|(id, p)| (*id, p.clone()))
            .collect();
        let g = self.group(group);
        let now = Instant::now();
        for (id, _) in &fresh {
            g.pending.insert(
                *id,
                Pending {
                    consumer: consumer.to_owned(),
                    since: now,
                    deliveries: 1,
                },
            );
        }
        g.last_delivered = fresh.last().map_or(g.last_delivered, |(id, _)| *id);
        fresh
            .into_iter()
            .map(|(id, payload)| Entry {
                id: entry_id(id),
                payload,
                deliveries: 1,
            })
            .collect()
    }

    fn group(&mut self, name: &str) -> &mut Group {
        let (entries, next_id) = (&self.entries, self.next_id);
        get_or_insert_with(&mut self.groups, name, || {
            let oldest = entries.keys().next().copied().unwrap_or(next_id + 1);
            Group {
                last_delivered: oldest.saturating_sub(1),
                pending: BTreeMap::new(),
            }
        })
    }
}

/// `map[key]`, made by `make` when absent. Unlike `entry`, the key is
/// copied only when it is inserted: this runs on every append and read.
fn get_or_insert_with<'a, V>(
    map: &'a mut HashMap<String, V>,
    key: &str,
    make: impl FnOnce() -> V,
) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), make());
    }
    map.get_mut(key)
        .expect("present: inserted above when absent")
}

fn entry_id(id: u64) -> EntryId {
    EntryId(id.to_string())
}

fn parse_id(id: &EntryId) -> Option<u64> {
    id.0.parse().ok()
}

#[async_trait]
impl WorkQueue for LocalQueue {
    async fn append(&self, stream: &str, payload: Payload) -> Result<EntryId> {
        let deadline = tokio::time::Instant::now() + self.inner.append_timeout;
        loop {
            let room = self.inner.trimmed.notified();
            {
                let mut streams = self.streams();
                let s = get_or_insert_with(&mut streams, stream, Stream::default);
                if s.entries.len() < self.inner.capacity {
                    s.next_id += 1;
                    let id = s.next_id;
                    s.entries.insert(id, payload);
                    s.appended.insert(id, Instant::now());
                    self.wake_readers(s);
                    return Ok(entry_id(id));
                }
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(BusError::Unavailable(format!("stream {stream} is full")));
            }
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
        let deadline = tokio::time::Instant::now() + wait;
        let appended = self.appended(group);
        loop {
            // Created before looking, so an append made after the look
            // wakes it (`notify_waiters` reaches every `Notified` created).
            let more = appended.notified();
            {
                let mut all = self.streams();
                let mut read = Vec::new();
                for (index, stream) in streams.iter().enumerate() {
                    let s = get_or_insert_with(&mut all, stream, Stream::default);
                    read.extend(
                        s.take_fresh(group, consumer, max)
                            .into_iter()
                            .map(|entry| (index, entry)),
                    );
                }
                if !read.is_empty() {
                    return Ok(read);
                }
            }
            if tokio::time::timeout_at(deadline, more).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        let trimmed = {
            let mut streams = self.streams();
            let Some(s) = streams.get_mut(stream) else {
                return Ok(());
            };
            let g = s.group(group);
            for id in ids.iter().filter_map(parse_id) {
                g.pending.remove(&id);
            }
            s.trim()
        };
        if trimmed {
            self.inner.trimmed.notify_waiters();
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
        let mut streams = self.streams();
        let Some(s) = streams.get_mut(stream) else {
            return Ok(Vec::new());
        };
        let Stream {
            entries, groups, ..
        } = s;
        let Some(g) = groups.get_mut(group) else {
            return Ok(Vec::new());
        };
        let now = Instant::now();
        let mut claimed = Vec::new();
        for (id, pending) in g.pending.iter_mut() {
            if claimed.len() == max {
                break;
            }
            if now.duration_since(pending.since) < min_idle {
                continue;
            }
            let Some(payload) = entries.get(id) else {
                continue;
            };
            pending.consumer = consumer.to_owned();
            pending.since = now;
            pending.deliveries += 1;
            claimed.push(Entry {
                id: entry_id(*id),
                payload: payload.clone(),
                deliveries: pending.deliveries,
            });
        }
        Ok(claimed)
    }

    async fn backlog(&self, stream: &str, group: &str) -> Result<Backlog> {
        let streams = self.streams();
        let Some(s) = streams.get(stream) else {
            return Ok(Backlog::default());
        };
        // Without the group yet, everything held waits for it.
        let (pending, undelivered_from) = match s.groups.get(group) {
            Some(g) => (g.pending.keys().copied().collect(), g.last_delivered + 1),
            None => (Vec::new(), 0),
        };
        let undelivered = s.entries.range(undelivered_from..).count();
        let oldest = pending.first().copied().or_else(|| {
            s.entries
                .range(undelivered_from..)
                .next()
                .map(|(id, _)| *id)
        });
        Ok(Backlog {
            entries: (pending.len() + undelivered) as u64,
            oldest_age: oldest
                .and_then(|id| s.appended.get(&id))
                .map(|at| at.elapsed()),
        })
    }
}
