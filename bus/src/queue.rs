//! Durable work streams with consumer groups.

use std::time::Duration;

use async_trait::async_trait;

use crate::{Payload, Result};

/// The id of an entry in a stream; increasing in append order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(pub String);

/// An entry handed to a consumer.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: EntryId,
    pub payload: Payload,
    /// How many times this entry has been handed out, this time included;
    /// more than 1 means an earlier consumer did not acknowledge it.
    pub deliveries: u32,
}

/// What a consumer group has yet to finish on a stream (for the lag
/// metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Entries not acknowledged by the group: pending with a consumer or
    /// not handed out yet.
    pub entries: u64,
    /// How long ago the oldest of them was appended; `None` when there is
    /// none.
    pub oldest_age: Option<Duration>,
}

/// Work that must not be lost: each entry of a stream is handed to one
/// consumer of each group, stays pending until acknowledged, and is handed
/// out again (by [`claim_stale`](WorkQueue::claim_stale)) if its consumer
/// stops without acknowledging it. Delivery is therefore at least once;
/// consumers make their effects idempotent.
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Appends an entry to `stream`. Once this returns `Ok`, the entry will
    /// be handed to a consumer of every group of the stream, as durable as
    /// the backend (in-process: until the process dies; Redis: per its AOF
    /// policy). Streams are bounded: when full, this waits for room and
    /// fails with `Unavailable` if none frees up in time.
    async fn append(&self, stream: &str, payload: Payload) -> Result<EntryId>;

    /// Hands up to `max` new entries of `stream` to `consumer` of `group`,
    /// in append order, waiting up to `wait` for at least one. Each entry
    /// goes to exactly one consumer of the group and stays pending with it
    /// until acknowledged. The group is created on first use and starts at
    /// the oldest entry still in the stream.
    async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Entry>> {
        let read = self
            .read_many(&[stream.to_owned()], group, consumer, max, wait)
            .await?;
        Ok(read.into_iter().map(|(_, entry)| entry).collect())
    }

    /// [`read`](Self::read) over several streams at once, for a consumer
    /// holding several partitions: hands up to `max` new entries of each of
    /// `streams`, waiting up to `wait` for at least one in any of them.
    /// Answers each entry with the index of its stream in `streams`; the
    /// entries of one stream come in append order.
    async fn read_many(
        &self,
        streams: &[String],
        group: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<(usize, Entry)>>;

    /// Acknowledges entries: they are done and will not be handed out
    /// again. Acknowledging twice is harmless. Acknowledged entries may
    /// stay in the stream (and count against its capacity) until
    /// [`trim`](Self::trim).
    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<()>;

    /// Removes from `stream` what every group of it has acknowledged (never
    /// an entry some group has not acknowledged, or not been handed yet).
    /// Consumers call it now and then (`group` is theirs); a backend that
    /// trims as it acknowledges does nothing here.
    async fn trim(&self, stream: &str, group: &str) -> Result<()> {
        let _ = (stream, group);
        Ok(())
    }

    /// Takes over up to `max` entries that have been pending with any
    /// consumer of `group` for at least `min_idle` (their consumer is
    /// presumed dead) and hands them to `consumer`.
    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Entry>>;

    /// What `group` has not acknowledged yet on `stream`. A group that has
    /// not read yet has the whole stream before it.
    async fn backlog(&self, stream: &str, group: &str) -> Result<Backlog>;
}
