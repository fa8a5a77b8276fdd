//! The local index of connections and the fan-out of events to them.
//!
//! The hub knows which local connections belong to which user and receive
//! which room (`index`), and keeps the gateway's subscription to a room's
//! (or user's) channel while at least one local connection needs it
//! (`channels`); a room's, for the reply timeout more after its last
//! local connection stopped receiving it, so that acks riding the room's
//! events still arrive (`Hub::follow_membership`). Every payload the gateway hears goes through the hub:
//! answers to this gateway's requests, events for rooms and users, and
//! account events for every gateway (revoked sessions, whose connections
//! close with 4001 and whose tokens the [`Revocations`] refuse from then
//! on; notices to everyone).
//!
//! The delivery path takes no global lock and never waits: deliveries are
//! spread over one dispatcher per runtime thread by channel (so one room's events
//! keep their order), each looks its targets up in one shard of the index
//! under a read lock and queues the frame, encoded once per codec, to each
//! connection without waiting. While the hub keeps up (its channel's
//! dispatcher has nothing unfinished and little waits behind it), a
//! delivery is dispatched where it is heard instead: the same work with one
//! task wake-up fewer, which at a moderate rate is a wake-up of a parked
//! thread. Subscription changes (a broker round trip) happen in the
//! connection's own task, or in a task of their own for membership changes,
//! never in a dispatcher.
//!
//! Membership is exact (`membership`): a room event whose membership
//! version is newer than a connection's confirmed one waits (in its
//! dispatcher, so the room's order holds) for one read of the room's
//! members, and goes only to the connections still members; the others
//! lose the room and get `room_removed`. When versions match, nothing is
//! read.

mod channels;
mod index;
mod membership;
mod missed_rooms;

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chat_bus::{Delivery, Subscriptions, names};
use chat_persistence::Store;
use chat_protocol::frames::close_code;
use chat_protocol::frames::{ErrorFrame, ServerFrame};
use chat_protocol::internal::{self, ACCOUNTS_CHANNEL, AccountEvent, Event, Outcome, Reply};
use chat_protocol::{Id, RoomId};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TrackedFuture;

use self::channels::Channels;
use self::index::{Change, Closed, Index, Member, Members, RoomMembers};
use self::membership::Checked;
use super::conn::Conn;
use super::encoded::{Encoded, encode};
use crate::metrics;
use crate::relay::Relay;
use crate::revocations::Revocations;

/// Most dispatchers, whatever the runtime's thread count.
const MAX_DISPATCHERS: usize = 16;
/// Deliveries waiting for one dispatcher; when it is full the hand-off
/// waits, and the bus subscription's own bounded buffer takes the strain.
const DISPATCH_QUEUE: usize = 1024;
/// A delivery is dispatched where it is heard only while fewer than this
/// many wait behind it: past that the hub is behind, and spreading the work
/// over the dispatchers (in parallel) beats saving their wake-ups.
const DISPATCH_HERE_BELOW: usize = 4;

/// Local connections and the channels they need.
pub struct Hub {
    next_connection: AtomicU64,
    index: Arc<Index>,
    channels: Arc<Channels>,
    relay: Arc<Relay>,
    /// The connections' tasks, so that a shutdown knows when they are gone.
    sessions: TaskTracker,
    revocations: Arc<Revocations>,
    /// Room members read to confirm connections (see [`membership`]).
    checked: Checked,
    /// Set by [`Hub::close_all`]: how every connection is being closed, a
    /// connection opened afterwards (its upgrade was under way) too.
    closing_all: std::sync::OnceLock<(u16, &'static str)>,
    /// Test builds only (`CHAT_TEST_DROP_ROOM_REMOVED` set): drop every
    /// `room_removed` heard, as a full subscription buffer might, so tests
    /// can show that removals do not depend on it.
    drop_room_removed: bool,
}

impl Hub {
    /// `store`: where room members are re-checked.
    pub fn new(
        subscriptions: Arc<dyn Subscriptions>,
        relay: Arc<Relay>,
        store: Arc<dyn Store>,
    ) -> Hub {
        Hub {
            next_connection: AtomicU64::new(1),
            index: Arc::new(Index::new()),
            channels: Arc::new(Channels::new(subscriptions)),
            relay,
            sessions: TaskTracker::new(),
            revocations: Arc::new(Revocations::new()),
            checked: Checked::new(store),
            closing_all: std::sync::OnceLock::new(),
            drop_room_removed: cfg!(debug_assertions)
                && std::env::var_os("CHAT_TEST_DROP_ROOM_REMOVED").is_some(),
        }
    }

