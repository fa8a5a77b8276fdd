//! The writer stage: writes accepted messages in batches through the
//! [`Store`], and only then publishes them (through [`crate::events`], the
//! one place events leave) and answers their senders
//! ([`write_and_deliver`]). Where it runs is [`WriteStage`]
//! (`realtime.write_stage`): by default in the persistence workers (the
//! `persist` role, `chatd persist`), which consume the partitions of the
//! persist stream they hold; or in the router that accepted the messages,
//! in the same read, without the persist stream. It lives in the router
//! crate because it publishes: the persistence crate only stores. As a
//! role it needs a store and a bus, not [`Chat`] (no password hashing, no
//! id minting), so it runs in its own process as well as beside a router.
//!
//! [`Chat`]: crate::Chat
//!
//! A room's messages are in one partition, held by one worker (or router)
//! at a time and read in order, so they are written and published in the
//! order the router minted them. Stream entries are acknowledged after the
//! write, so a worker that dies mid-batch leaves its entries pending and the
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
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::events::{membership_version, message_events};
use crate::metrics;

/// Where accepted messages are written, then published and answered
/// (`realtime.write_stage`; every process must agree).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteStage {
    /// By the persistence workers, through the persist stream: store
    /// writes run, scale and stall in processes of their own.
    #[default]
    Persist,
    /// By the router that accepted them, at the end of the same read: one
    /// hop, one stream append, read and acknowledgement less per read. The
    /// router holds the room's partition, so the room's order is the same.
    Router,
}

/// Whether this process's writer stage last failed to write.
static BLOCKED: AtomicBool = AtomicBool::new(false);

/// Whether this process's writer stage (a persistence worker's, or a
/// router's that writes) cannot write right now: its last store write
/// failed (and no write has succeeded since).
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
/// partition held ([`write_and_deliver`]).
async fn handle_read(store: &dyn Store, bus: &Bus, batches: &[Batch]) {
    let work: Vec<ToPersist> = batches
        .iter()
        .flat_map(|batch| &batch.entries)
        .flat_map(decode_entry)
        .collect();
    write_and_deliver(store, bus, work).await;
}

/// Writes accepted messages with one store call (one transaction and fsync
/// on SQLite), then queues every event and answer in one [`Outbox`] (one
/// Redis round trip; each message's events before its answer; `work`'s
/// order kept, which holds each room's messages in the order minted). A
/// message sent by a connection whose gateway hears the room has its
/// answer in its room event ([`internal::Origin::hears_room`]), not in a
/// reply. A persistence worker's step for what it reads, and a router's
/// own for what it accepted when it writes ([`WriteStage::Router`]).
pub async fn write_and_deliver(store: &dyn Store, bus: &Bus, work: Vec<ToPersist>) {
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
                if origin.hears_room && origin.connection.is_some() {
                    // Its gateway answers the ack from the room's event.
                    message_events(&mut outbox, &message, &also_to_users, version, Some(origin));
                } else {
                    message_events(&mut outbox, &message, &also_to_users, version, None);
                    outbox.reply(origin, Outcome::Posted(message));
                }
                tracing::debug!("message stored; its events and ack queued");
            }
            ToPersist::Repeat {
                room_id,
                message_id,
                message,
                client_id,
                origin,
                republish,
            } => {
                chat_bus::trace::follow(&span, origin.trace.as_deref());
                span.record("message_id", message_id.0);
                let repeat = Repeat {
                    room: &room_id,
                    id: message_id,
                    retry: message,
                    client_id,
                    republish,
                };
                let outcome = answer_repeat(store, &mut outbox, repeat)
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

/// A repeated `client_id` to answer ([`ToPersist::Repeat`]).
struct Repeat<'a> {
    room: &'a chat_protocol::RoomId,
    /// The original message's id.
    id: Id,
    /// The retry under the original id.
    retry: Option<Message>,
    /// The repeated `client_id`, which a refusal carries back.
    client_id: Option<String>,
    /// Publish the original again if it is stored.
    republish: bool,
}

/// Answers a repeated `client_id` with the original message. Normally it
/// is durable by now (it was handed on before the repeat, in stream order);
/// if it is missing, its router died before handing it on, and the retry is
/// written under the original id instead (its files linked to that id),
/// and delivered.
async fn answer_repeat(store: &dyn Store, outbox: &mut Outbox, repeat: Repeat<'_>) -> Outcome {
    match store.message(repeat.room, repeat.id).await {
        Ok(Some(original)) => {
            if repeat.republish {
                let version = membership_version(store, repeat.room).await;
                message_events(outbox, &original, &[], version, None);
            }
            Outcome::Posted(original)
        }
        Ok(None) => match repeat.retry {
            Some(message) => {
                // Its files, linked before it is written, as a new
                // message's are (idempotent: the original's router may
                // have linked them already).
                if let Err(error) = crate::files::link_attachments(store, &message).await {
                    tracing::warn!(%error, "cannot link the files of a retry");
                    return unavailable("store unavailable; retry", repeat.client_id);
                }
                let stored = write_until_stored(store, std::slice::from_ref(&message)).await;
                if stored.refused.contains(&message.id) {
                    return refused_outcome(&message);
                }
                let version = stored.versions.get(&message.room_id).copied();
                message_events(outbox, &message, &[], version, None);
                Outcome::Posted(message)
            }
            None => unavailable(
                "the original message is not stored yet; retry",
                repeat.client_id,
            ),
        },
        Err(error) => {
            tracing::warn!(%error, "cannot read the original of a repeated client_id");
            unavailable("store unavailable; retry", repeat.client_id)
        }
    }
}

