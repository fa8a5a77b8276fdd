//! The router role: consumes the partitions of the inbound stream it
//! holds, applies each action (WebSocket actions, REST posts, and the REST
//! calls that change state: join, leave, read, add, kick, open a DM,
//! create a room)
//! through [`Chat`], hands the read's accepted messages to the writer stage
//! ([`crate::writer`]: their rooms' partitions of the persist stream, one
//! entry per partition and read; or, when `realtime.write_stage` is
//! `router`, its own write at the end of the read) and answers the origin
//! gateway when there is something to answer.
//!
//! A room's actions all go to one partition (see
//! `chat_bus::partitions`), held by one router at a time, whose entries are
//! handled one at a time, in stream order: a room's messages are minted in
//! the order they were sent, and one connection's actions keep their order.
//! An entry is acknowledged once it is handled, whatever the outcome: a
//! refused action is answered, not retried. Entries left pending by a
//! router that died are handled again by the partition's next holder before
//! anything newer; their effects are idempotent (`client_id`s are claimed
//! once, so a retried send keeps its id; a router that writes publishes
//! the stored original of such a send again, since its predecessor may
//! have died between writing and publishing it).

use std::time::Duration;

use chat_bus::consumer::{Batch, ConsumerOptions, consume};
use chat_bus::{Entry, EntryId, names, partitions};
use chat_protocol::frames::ClientAction;
use chat_protocol::internal::{
    self, Inbound, MemberAction, Origin, Outcome, PersistBatch, ToPersist, Work,
};
use chat_shutdown::CancellationToken;
use tracing::Instrument;

use crate::event_ids;
use crate::messages::{SendToAdmit, Ticket};
use crate::rooms::Handling;
use crate::writer::{WriteStage, write_and_deliver};
use crate::{Chat, Error, Result};

/// How a router takes its work.
#[derive(Clone, Debug)]
pub struct RouterOptions {
    /// This router's name in the routers' group.
    pub consumer: String,
    /// How long its partition leases live unless renewed.
    pub lease: Duration,
    /// Least time between two reads while entries keep coming (see
    /// `realtime.read_interval_ms`).
    pub read_interval: Duration,
}

/// Runs the router until `shutdown` is cancelled, then drains its
/// partitions of the inbound stream.
pub async fn run(chat: Chat, options: RouterOptions, shutdown: CancellationToken) {
    tracing::info!(consumer = %options.consumer, "router started");
    let options = ConsumerOptions {
        stream: names::INBOUND_STREAM,
        group: names::ROUTER_GROUP,
        consumer: options.consumer,
        partitions: chat.partitions(),
        batch: BATCH,
        lease: options.lease,
        min_read_interval: options.read_interval,
    };
    let bus = chat.bus();
    let (queue, state) = (bus.queue.clone(), bus.state.clone());
    consume(queue, state, options, shutdown, |batches| {
        let chat = chat.clone();
        async move { handle_read(&chat, batches).await }
    })
    .await;
}

/// Handles what one read brought, each partition's entries in stream
/// order: every send of the read is admitted at once (rate limits and
/// claims in one call to the shared state), each entry is handled, and
/// the read's accepted messages go to the writer stage together
/// ([`Persist`]).
async fn handle_read(chat: &Chat, batches: Vec<Batch>) {
    let decoded: Vec<Decoded<'_>> = batches
        .iter()
        .flat_map(|batch| decode_entries(batch.partition, &batch.entries))
        .collect();
    let sends: Vec<SendToAdmit> = decoded
        .iter()
        .filter_map(|entry| match &entry.inbound.work {
            Work::Client(ClientAction::Send(send)) => Some(SendToAdmit {
                sender: entry.inbound.user,
                send,
                // A WebSocket send's budget is charged here (a REST
                // post's by the gateway's REST layer), once.
                charge_budget: entry.inbound.origin.connection.is_some()
                    && entry.handling == Handling::First,
                partition: entry.partition,
                entry: &entry.id.0,
            }),
            _ => None,
        })
        .collect();
    let mut tickets = chat.admit_sends(&sends).await.into_iter();
    let mut persist = Persist::default();
    for entry in decoded {
        let ticket = match &entry.inbound.work {
            Work::Client(ClientAction::Send(_)) => tickets.next(),
            _ => None,
        };
        // Whatever the entry publishes, it publishes under the same ids
        // each time it is handled.
        let handled = handle_entry(chat, entry.inbound, entry.handling, ticket, &mut persist);
        event_ids::handling_entry(entry.partition, &entry.id.0, handled).await;
    }
    persist.hand_on(chat).await;
}

/// An inbound entry, decoded.
struct Decoded<'a> {
    inbound: Inbound,
    /// `Again` if it was handed out before: its previous holder died or
    /// gave the partition up before acknowledging it.
    handling: Handling,
    /// Its partition and id there: the same however often it is handled,
    /// they claim a send without a `client_id` and number the events its
    /// handling publishes.
    partition: u16,
    id: &'a EntryId,
}