    /// Wraps a connection's task, so that [`Hub::drained`] waits for it.
    pub fn track<F: std::future::Future>(&self, session: F) -> TrackedFuture<F> {
        self.sessions.track_future(session)
    }

    /// Resolves once every tracked connection task has ended; call it after
    /// [`Hub::close_all`], when no new connection can arrive.
    pub async fn drained(&self) {
        self.sessions.close();
        self.sessions.wait().await;
    }

    /// Records the revocations this hub hears in `revocations` (the ones
    /// the gateway's tokens are checked against).
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Hub {
        self.revocations = revocations;
        self
    }

    /// A fresh connection id, unique within this gateway.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Subscribes this gateway's reply channel and the accounts channel.
    pub async fn start(&self) -> chat_bus::Result<()> {
        self.channels.pin(&self.relay.reply_channel()).await?;
        self.channels.pin(ACCOUNTS_CHANNEL).await
    }

    /// Adds an opening connection. From now on it follows its user's
    /// membership changes (a room it is removed from before [`Hub::attach`]
    /// is not attached), but receives nothing until it goes live. Once this
    /// returns, the user's channel is subscribed: read the user's rooms
    /// after it, so that no removal falls between the read and the index.
    pub async fn open(&self, conn: Arc<Conn>) {
        let user = conn.user;
        // Indexed first: `close_all` records its close, and a revocation
        // its session, before either reads the index, so either that finds
        // this connection or this finds the close or the revocation.
        let change = self.index.open(conn.clone());
        if let Some(&(code, reason)) = self.closing_all.get() {
            conn.close_with(code, reason);
        }
        self.close_if_revoked(&conn);
        if change == Change::Subscription {
            self.reconcile_user(user).await;
        }
    }

    /// Gives an opened connection the rooms it was found to belong to.
    /// Answers those it receives: `rooms` minus any it was removed from
    /// since [`Hub::open`]. Once this returns, their channels are subscribed.
    pub async fn attach(&self, id: u64, rooms: &[RoomId]) -> Vec<RoomId> {
        let attached = self.index.attach(id, rooms, self.checked.tick());
        for (room, change) in &attached {
            if *change == Change::Subscription {
                self.reconcile_room(*room).await;
            }
        }
        attached.into_iter().map(|(room, _)| room).collect()
    }

    /// Removes a connection and the subscriptions nobody needs any more.
    pub async fn unregister(&self, id: u64) {
        let Some(Closed {
            user,
            user_change,
            rooms,
        }) = self.index.close(id)
        else {
            return;
        };
        for (room, change) in rooms {
            if change == Change::Subscription {
                self.reconcile_room(room).await;
            }
        }
        if user_change == Change::Subscription {
            self.reconcile_user(user).await;
        }
    }

    /// Reloads the revoked sessions from `store` every `interval`, forever
    /// (run it as a role task, which stops it), and closes the connections
    /// of the sessions revoked: those whose announcement this hub did not
    /// hear, and any that opened while its revocation was on its way.
    pub async fn refresh_revocations(self: Arc<Self>, store: Arc<dyn Store>, interval: Duration) {
        let mut every = tokio::time::interval(interval);
        every.tick().await;
        loop {
            every.tick().await;
            match self.revocations.reload(&*store).await {
                Ok(()) => self.close_revoked(),
                Err(error) => {
                    tracing::warn!(%error, "cannot reload revoked sessions; keeping the ones known");
                }
            }
        }
    }

    /// Closes the connections of revoked sessions with 4001.
    fn close_revoked(&self) {
        for conn in self.index.all() {
            self.close_if_revoked(&conn);
        }
    }

    /// Closes `conn` with 4001 if its session is revoked.
    fn close_if_revoked(&self, conn: &Conn) {
        if conn
            .session
            .is_some_and(|session| self.revocations.is_revoked(session))
        {
            conn.close_with(close_code::TOKEN_EXPIRED, "session revoked");
        }
    }

    /// Closes every connection (graceful shutdown), and every connection
    /// opened from now on: an upgrade already under way when the drain
    /// began gets its close too, not `ready` from a stopping gateway.
    pub async fn close_all(&self, code: u16, reason: &'static str) {
        let _ = self.closing_all.set((code, reason));
        for conn in self.index.all() {
            conn.close_with(code, reason);
        }
    }