fn unavailable(message: &str, client_id: Option<String>) -> Outcome {
    Outcome::Failed {
        code: ErrorCode::Unavailable,
        message: message.into(),
        client_id,
        retry_after_ms: Some(1000),
    }
}

#[cfg(test)]
mod tests {
    use chat_bus::names;
    use chat_persistence::sqlite::{SqliteOptions, SqliteStore};
    use chat_persistence::{FileRecord, NewRoom};
    use chat_protocol::internal::{Event, Origin};
    use chat_protocol::{RoomId, RoomKind, Visibility};

    use super::*;

    /// The `message` events the subscription has received so far.
    fn messages_heard(deliveries: &mut tokio::sync::mpsc::Receiver<chat_bus::Delivery>) -> usize {
        let mut heard = 0;
        while let Ok(delivery) = deliveries.try_recv() {
            let event: Event = internal::decode(&delivery.payload).unwrap();
            if matches!(
                event.frame,
                chat_protocol::frames::ServerFrame::Message { .. }
            ) {
                heard += 1;
            }
        }
        heard
    }

    fn repeat(message: &Message, republish: bool) -> ToPersist {
        ToPersist::Repeat {
            room_id: message.room_id,
            message_id: message.id,
            message: Some(message.clone()),
            client_id: message.client_id.clone(),
            origin: origin(),
            republish,
        }
    }

    fn origin() -> Origin {
        Origin {
            gateway: "gw-test".into(),
            request: 1,
            connection: Some(1),
            reference: None,
            trace: None,
            hears_room: false,
        }
    }

    /// A repeat whose original is not stored, with no retry to write in its
    /// place (it named another room), is refused with its `client_id`, so
    /// that the client knows which send to try again.
    #[tokio::test]
    async fn a_refused_repeat_carries_its_client_id() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path().join("chat.db"), SqliteOptions::default()).unwrap();
        let repeat = Repeat {
            room: &RoomId::Group(Id(7)),
            id: Id(1 << 40),
            retry: None,
            client_id: Some("c1".into()),
            republish: false,
        };
        let outcome = answer_repeat(&store, &mut Outbox::new(), repeat).await;
        assert!(
            matches!(
                &outcome,
                Outcome::Failed { code: ErrorCode::Unavailable, client_id: Some(id), .. } if id == "c1"
            ),
            "{outcome:?}"
        );
    }

    /// A store in `dir` with one public room.
    async fn store_with_a_room(dir: &tempfile::TempDir) -> (SqliteStore, RoomId) {
        let store =
            SqliteStore::open(dir.path().join("chat.db"), SqliteOptions::default()).unwrap();
        let room = RoomId::Group(Id(7));
        let new_room = NewRoom {
            id: room,
            kind: RoomKind::Group,
            name: "r".into(),
            visibility: Visibility::Public,
            owner_id: None,
            created_at: 1,
            max_members: None,
        };
        store.create_room(new_room, &[]).await.unwrap();
        (store, room)
    }

    /// A message of user 3 in `room`, sent with `client_id` "c1".
    fn message_in(room: RoomId) -> Message {
        let id = Id(1 << 40);
        Message {
            id,
            room_id: room,
            sender_id: Id(3),
            content: "hello".into(),
            mentions: Vec::new(),
            attachments: Vec::new(),
            reply_to: None,
            client_id: Some("c1".into()),
            created_at: id.unix_ms(),
            edited_at: None,
            deleted: false,
        }
    }

    /// A retry written in place of an original that was never stored
    /// carries its files: they are linked to it, so its room can read them.
    #[tokio::test]
    async fn a_retry_written_in_place_of_its_original_links_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let (store, room) = store_with_a_room(&dir).await;
        let file = FileRecord {
            id: Id(1 << 30),
            uploader: Id(3),
            name: "notes.txt".into(),
            size: 5,
            content_type: "text/plain".into(),
            checksum: "0".repeat(64),
            created_at: 1,
            thumbnail: false,
        };
        store.insert_file(file.clone()).await.unwrap();
        let retry = Message {
            attachments: vec![file.to_file()],
            ..message_in(room)
        };
        let repeat = Repeat {
            room: &room,
            id: retry.id,
            retry: Some(retry.clone()),
            client_id: retry.client_id.clone(),
            republish: false,
        };
        let outcome = answer_repeat(&store, &mut Outbox::new(), repeat).await;
        assert!(matches!(&outcome, Outcome::Posted(posted) if posted.id == retry.id));
        assert_eq!(store.file_rooms(file.id).await.unwrap(), vec![room]);
        store.close().await;
    }

    /// A router that writes and handles an entry a second time cannot
    /// know whether its predecessor published what it wrote, so the
    /// original goes out again (gateways drop the copy by its id); a
    /// repeat handled the first time (a client's retry) only answers.
    #[tokio::test]
    async fn only_a_repeat_handled_again_publishes_the_stored_original() {
        let dir = tempfile::tempdir().unwrap();
        let (store, room) = store_with_a_room(&dir).await;
        let bus = Bus::local(16);
        let mut subscription = bus.pubsub.subscribe(64).await.unwrap();
        subscription
            .control
            .add(&names::room_channel(&room))
            .await
            .unwrap();
        let message = message_in(room);
        let new = ToPersist::New {
            message: message.clone(),
            origin: origin(),
            also_to_users: Vec::new(),
        };
        write_and_deliver(&store, &bus, vec![new]).await;
        assert_eq!(messages_heard(&mut subscription.deliveries), 1);

        write_and_deliver(&store, &bus, vec![repeat(&message, false)]).await;
        assert_eq!(messages_heard(&mut subscription.deliveries), 0);

        write_and_deliver(&store, &bus, vec![repeat(&message, true)]).await;
        assert_eq!(messages_heard(&mut subscription.deliveries), 1);
        store.close().await;
    }
}