/// The decodable entries of a batch of `partition`; an undecodable one is
/// logged and dropped (it would fail the same way on any router).
fn decode_entries(partition: u16, entries: &[Entry]) -> Vec<Decoded<'_>> {
    entries
        .iter()
        .filter_map(|entry| match internal::decode(&entry.payload) {
            Ok(inbound) => Some(Decoded {
                inbound,
                handling: match entry.deliveries {
                    0 | 1 => Handling::First,
                    _ => Handling::Again,
                },
                partition,
                id: &entry.id,
            }),
            Err(error) => {
                tracing::error!(%error, entry = ?entry.id, "undecodable inbound entry dropped");
                None
            }
        })
        .collect()
}

/// The messages one read accepted, for the writer stage. Handed on
/// through the persist stream, they are grouped by its partitions (see
/// `realtime.persist_partitions`), each partition's in the order they were
/// handled: a room is in one partition of each stream, so its messages
/// keep their order, while the rooms of several work partitions share one
/// entry when they share a persist partition. Written here, they are one
/// group, in the order handled.
#[derive(Default)]
struct Persist {
    partitions: Vec<(u16, Vec<ToPersist>)>,
}

impl Persist {
    /// Queues an accepted message for its room's persist partition (or, if
    /// this router writes, its one group). `handling`: its entry's.
    fn push(&mut self, chat: &Chat, mut accepted: ToPersist, handling: Handling) {
        let partition = match chat.write_stage() {
            WriteStage::Router => {
                if let ToPersist::Repeat { republish, .. } = &mut accepted {
                    *republish = handling == Handling::Again;
                }
                0
            }
            WriteStage::Persist => {
                let key = accepted.room_id().to_string();
                partitions::partition_of(&key, chat.persist_partitions())
            }
        };
        match self.partitions.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, items)) => items.push(accepted),
            None => self.partitions.push((partition, vec![accepted])),
        }
    }

    /// Writes the read's messages here (one store call, one round of
    /// publishes and answers), or appends each partition's messages to that
    /// partition of the persist stream in one entry (the partitions'
    /// appends at once, one round trip).
    async fn hand_on(self, chat: &Chat) {
        match chat.write_stage() {
            WriteStage::Router => {
                let items = self.partitions.into_iter().flat_map(|(_, items)| items);
                write_and_deliver(chat.store().as_ref(), chat.bus(), items.collect()).await;
            }
            WriteStage::Persist => {
                let appends = self
                    .partitions
                    .into_iter()
                    .map(|(partition, items)| hand_on(chat, partition, items));
                futures_util::future::join_all(appends).await;
            }
        }
    }
}

/// Appends messages to a partition of the persist stream, in one entry. If
/// that fails, every sender is told (`unavailable`). The claims of their
/// `client_id`s stand: a failed append may still have been applied (its
/// answer lost), and a retry under a standing claim is answered with the
/// original if it was stored, or written under the original's id if not
/// (the writer's `answer_repeat`), never stored twice.
async fn hand_on(chat: &Chat, partition: u16, items: Vec<ToPersist>) {
    let stream = partitions::stream(names::PERSIST_STREAM, partition);
    let batch = PersistBatch { items };
    let Err(error) = chat.bus().append(&stream, &batch).await else {
        return;
    };
    let error = Error::Unavailable(error.to_string());
    for accepted in batch.items {
        let (origin, client_id) = match accepted {
            ToPersist::New {
                message, origin, ..
            } => (origin, message.client_id),
            ToPersist::Repeat {
                origin, client_id, ..
            } => (origin, client_id),
        };
        reply(chat, origin, failed(&error, client_id)).await;
    }
}

/// Most inbound entries taken at once.
const BATCH: usize = 64;

async fn handle_entry(
    chat: &Chat,
    inbound: Inbound,
    handling: Handling,
    ticket: Option<Result<Ticket>>,
    persist: &mut Persist,
) {
    let Inbound {
        mut origin,
        user,
        work,
    } = inbound;
    let client_id = match &work {
        Work::Client(ClientAction::Send(send)) => send.client_id.clone(),
        _ => None,
    };
    let (action, room_id) = match &work {
        Work::Client(action) => (action.kind(), action.room_id()),
        Work::Connected { .. } => ("connected", None),
        Work::Disconnected { .. } => ("disconnected", None),
        Work::Member(action) => (action.kind(), action.room_id()),
    };
    // The router's hop of the action's trace; what it hands on (the
    // message to persist, the answer) continues from this span.
    let span = tracing::info_span!(
        "router.action",
        action,
        room_id = room_id.map(tracing::field::display),
        message_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    chat_bus::trace::follow(&span, origin.trace.as_deref());
    origin.trace = chat_bus::trace::of(&span);
    async {
        let started = std::time::Instant::now();
        let result = handle(chat, user, work, &origin, handling, ticket, persist).await;
        let label = match &result {
            Ok(_) => crate::metrics::RESULT_OK,
            Err(error) => error.code().as_str(),
        };
        tracing::Span::current().record("outcome", label);
        tracing::debug!("action handled");
        crate::metrics::ACTIONS
            .with_label_values(&[action, label])
            .inc();
        crate::metrics::ACTION_SECONDS
            .with_label_values(&[action, label])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(None) => return,
            Ok(Some(outcome)) => outcome,
            Err(error) => failed(&error, client_id),
        };
        reply(chat, origin, outcome).await;
    }
    .instrument(span)
    .await;
}