    /// Whether this gateway hears `room`'s events for connection `id` now:
    /// the connection receives the room and its channel is subscribed. A
    /// `send` of such a connection has its `ack` answered from the
    /// message's room event ([`Origin::hears_room`]).
    ///
    /// [`Origin::hears_room`]: chat_protocol::internal::Origin::hears_room
    pub fn hears(&self, id: u64, room: &RoomId) -> bool {
        self.index
            .with_room(room, |members| members.is_some_and(|m| m.contains_key(&id)))
            && self.channels.surely_subscribed(&names::room_channel(room))
    }

    /// Every local connection's user and id.
    pub async fn connections_snapshot(&self) -> Vec<(Id, u64)> {
        self.index.all().iter().map(|c| (c.user, c.id)).collect()
    }

    /// Whether connection `id` is open here and not closing.
    pub fn is_open(&self, id: u64) -> bool {
        self.index.conn(id).is_some_and(|conn| !conn.closing())
    }

    /// How many connections are open here.
    pub async fn connections(&self) -> usize {
        self.index.len()
    }

    /// Passes everything this gateway hears to where it belongs, until the
    /// subscription ends. Deliveries are spread over dispatchers by channel:
    /// one channel's deliveries keep their order, different channels' are
    /// dispatched in parallel. A delivery whose dispatcher has finished
    /// everything it was given is dispatched here when little waits behind
    /// it: nothing of its channel can be in flight then, so the order holds.
    pub async fn run(self: Arc<Self>, mut deliveries: mpsc::Receiver<Delivery>) {
        // More dispatchers than runtime threads only adds wake-ups: one
        // thread runs them in turn anyway.
        let threads = tokio::runtime::Handle::current().metrics().num_workers();
        let count = threads.clamp(1, MAX_DISPATCHERS);
        let mut dispatchers = Vec::with_capacity(count);
        let mut handles = Vec::with_capacity(count);
        for _ in 0..count {
            let (queue, mut receiver) = mpsc::channel::<Job>(DISPATCH_QUEUE);
            let unfinished = Arc::new(AtomicUsize::new(0));
            let hub = self.clone();
            let done = unfinished.clone();
            handles.push(tokio::spawn(async move {
                while let Some(job) = receiver.recv().await {
                    let confirmation = match job {
                        Job::Dispatch(delivery) => hub.dispatch(delivery),
                        Job::Confirm(confirmation) => Some(*confirmation),
                    };
                    if let Some(confirmation) = confirmation {
                        hub.confirm_and_deliver(confirmation).await;
                    }
                    done.fetch_sub(1, Ordering::Release);
                }
            }));
            dispatchers.push(Dispatcher { queue, unfinished });
        }
        let hasher = RandomState::new();
        while let Some(delivery) = deliveries.recv().await {
            metrics::BUS_DROPPED.set(self.channels.dropped() as i64);
            let dispatcher = if count == 1 {
                &dispatchers[0]
            } else {
                &dispatchers[(hasher.hash_one(&*delivery.channel) % count as u64) as usize]
            };
            let job = if dispatcher.unfinished.load(Ordering::Acquire) == 0
                && deliveries.len() < DISPATCH_HERE_BELOW
            {
                match self.dispatch(delivery) {
                    None => continue,
                    Some(confirmation) => Job::Confirm(Box::new(confirmation)),
                }
            } else {
                Job::Dispatch(delivery)
            };
            dispatcher.unfinished.fetch_add(1, Ordering::Release);
            if dispatcher.queue.send(job).await.is_err() {
                break;
            }
        }
        drop(dispatchers);
        for handle in handles {
            if let Err(error) = handle.await {
                tracing::error!(%error, "hub dispatcher failed");
            }
        }
    }

