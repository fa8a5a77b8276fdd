//! The persistence writer stage (the `persist` role, `chatd persist`):
//! consumes the partitions of the persist stream it holds, writes messages
//! in batches through the [`Store`], and only then publishes them (through
//! [`crate::events`], the one place events leave) and answers their
//! senders. It lives in the router crate because it publishes: the
//! persistence crate only stores. It needs a store and a bus, not [`Chat`]
//! (no password hashing, no id minting), so it runs in its own process as
//! well as beside a router.
//!
//! [`Chat`]: crate::Chat
//!
//! A room's messages are in one partition, held by one worker at a time
//! and read in order, so they are written and published in the order the
//! router minted them. Stream entries are acknowledged after the write, so
//! a worker that dies mid-batch leaves its entries pending and the
//! partition's next holder writes them again before anything newer;
//! inserts are idempotent by message id, so nothing is stored twice. A
//! batch whose write fails because the store is unavailable is retried with
//! back-off and never acknowledged unwritten. A batch the store refuses for
//! another reason (a constraint, a full disk: retrying cannot cure it) is
//! split in halves until the refused messages are alone; those are refused
//! to their senders with `internal` and never delivered, the rest of the
//! batch is written, and the partition moves on instead of stalling every
//! room behind it. While writes fail, [`writer_blocked`] is true (shown by
//! `/readyz` and the `chat_persist_writer_blocked` gauge) until a write
//! succeeds again.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chat_bus::consumer::{Batch, ConsumerOptions, consume};
use chat_bus::{Bus, Entry, Outbox, names};
use chat_persistence::{MembershipVersions, Store, StoreError};
use chat_protocol::internal::{self, Outcome, PersistBatch, ToPersist};
use chat_protocol::{ErrorCode, Id, Message};
use chat_shutdown::CancellationToken;
use tracing::Instrument;

use crate::events::message_events;
use crate::metrics;

/// Whether this process's persistence writer last failed to write.
static BLOCKED: AtomicBool = AtomicBool::new(false);

/// Whether this process's persistence writer cannot write right now: its
/// last store write failed (and no write has succeeded since).
pub fn writer_blocked() -> bool {
    BLOCKED.load(Ordering::Relaxed)
}

fn set_blocked(blocked: bool) {
    BLOCKED.store(blocked, Ordering::Relaxed);
    metrics::WRITER_BLOCKED.set(i64::from(blocked));
}

/// How the persistence writer takes its work.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// This worker's name in the persisters' group.
    pub consumer: String,
    /// How many partitions the persist stream has.
    pub partitions: u16,
    /// Most entries read from each partition at once (what one read
    /// brings is written in one store call).
    pub batch: usize,
    /// How long its partition leases live unless renewed.
    pub lease: Duration,
}

/// Runs the persistence writer until `shutdown` is cancelled, then drains
/// its partitions of the persist stream, so that every accepted message is
/// written before the process exits.
pub async fn run(
    store: Arc<dyn Store>,
    bus: Bus,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    tracing::info!(consumer = %options.consumer, "persistence writer started");
    let options = ConsumerOptions {
        stream: names::PERSIST_STREAM,
        group: names::PERSIST_GROUP,
        consumer: options.consumer,
        partitions: options.partitions,
        batch: options.batch,
        lease: options.lease,
        // Never waits between reads: each entry is already a router's
        // batch, and the routers' reads set the pace, so waiting here would
        // add latency and save next to nothing.
        min_read_interval: Duration::ZERO,
    };
    let (queue, state) = (bus.queue.clone(), bus.state.clone());
    consume(queue, state, options, shutdown, |batches| {
        let (store, bus) = (store.clone(), bus.clone());
        async move { handle_read(store.as_ref(), &bus, &batches).await }
    })
    .await;
}

