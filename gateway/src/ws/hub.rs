//! The local index of connections and the fan-out of events to them.
//!
//! The hub knows which local connections belong to which user and receive
//! which room, and keeps the gateway's subscription to a room's (or user's)
//! channel exactly while at least one local connection needs it. Every
//! payload the gateway hears goes through [`Hub::dispatch`]: answers to this
//! gateway's requests, and events for rooms and users.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chat_bus::{Delivery, Subscriptions, names};
use chat_protocol::frames::{ErrorFrame, ServerFrame};
use chat_protocol::internal::{self, Event, Outcome, Reply};
use chat_protocol::{Id, RoomId};
use tokio::sync::{Mutex, mpsc};

use super::conn::Conn;
use super::encoded::{Encoded, encode};
use crate::metrics;
use crate::relay::Relay;

/// Local connections and the channels they need.
pub struct Hub {
    next_connection: AtomicU64,
    index: Mutex<Index>,
    subscriptions: Arc<dyn Subscriptions>,
    relay: Arc<Relay>,
}

#[derive(Default)]
struct Index {
    conns: HashMap<u64, Arc<Conn>>,
    by_user: HashMap<Id, HashSet<u64>>,
    by_room: HashMap<RoomId, HashSet<u64>>,
    rooms_of_conn: HashMap<u64, HashSet<RoomId>>,
}

impl Hub {
    pub fn new(subscriptions: Arc<dyn Subscriptions>, relay: Arc<Relay>) -> Hub {
        Hub {
            next_connection: AtomicU64::new(1),
            index: Mutex::default(),
            subscriptions,
            relay,
        }
    }

    /// A fresh connection id, unique within this gateway.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Subscribes this gateway's reply channel.
    pub async fn start(&self) -> chat_bus::Result<()> {
        self.subscriptions.add(&self.relay.reply_channel()).await
    }

    /// Adds a connection that receives `rooms` and its user's events.
    /// Subscription changes happen under the index lock, so that a channel
    /// is never left unsubscribed while a local connection needs it.
    pub async fn register(&self, conn: Arc<Conn>, rooms: &[RoomId]) {
        let mut index = self.index.lock().await;
        let (id, user) = (conn.id, conn.user);
        index.conns.insert(id, conn);
        let user_conns = index.by_user.entry(user).or_default();
        user_conns.insert(id);
        if user_conns.len() == 1 {
            self.subscribe(&names::user_channel(&user)).await;
        }
        for room in rooms {
            self.add_room_locked(&mut index, id, *room).await;
        }
    }

