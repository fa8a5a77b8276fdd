//! The persistence role: consumes the partitions of the persist stream it
//! holds, writes messages in batches through the [`Store`], and only then
//! delivers them to the room and acknowledges them to their senders.
//!
//! A room's messages are in one partition, held by one worker at a time
//! and read in order, so they are written and published in the order the
//! router minted them. Stream entries are acknowledged after the write, so
//! a worker that dies mid-batch leaves its entries pending and the
//! partition's next holder writes them again before anything newer;
//! inserts are idempotent by message id, so nothing is stored twice. A
//! batch whose write fails is retried with back-off and never acknowledged
//! unwritten.

use std::sync::Arc;
use std::time::Duration;

use chat_bus::consumer::{ConsumerOptions, consume};
use chat_bus::{Bus, Entry, names};
use chat_protocol::frames::ServerFrame;
use chat_protocol::internal::{self, Event, Outcome, ToPersist};
use chat_protocol::{ErrorCode, Message};
use tokio::sync::watch;

use crate::{Store, metrics};

/// How the persistence worker takes its work.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// This worker's name in the persisters' group.
    pub consumer: String,
    /// How many partitions the persist stream has.
    pub partitions: u16,
    /// Most entries of one partition written at once.
    pub batch: usize,
    /// How long its partition leases live unless renewed.
    pub lease: Duration,
}

/// Runs the persistence worker until `shutdown` turns true, then drains
/// its partitions of the persist stream, so that every accepted message is
/// written before the process exits.
pub async fn run(
    store: Arc<dyn Store>,
    bus: Bus,
    options: WorkerOptions,
    shutdown: watch::Receiver<bool>,
) {
    tracing::info!(consumer = %options.consumer, "persistence worker started");
    let options = ConsumerOptions {
        stream: names::PERSIST_STREAM,
        group: names::PERSIST_GROUP,
        consumer: options.consumer,
        partitions: options.partitions,
        batch: options.batch,
        lease: options.lease,
    };
    let (queue, state) = (bus.queue.clone(), bus.state.clone());
    consume(queue, state, options, shutdown, |_partition, entries| {
        let (store, bus) = (store.clone(), bus.clone());
        async move { handle_batch(store.as_ref(), &bus, &entries).await }
    })
    .await;
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
                message,
                origin,
            } => {
                let outcome = answer_repeat(store, bus, &room_id, message_id, message).await;
                bus.reply(origin, outcome).await;
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
/// to both users directly), and a `mention` and a `notification` to each
/// mentioned user.
async fn deliver(bus: &Bus, message: &Message, also_to_users: &[chat_protocol::Id]) {
    // The message id as the event id: if this worker dies after publishing
    // and before acknowledging, the partition's next holder publishes the
    // message again under the same event id, and gateways pass it on once.
    let event = Event {
        id: message.id.0,
        except_user: None,
        frame: ServerFrame::Message {
            message: message.clone(),
        },
    };
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
        // The stored notification (written with the message), live.
        let notification = ServerFrame::Notification {
            notification: chat_protocol::Notification::of_mention(message),
        };
        bus.publish_frame(&names::user_channel(user), notification, None)
            .await;
    }
}

/// Answers a repeated `client_id` with the original message. Normally it
/// is durable by now (it was handed on before the repeat, in stream order);
/// if it is missing, its router died before handing it on, and the retry is
/// written under the original id instead, and delivered.
async fn answer_repeat(
    store: &dyn Store,
    bus: &Bus,
    room: &chat_protocol::RoomId,
    id: chat_protocol::Id,
    retry: Option<Message>,
) -> Outcome {
    match store.message(room, id).await {
        Ok(Some(original)) => Outcome::Posted(original),
        Ok(None) => match retry {
            Some(message) => {
                write_until_stored(store, std::slice::from_ref(&message)).await;
                deliver(bus, &message, &[]).await;
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