/// Writes, then delivers and answers, what one read brought from every
/// partition held: one store call (one transaction and fsync on SQLite),
/// then every event and reply in one [`Outbox`] (one Redis round trip;
/// each message's events before its reply; each partition's messages in
/// stream order).
async fn handle_read(store: &dyn Store, bus: &Bus, batches: &[Batch]) {
    let work: Vec<ToPersist> = batches
        .iter()
        .flat_map(|batch| &batch.entries)
        .flat_map(decode_entry)
        .collect();
    let messages: Vec<Message> = work
        .iter()
        .filter_map(|w| match w {
            ToPersist::New { message, .. } => Some(message.clone()),
            ToPersist::Repeat { .. } => None,
        })
        .collect();
    let Stored { refused, versions } = write_until_stored(store, &messages)
        .instrument(tracing::info_span!("persist.write", batch = messages.len()))
        .await;
    let mut outbox = Outbox::new();
    for item in work {
        // The persistence hop of each message's trace: its fan-out and
        // its answer (the `ack`), after the batch write above.
        let span = tracing::info_span!(
            "persist.deliver",
            room_id = %item.room_id(),
            message_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        match item {
            ToPersist::New {
                message, origin, ..
            } if refused.contains(&message.id) => {
                outbox.reply(origin, refused_outcome(&message));
            }
            ToPersist::New {
                message,
                origin,
                also_to_users,
            } => {
                chat_bus::trace::follow(&span, origin.trace.as_deref());
                span.record("message_id", message.id.0);
                let _entered = span.enter();
                let version = versions.get(&message.room_id).copied();
                message_events(&mut outbox, &message, &also_to_users, version);
                outbox.reply(origin, Outcome::Posted(message));
                tracing::debug!("message stored; its events and ack queued");
            }
            ToPersist::Repeat {
                room_id,
                message_id,
                message,
                origin,
            } => {
                chat_bus::trace::follow(&span, origin.trace.as_deref());
                span.record("message_id", message_id.0);
                let outcome = answer_repeat(store, &mut outbox, &room_id, message_id, message)
                    .instrument(span)
                    .await;
                outbox.reply(origin, outcome);
            }
        }
    }
    bus.send(outbox).await;
}

/// The messages of one persist-stream entry: a router's batch, or one
/// message as routers before batching appended them.
fn decode_entry(entry: &Entry) -> Vec<ToPersist> {
    if let Ok(batch) = internal::decode::<PersistBatch>(&entry.payload) {
        return batch.items;
    }
    match internal::decode::<ToPersist>(&entry.payload) {
        Ok(work) => vec![work],
        Err(error) => {
            tracing::error!(%error, entry = ?entry.id, "undecodable persist entry dropped");
            Vec::new()
        }
    }
}

/// What [`write_until_stored`] did with a batch.
#[derive(Default)]
struct Stored {
    /// The messages the store refused for good.
    refused: HashSet<Id>,
    /// The membership versions of the stored messages' rooms, read with
    /// the write ([`Store::insert_messages`]).
    versions: MembershipVersions,
}

/// Writes a batch, answering the ids of the messages the store refused
/// for good and the versions of the rooms written to (of a room written in
/// several parts, the last part's: the newest, which only makes gateways
/// check more). An unavailable store is waited for: giving up would mean
/// either acknowledging unwritten messages or dropping them, and
/// back-pressure reaches the senders through the bounded streams. Any other
/// refusal is not cured by retrying, so the batch is split until each
/// refused message is alone, and only those are given up.
async fn write_until_stored(store: &dyn Store, messages: &[Message]) -> Stored {
    let mut stored = Stored::default();
    if messages.is_empty() {
        return stored;
    }
    let started = std::time::Instant::now();
    metrics::BATCH_SIZE.observe(messages.len() as f64);
    // Halves still to write, last first (order within a room is kept:
    // the earlier half is always written before the later one).
    let mut pending: Vec<&[Message]> = vec![messages];
    while let Some(part) = pending.pop() {
        match write_waiting_out_outages(store, part).await {
            Ok(versions) => stored.versions.extend(versions),
            Err(error) if part.len() > 1 => {
                tracing::warn!(%error, batch = part.len(), "batch refused; splitting it");
                let (first, second) = part.split_at(part.len() / 2);
                pending.push(second);
                pending.push(first);
            }
            Err(error) => {
                metrics::REFUSED.inc();
                tracing::error!(%error, message = %part[0].id, room = %part[0].room_id, "the store refused a message; its sender is told");
                stored.refused.insert(part[0].id);
            }
        }
    }
    metrics::BATCH_SECONDS.observe(started.elapsed().as_secs_f64());
    metrics::MESSAGES.inc_by((messages.len() - stored.refused.len()) as u64);
    stored
}

/// One store write, retried with back-off while the store is unavailable;
/// any other error is answered.
async fn write_waiting_out_outages(
    store: &dyn Store,
    messages: &[Message],
) -> Result<MembershipVersions, StoreError> {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.insert_messages(messages).await {
            Ok(versions) => {
                set_blocked(false);
                return Ok(versions);
            }
            Err(StoreError::Unavailable(error)) => {
                set_blocked(true);
                metrics::RETRIES.inc();
                tracing::warn!(%error, batch = messages.len(), retry_in = ?delay, "batch write failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                set_blocked(true);
                return Err(error);
            }
        }
    }
}

/// The answer to the sender of a message the store refused for good.
fn refused_outcome(message: &Message) -> Outcome {
    Outcome::Failed {
        code: ErrorCode::Internal,
        message: "the message could not be stored".into(),
        client_id: message.client_id.clone(),
        retry_after_ms: None,
    }
}

/// Answers a repeated `client_id` with the original message. Normally it
/// is durable by now (it was handed on before the repeat, in stream order);
/// if it is missing, its router died before handing it on, and the retry is
/// written under the original id instead, and delivered.
async fn answer_repeat(
    store: &dyn Store,
    outbox: &mut Outbox,
    room: &chat_protocol::RoomId,
    id: chat_protocol::Id,
    retry: Option<Message>,
) -> Outcome {
    match store.message(room, id).await {
        Ok(Some(original)) => Outcome::Posted(original),
        Ok(None) => match retry {
            Some(message) => {
                let stored = write_until_stored(store, std::slice::from_ref(&message)).await;
                if stored.refused.contains(&message.id) {
                    return refused_outcome(&message);
                }
                let version = stored.versions.get(&message.room_id).copied();
                message_events(outbox, &message, &[], version);
                Outcome::Posted(message)
            }
            None => unavailable("the original message is not stored yet; retry"),
        },
        Err(error) => {
            tracing::warn!(%error, "cannot read the original of a repeated client_id");
            unavailable("store unavailable; retry")
        }
    }
}

fn unavailable(message: &str) -> Outcome {
    Outcome::Failed {
        code: ErrorCode::Unavailable,
        message: message.into(),
        client_id: None,
        retry_after_ms: Some(1000),
    }
}