    /// Does everything a delivery needs that does not wait; answers a room
    /// event's connections that must be confirmed first (a membership
    /// version newer than theirs), for [`Hub::confirm_and_deliver`].
    fn dispatch(&self, delivery: Delivery) -> Option<Confirmation> {
        chat_bus::metrics::RECEIVED
            .with_label_values(&[chat_bus::metrics::kind::PUBSUB])
            .inc();
        let channel = &*delivery.channel;
        if let Some(room) = channel.strip_prefix("room:") {
            let (Ok(room), Some(event)) = (room.parse::<RoomId>(), decode::<Event>(&delivery))
            else {
                return None;
            };
            let unconfirmed = self
                .index
                .with_room(&room, |members| fan_out_room(members, &event));
            self.answer_from_event(&event);
            if !unconfirmed.is_empty() {
                return Some(Confirmation {
                    room,
                    event,
                    unconfirmed,
                });
            }
        } else if let Some(user) = channel.strip_prefix("user:") {
            let (Ok(user), Some(event)) = (user.parse::<Id>(), decode::<Event>(&delivery)) else {
                return None;
            };
            if self.drop_room_removed && matches!(event.frame, ServerFrame::RoomRemoved { .. }) {
                return None;
            }
            self.follow_membership_and_tell(user, &event);
        } else if channel == ACCOUNTS_CHANNEL {
            if let Some(event) = decode::<AccountEvent>(&delivery) {
                self.on_account_event(event);
            }
        } else {
            // This gateway's channel: a read's answers as a list, or a
            // lone one. The list is tried first: a lone reply (a map) fails
            // it at its first byte, so neither form is parsed twice.
            let replies = match internal::decode::<Vec<Reply>>(&delivery.payload) {
                Ok(replies) => replies,
                Err(_) => decode::<Reply>(&delivery).into_iter().collect(),
            };
            for reply in replies {
                self.on_reply(reply);
            }
        }
        None
    }

