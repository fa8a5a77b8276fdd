//! The persistence role: consumes the persist stream, writes messages in
//! batches through the [`Store`], and only then delivers them to the room
//! and acknowledges them to their senders.
//!
//! Stream entries are acknowledged after the write, so a worker that dies
//! mid-batch leaves its entries pending and another worker (or this one
//! after a restart, in cluster mode) claims and writes them again; inserts
//! are idempotent by message id, so nothing is stored twice. A batch whose
//! write fails is retried with back-off and never acknowledged unwritten.

use std::sync::Arc;
use std::time::Duration;

use chat_bus::{Bus, Entry, EntryId, names};
use chat_protocol::frames::ServerFrame;
use chat_protocol::internal::{self, Origin, Outcome, ToPersist};
use chat_protocol::{ErrorCode, Message};
use tokio::sync::watch;

use crate::{Store, metrics};

/// How the persistence worker reads its stream.
#[derive(Clone, Debug)]
pub struct PersistOptions {
    /// This consumer's name in the persisters' group; unique per process.
    pub consumer: String,
    /// Most messages written in one batch.
    pub batch: usize,
    /// Entries pending this long with another worker are taken over.
    pub claim_idle: Duration,
}

/// Runs the persistence worker until `shutdown` turns true; the batch in
/// hand is written and delivered first.
pub async fn run(
    store: Arc<dyn Store>,
    bus: Bus,
    options: PersistOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(consumer = %options.consumer, "persistence worker started");
    let mut last_claim = tokio::time::Instant::now();
    loop {
        let mut entries = Vec::new();
        if last_claim.elapsed() >= options.claim_idle {
            last_claim = tokio::time::Instant::now();
            match bus
                .queue
                .claim_stale(
                    names::PERSIST_STREAM,
                    names::PERSIST_GROUP,
                    &options.consumer,
                    options.claim_idle,
                    options.batch,
                )
                .await
            {
                Ok(claimed) => entries = claimed,
                Err(error) => tracing::warn!(%error, "cannot claim stale persist entries"),
            }
        }
        if entries.is_empty() {
            if *shutdown.borrow() {
                break;
            }
            let read = bus.queue.read(
                names::PERSIST_STREAM,
                names::PERSIST_GROUP,
                &options.consumer,
                options.batch,
                Duration::from_millis(500),
            );
            tokio::select! {
                read = read => match read {
                    Ok(read) => entries = read,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the persist stream");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
                // On shutdown, go round once more to drain what is queued.
                _ = shutdown.changed() => continue,
            }
        }
        if entries.is_empty() {
            continue;
        }
        handle_batch(store.as_ref(), &bus, &entries).await;
        let ids: Vec<EntryId> = entries.into_iter().map(|e| e.id).collect();
        if let Err(error) = bus
            .queue
            .ack(names::PERSIST_STREAM, names::PERSIST_GROUP, &ids)
            .await
        {
            tracing::warn!(%error, "cannot acknowledge persist entries");
        }
    }
    tracing::info!("persistence worker stopped");
}

/// Writes, then delivers and answers, one batch.
async fn handle_batch(store: &dyn Store, bus: &Bus, entries: &[Entry]) {
    let work: Vec<ToPersist> = entries
        .iter()
        .filter_map(
            |entry| match internal::decode::<ToPersist>(&entry.payload) {
                Ok(work) => Some(work),
                Err(error) => {
                    tracing::error!(%error, entry = ?entry.id, "undecodable persist entry dropped");
                    None
                }
            },
        )
        .collect();
    let messages: Vec<Message> = work
        .iter()
        .filter_map(|w| match w {
            ToPersist::New { message, .. } => Some(message.clone()),
            ToPersist::Repeat { .. } => None,
        })
        .collect();
    write_until_stored(store, &messages).await;
    for item in work {
        match item {
            ToPersist::New {
                message,
                origin,
                also_to_users,
            } => {
                deliver(bus, &message, &also_to_users).await;
                bus.reply(origin, Outcome::Posted(message)).await;
            }
            ToPersist::Repeat {
                room_id,
                message_id,
                origin,
            } => {
                answer_repeat(store, bus, origin, &room_id, message_id).await;
            }
        }
    }
}

/// Retries a batch write until it succeeds. Giving up would mean either
/// acknowledging unwritten messages or dropping them; waiting is the only
/// answer that loses nothing, and back-pressure reaches the senders through
/// the bounded streams.
async fn write_until_stored(store: &dyn Store, messages: &[Message]) {
    if messages.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    metrics::BATCH_SIZE.observe(messages.len() as f64);
    let mut delay = Duration::from_millis(50);
    loop {
        match store.insert_messages(messages).await {
            Ok(()) => {
                metrics::BATCH_SECONDS.observe(started.elapsed().as_secs_f64());
                metrics::MESSAGES.inc_by(messages.len() as u64);
                return;
            }
            Err(error) => {
                metrics::RETRIES.inc();
                tracing::warn!(%error, batch = messages.len(), retry_in = ?delay, "batch write failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Sends a durable message to its room (and, for a DM that it just opened,
/// to both users directly), and a `mention` to each mentioned user.
async fn deliver(bus: &Bus, message: &Message, also_to_users: &[chat_protocol::Id]) {
    let event = chat_bus::new_event(
        ServerFrame::Message {
            message: message.clone(),
        },
        None,
    );
    bus.publish_event(&names::room_channel(&message.room_id), &event)
        .await;
    for user in also_to_users {
        bus.publish_event(&names::user_channel(user), &event).await;
    }
    for user in &message.mentions {
        let mention = ServerFrame::Mention {
            room_id: message.room_id,
            message_id: message.id,
            sender_id: message.sender_id,
            content: message.content.clone(),
        };
        bus.publish_frame(&names::user_channel(user), mention, None)
            .await;
    }
}

/// Answers a repeated `client_id` with the original message, which is
/// durable by now: it was handed on before the repeat, in stream order.
async fn answer_repeat(
    store: &dyn Store,
    bus: &Bus,
    origin: Origin,
    room: &chat_protocol::RoomId,
    id: chat_protocol::Id,
) {
    let outcome = match store.message(room, id).await {
        Ok(Some(original)) => Outcome::Posted(original),
        Ok(None) => Outcome::Failed {
            code: ErrorCode::Unavailable,
            message: "the original message is not stored yet; retry".into(),
            client_id: None,
            retry_after_ms: Some(1000),
        },
        Err(error) => {
            tracing::warn!(%error, "cannot read the original of a repeated client_id");
            Outcome::Failed {
                code: ErrorCode::Unavailable,
                message: "store unavailable; retry".into(),
                client_id: None,
                retry_after_ms: Some(1000),
            }
        }
    };
    bus.reply(origin, outcome).await;
}