    /// Removes a connection and the subscriptions nobody needs any more.
    pub async fn unregister(&self, id: u64) {
        let mut index = self.index.lock().await;
        let Some(conn) = index.conns.remove(&id) else {
            return;
        };
        for room in index.rooms_of_conn.remove(&id).unwrap_or_default() {
            self.remove_room_locked(&mut index, id, room).await;
        }
        if let Some(user_conns) = index.by_user.get_mut(&conn.user) {
            user_conns.remove(&id);
            if user_conns.is_empty() {
                index.by_user.remove(&conn.user);
                self.unsubscribe(&names::user_channel(&conn.user)).await;
            }
        }
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close_all(&self, code: u16, reason: &'static str) {
        for conn in self.index.lock().await.conns.values() {
            conn.close_with(code, reason);
        }
    }

    /// Every local connection's user and id.
    pub async fn connections_snapshot(&self) -> Vec<(Id, u64)> {
        let index = self.index.lock().await;
        index.conns.values().map(|c| (c.user, c.id)).collect()
    }

    /// How many connections are open here.
    pub async fn connections(&self) -> usize {
        self.index.lock().await.conns.len()
    }

    /// Passes everything this gateway hears to where it belongs, until the
    /// subscription ends.
    pub async fn run(&self, mut deliveries: mpsc::Receiver<Delivery>) {
        while let Some(delivery) = deliveries.recv().await {
            self.dispatch(delivery).await;
            metrics::BUS_DROPPED.set(self.subscriptions.dropped() as i64);
        }
    }

    async fn dispatch(&self, delivery: Delivery) {
        let channel = &*delivery.channel;
        if let Some(room) = channel.strip_prefix("room:") {
            let (Ok(room), Some(event)) = (room.parse::<RoomId>(), decode::<Event>(&delivery))
            else {
                return;
            };
            let targets = self.conns_of_room(&room).await;
            fan_out(&targets, event);
        } else if let Some(user) = channel.strip_prefix("user:") {
            let (Ok(user), Some(event)) = (user.parse::<Id>(), decode::<Event>(&delivery)) else {
                return;
            };
            self.follow_membership(user, &event.frame).await;
            let targets = self.conns_of_user(user).await;
            fan_out(&targets, event);
        } else if let Some(reply) = decode::<Reply>(&delivery)
            && let Some(reply) = self.relay.complete(reply)
        {
            self.answer_connection(reply).await;
        }
    }

    /// `room_added` / `room_removed` change what the user's connections
    /// receive, at once, on every device.
    async fn follow_membership(&self, user: Id, frame: &ServerFrame) {
        let mut index = self.index.lock().await;
        let conns: Vec<u64> = index
            .by_user
            .get(&user)
            .map(|c| c.iter().copied().collect())
            .unwrap_or_default();
        match frame {
            ServerFrame::RoomAdded { room } => {
                for id in conns {
                    self.add_room_locked(&mut index, id, room.room.id).await;
                }
            }
            ServerFrame::RoomRemoved { room_id } => {
                for id in conns {
                    self.remove_room_locked(&mut index, id, *room_id).await;
                }
            }
            _ => {}
        }
    }

    /// Turns a router's or persistence worker's answer into the frame the
    /// connection that asked is waiting for.
    async fn answer_connection(&self, reply: Reply) {
        let Some(conn_id) = reply.origin.connection else {
            return;
        };
        let Some(conn) = self.index.lock().await.conns.get(&conn_id).cloned() else {
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

    async fn conns_of_room(&self, room: &RoomId) -> Vec<Arc<Conn>> {
        let index = self.index.lock().await;
        index.resolve(index.by_room.get(room))
    }

    async fn conns_of_user(&self, user: Id) -> Vec<Arc<Conn>> {
        let index = self.index.lock().await;
        index.resolve(index.by_user.get(&user))
    }

    async fn add_room_locked(&self, index: &mut Index, conn: u64, room: RoomId) {
        if !index.rooms_of_conn.entry(conn).or_default().insert(room) {
            return;
        }
        let room_conns = index.by_room.entry(room).or_default();
        room_conns.insert(conn);
        if room_conns.len() == 1 {
            self.subscribe(&names::room_channel(&room)).await;
        }
    }

    async fn remove_room_locked(&self, index: &mut Index, conn: u64, room: RoomId) {
        if let Some(rooms) = index.rooms_of_conn.get_mut(&conn) {
            rooms.remove(&room);
        }
        let Some(room_conns) = index.by_room.get_mut(&room) else {
            return;
        };
        if room_conns.remove(&conn) && room_conns.is_empty() {
            index.by_room.remove(&room);
            self.unsubscribe(&names::room_channel(&room)).await;
        }
    }

    async fn subscribe(&self, channel: &str) {
        if let Err(error) = self.subscriptions.add(channel).await {
            tracing::warn!(%error, channel, "cannot subscribe");
        }
    }

    async fn unsubscribe(&self, channel: &str) {
        if let Err(error) = self.subscriptions.remove(channel).await {
            tracing::warn!(%error, channel, "cannot unsubscribe");
        }
    }
}

impl Index {
    /// The connections of a set of connection ids.
    fn resolve(&self, ids: Option<&HashSet<u64>>) -> Vec<Arc<Conn>> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.conns.get(id).cloned())
            .collect()
    }
}

/// Hands an event to each target connection once, encoding it at most once
/// per codec.
fn fan_out(targets: &[Arc<Conn>], event: Event) {
    let Event {
        id,
        except_user,
        frame,
    } = event;
    if let ServerFrame::Message { message } = &frame {
        let age_ms = chat_protocol::id::now_ms().saturating_sub(message.created_at);
        metrics::DELIVERY_SECONDS.observe(age_ms as f64 / 1000.0);
    }
    let sent = metrics::FRAMES_OUT.with_label_values(&[frame.kind()]);
    let encoded = Encoded::new(frame);
    for conn in targets {
        if Some(conn.user) == except_user || !conn.first_sight(id) {
            continue;
        }
        if let Some(message) = encoded.message(conn.codec)
            && conn.push_live(message)
        {
            sent.inc();
        }
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