    /// The last hop of an action's trace: its answer reaching the gateway
    /// that asked.
    fn on_reply(&self, reply: Reply) {
        let span = tracing::info_span!(
            "gateway.reply",
            outcome = outcome_label(&reply.outcome),
            message_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        chat_bus::trace::follow(&span, reply.origin.trace.as_deref());
        let _entered = span.enter();
        if let Outcome::Posted(message) = &reply.outcome {
            span.record("message_id", message.id.0);
            if reply.origin.connection.is_some() {
                metrics::observe_since(&metrics::ACK_SECONDS, message.created_at);
            }
        }
        if let Some(reply) = self.relay.complete(reply) {
            self.answer_connection(reply);
        }
    }

    /// Answers the `ack` that rides a message's room event, if the send
    /// came from here ([`Event::ack`]), as if a reply had brought it.
    fn answer_from_event(&self, event: &Event) {
        if let (Some(origin), ServerFrame::Message { message }) = (&event.ack, &event.frame)
            && origin.gateway == self.relay.gateway()
        {
            self.on_reply(Reply {
                origin: origin.clone(),
                outcome: Outcome::Posted(message.clone()),
            });
        }
    }

    /// Refuses revoked sessions from now on and closes their connections;
    /// passes notices to every live connection.
    fn on_account_event(&self, event: AccountEvent) {
        match event {
            AccountEvent::Revoked(revoked) => {
                self.revocations.add(&revoked);
                metrics::REVOCATIONS.set(self.revocations.len() as i64);
                for revocation in &revoked {
                    self.index.with_user(&revocation.user, |members| {
                        for conn in members.into_iter().flat_map(Members::values) {
                            self.close_if_revoked(conn);
                        }
                    });
                }
            }
            AccountEvent::Notice { content } => {
                let frame = ServerFrame::Notice {
                    content,
                    room_id: None,
                };
                let sent = metrics::FRAMES_OUT.with_label_values(&[frame.kind()]);
                let encoded = Encoded::new(&frame);
                for conn in self.index.all() {
                    if conn.is_live()
                        && let Some(message) = encoded.message(conn.codec)
                        && conn.push_live(message)
                    {
                        sent.inc();
                    }
                }
            }
        }
    }

    /// Passes a room event to the connections that were not confirmed at
    /// its membership version, once the room's members (read at most once
    /// per room and version here) confirm them; the others are removed from
    /// the room. If the store cannot answer, they do not get this event.
    async fn confirm_and_deliver(&self, confirmation: Confirmation) {
        let Confirmation {
            room,
            event,
            unconfirmed,
        } = confirmation;
        let event = &event;
        let Some(version) = event.membership_version else {
            return;
        };
        let after = unconfirmed.iter().map(|m| m.since).max().unwrap_or(0);
        let Some(snapshot) = self.checked.members(&room, version, after).await else {
            return;
        };
        let mut confirmed = Vec::with_capacity(unconfirmed.len());
        let mut gone = HashSet::new();
        for member in unconfirmed {
            if snapshot.members.contains(&member.conn.user) {
                member.confirm(version);
                confirmed.push(member.conn.clone());
            } else {
                gone.insert(member.conn.user);
            }
        }
        for user in gone {
            metrics::MEMBERSHIP_CORRECTIONS.inc();
            tracing::info!(%user, %room, "not a member any more; room removed from its connections");
            let removed = chat_bus::new_event(ServerFrame::RoomRemoved { room_id: room }, None);
            self.follow_membership_and_tell(user, &removed);
        }
        fan_out(confirmed.iter(), event, false);
    }

    /// Passes an event of `user`'s channel on to their connections, after
    /// following the membership change it may bring. A `room_removed` goes
    /// only to the connections that were receiving the room: one the
    /// gateway already removed on its own (it heard a room event at a
    /// membership version that no longer counts the user, and told it
    /// then) would otherwise hear it twice. A `room_added` likewise goes
    /// only to the connections that gain the room (one may have found it
    /// already: see [`Hub::follow_missed_rooms`]).
    fn follow_membership_and_tell(&self, user: Id, event: &Event) {
        match self.follow_membership(user, &event.frame) {
            Some(changed) => fan_out(changed.iter(), event, true),
            None => self.index.with_user(&user, |members| {
                fan_out(members.into_iter().flat_map(|m| m.values()), event, true)
            }),
        }
    }

    /// `room_added` / `room_removed` change what the user's connections
    /// receive, at once, on every device. The index changes here; the
    /// subscription follows in a task of its own. Answers the connections
    /// whose rooms changed: that gained the room, or that were receiving
    /// it.
    fn follow_membership(&self, user: Id, frame: &ServerFrame) -> Option<Vec<Arc<Conn>>> {
        // The channel of a room this gateway stops receiving outlives the
        // removal by the reply timeout: the acks of sends forwarded into the
        // room before it ride the room's `message` events
        // (`Origin::hears_room`), which the persistence worker publishes
        // after its commit, while the router answered the removal at once.
        // Nothing from the room reaches a connection meanwhile: the index no
        // longer gives it to anyone here.
        let (room, change, linger, changed) = match frame {
            ServerFrame::RoomAdded { room } => {
                let id = room.room.id;
                let since = self.checked.tick();
                let (change, added) = self.index.add_room_for_user(user, id, since);
                (id, change, Duration::ZERO, Some(added))
            }
            ServerFrame::RoomRemoved { room_id } => {
                let (change, receiving) = self.index.remove_room_for_user(user, *room_id);
                (
                    *room_id,
                    change,
                    self.relay.reply_timeout(),
                    Some(receiving),
                )
            }
            _ => return None,
        };
        if change == Change::Subscription {
            let (index, channels) = (self.index.clone(), self.channels.clone());
            tokio::spawn(async move {
                if !linger.is_zero() {
                    tokio::time::sleep(linger).await;
                }
                let channel = names::room_channel(&room);
                channels.reconcile(&channel, || index.has_room(&room)).await;
            });
        }
        changed
    }

    /// Turns a router's or persistence worker's answer into the frame the
    /// connection that asked is waiting for.
    fn answer_connection(&self, reply: Reply) {
        let Some(conn_id) = reply.origin.connection else {
            return;
        };
        let Some(conn) = self.index.conn(conn_id) else {
            return;
        };
        let frame = match reply.outcome {
            Outcome::Posted(message) => ServerFrame::Ack {
                reference: reply.origin.reference,
                client_id: message.client_id,
                message_id: message.id,
                created_at: message.created_at,
            },
            Outcome::Done => return,
            Outcome::Failed {
                code,
                message,
                client_id,
                retry_after_ms,
            } => ServerFrame::Error(ErrorFrame {
                code,
                message,
                reference: reply.origin.reference,
                client_id,
                retry_after_ms,
            }),
        };
        metrics::FRAMES_OUT.with_label_values(&[frame.kind()]).inc();
        if let Some(message) = encode(&frame, conn.codec) {
            conn.push_live(message);
        }
    }

    async fn reconcile_room(&self, room: RoomId) {
        let index = &self.index;
        let channel = names::room_channel(&room);
        self.channels
            .reconcile(&channel, || index.has_room(&room))
            .await;
    }

    async fn reconcile_user(&self, user: Id) {
        let index = &self.index;
        let channel = names::user_channel(&user);
        self.channels
            .reconcile(&channel, || index.has_user(&user))
            .await;
    }
}

/// One dispatcher task's queue, and how many of the jobs given to it are
/// not finished yet (queued or under way).
struct Dispatcher {
    queue: mpsc::Sender<Job>,
    unfinished: Arc<AtomicUsize>,
}

/// What a dispatcher is given: a delivery to dispatch, or the rest of one
/// already dispatched where it was heard, which waits for a membership
/// check.
enum Job {
    Dispatch(Delivery),
    /// Boxed: rare, and much larger than a delivery.
    Confirm(Box<Confirmation>),
}

/// A room event and the room's connections that must be confirmed members
/// at its membership version before they get it.
struct Confirmation {
    room: RoomId,
    event: Event,
    unconfirmed: Vec<Arc<Member>>,
}

/// Hands a room event to the room's connections confirmed at its
/// membership version; answers the others, to be confirmed first.
fn fan_out_room(members: Option<&RoomMembers>, event: &Event) -> Vec<Arc<Member>> {
    let Some(members) = members else {
        return Vec::new();
    };
    let mut unconfirmed = Vec::new();
    let confirmed = members.values().filter_map(|member| {
        if member.confirmed_for(event.membership_version) {
            Some(&member.conn)
        } else {
            unconfirmed.push(member.clone());
            None
        }
    });
    fan_out(confirmed, event, true);
    unconfirmed
}

/// Hands an event to each live target connection once, encoding it at most
/// once per codec. Never waits: a connection whose queue is full is closed
/// as too slow. `observe`: count the event in the delivery-time histogram
/// (once per event, not per call).
fn fan_out<'a>(targets: impl Iterator<Item = &'a Arc<Conn>>, event: &Event, observe: bool) {
    let Event {
        id,
        except_user,
        frame,
        trace,
        ..
    } = event;
    // The fan-out's hop of the trace that caused the event, if it has one
    // (no span at all otherwise: this is the hot path).
    let span = trace.as_deref().map(|trace| {
        let span = tracing::info_span!(
            "gateway.fan_out",
            event = frame.kind(),
            connections = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        chat_bus::trace::follow(&span, Some(trace));
        span
    });
    let _entered = span.as_ref().map(tracing::Span::enter);
    if observe && let ServerFrame::Message { message } = frame {
        metrics::observe_since(&metrics::DELIVERY_SECONDS, message.created_at);
    }
    let sent = metrics::FRAMES_OUT.with_label_values(&[frame.kind()]);
    let encoded = Encoded::new(frame);
    let mut count = 0;
    for conn in targets {
        if Some(conn.user) == *except_user || !conn.is_live() || !conn.first_sight(*id) {
            continue;
        }
        if let Some(message) = encoded.message(conn.codec)
            && conn.push_live(message)
        {
            count += 1;
        }
    }
    sent.inc_by(count);
    if let Some(span) = &span {
        span.record("connections", count);
    }
}

/// How an action ended, as a span field: the `result` its router
/// counted it under.
fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Posted(_) | Outcome::Done => chat_router::metrics::RESULT_OK,
        Outcome::Failed { code, .. } => code.as_str(),
    }
}