/// Applies one action; answers what to tell its origin, if anything yet.
async fn handle(
    chat: &Chat,
    user: chat_protocol::Id,
    work: Work,
    origin: &Origin,
    handling: Handling,
    ticket: Option<Result<Ticket>>,
    persist: &mut Persist,
) -> Result<Option<Outcome>> {
    let action = match work {
        Work::Connected { connection } => {
            chat.connection_opened(user, &connection).await?;
            return Ok(None);
        }
        Work::Disconnected { connection } => {
            chat.connection_closed(user, &connection).await?;
            return Ok(None);
        }
        Work::Member(action) => {
            apply_member_action(chat, user, action, handling).await?;
            return Ok(Some(Outcome::Done));
        }
        Work::Client(action) => action,
    };
    match action {
        ClientAction::Send(send) => {
            let ticket = ticket.unwrap_or_else(|| {
                Err(Error::Internal(
                    "a send of the batch was not admitted".into(),
                ))
            })?;
            let accepted = chat
                .accept_message(user, send, origin.clone(), ticket, handling)
                .await?;
            if let ToPersist::New { message, .. } = &accepted {
                tracing::Span::current().record("message_id", message.id.0);
            }
            // Handed on with the rest of the batch; the writer stage
            // answers once the message is durable.
            persist.push(chat, accepted, handling);
            Ok(None)
        }
        ClientAction::Edit {
            room_id,
            message_id,
            content,
        } => {
            chat.edit_message(user, &room_id, message_id, &content)
                .await?;
            Ok(Some(Outcome::Done))
        }
        ClientAction::Delete {
            room_id,
            message_id,
        } => {
            chat.delete_message(user, &room_id, message_id).await?;
            Ok(Some(Outcome::Done))
        }
        ClientAction::Typing { room_id, typing } => {
            chat.typing(user, &room_id, typing).await?;
            Ok(Some(Outcome::Done))
        }
        ClientAction::Read {
            room_id,
            message_id,
        } => {
            chat.mark_read(user, &room_id, message_id).await?;
            Ok(Some(Outcome::Done))
        }
        ClientAction::Join { room_id } => {
            chat.join(user, &room_id, handling).await?;
            Ok(Some(Outcome::Done))
        }
        ClientAction::Leave { room_id } => {
            chat.leave(user, &room_id, handling).await?;
            Ok(Some(Outcome::Done))
        }
        ClientAction::History { .. } | ClientAction::Resume { .. } | ClientAction::Ping => {
            Err(Error::bad_request("this action is answered by the gateway"))
        }
    }
}

/// Applies a room or membership action of the REST API (no WebSocket
/// frame): the same `Chat` call the gateway used to make, now on the
/// room's router so that REST and WebSocket actions share one path and one
/// role publishes their events. The REST handler reads what it answers
/// (the new room, the DM room) once this is done.
async fn apply_member_action(
    chat: &Chat,
    user: chat_protocol::Id,
    action: MemberAction,
    handling: Handling,
) -> Result<()> {
    match action {
        MemberAction::Add { room_id, user_id } => {
            chat.add_member(user, &room_id, user_id, handling).await?;
        }
        MemberAction::Kick { room_id, user_id } => {
            chat.kick(user, &room_id, user_id, handling).await?;
        }
        MemberAction::OpenDm { user_id } => {
            chat.open_dm(user, user_id, handling).await?;
        }
        MemberAction::CreateRoom { room_id, request } => {
            chat.create_room(user, room_id, request, handling).await?;
        }
    }
    Ok(())
}

/// The answer for a refused or failed action.
pub fn failed(error: &Error, client_id: Option<String>) -> Outcome {
    if let Some(detail) = error.internal_detail() {
        tracing::error!(%detail, code = error.code().as_str(), "action failed");
    }
    Outcome::Failed {
        code: error.code(),
        message: error.to_string(),
        client_id,
        retry_after_ms: error.retry_after_ms(),
    }
}

/// Sends an answer to its origin gateway (at most once, like every publish).
async fn reply(chat: &Chat, origin: Origin, outcome: Outcome) {
    chat.bus().reply(origin, outcome).await;
}