fn decode<T: serde::de::DeserializeOwned>(delivery: &Delivery) -> Option<T> {
    match internal::decode(&delivery.payload) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::error!(%error, channel = %delivery.channel, "undecodable bus payload dropped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use chat_bus::Bus;
    use chat_persistence::sqlite::{SqliteOptions, SqliteStore};
    use chat_protocol::Codec;

    use super::*;
    use crate::ws::conn::CloseReason;

    /// A connection that opens after the drain began (its upgrade was under
    /// way) is closed like the others, with the drain's code.
    #[tokio::test]
    async fn a_connection_opened_after_the_drain_began_is_closed_too() {
        let bus = Bus::local(64);
        let subscription = bus.pubsub.subscribe(64).await.unwrap();
        let relay = Arc::new(Relay::new("gw-test".into(), bus, Duration::from_secs(1), 1));
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("chat.db"), SqliteOptions::default());
        let hub = Hub::new(subscription.control, relay, Arc::new(store.unwrap()));
        hub.close_all(close_code::RESTARTING, "server restarting")
            .await;

        let (conn, receivers) = Conn::new(hub.next_connection_id(), Id(7), Codec::Json, 8);
        hub.open(Arc::new(conn)).await;
        let closed = *receivers.close.borrow();
        let restarting = CloseReason {
            code: close_code::RESTARTING,
            reason: "server restarting",
        };
        assert_eq!(closed, Some(restarting));
    }
}
