//! Rooms a connection should receive but was never told about.
//!
//! A user's connections learn of a room they joined (created it, were
//! added, were sent a DM's first message) only from the `room_added` event
//! on the user's channel, and pub/sub is at most once: the event is lost
//! when the gateway's subscription drops deliveries, reconnects to Redis,
//! or could not subscribe the user's channel. Nothing else gives a live
//! connection a new room, so it stayed deaf to the room, and the client
//! unaware of it, until it reconnected.
//!
//! A connection also misses the `room_added` of a room it is given while
//! opening, after its room list was read and before it went live: the
//! event goes nowhere, and `ready` does not list the room. Its session
//! tells it of such rooms once it is live
//! ([`Hub::tell_rooms_given_while_opening`]).
//!
//! And whenever this gateway may have missed events (`Channels::losses`
//! grew), the hub reads the rooms of every user connected here again and
//! gives each connection the rooms it lacks, with the `room_added` it
//! missed; on the way it reconciles the user's channel and each room's,
//! which retries a SUBSCRIBE the broker refused. A restored subscription
//! counts only once the broker confirmed every channel, so the read, begun
//! after, holds every room whose event could have been lost. A room the
//! user leaves between the read and the index is caught like any stale
//! membership (`membership`): its connections join at a fresh tick,
//! unconfirmed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::frames::ServerFrame;
use chat_protocol::internal::Event;
use chat_protocol::{Id, RoomId};
use chat_router::{Chat, Error};
use futures_util::StreamExt;

use super::{Hub, fan_out};
use crate::metrics;
use crate::ws::conn::Conn;

/// Users whose rooms are read at once during a pass.
const USERS_AT_ONCE: usize = 16;

impl Hub {
    /// Every `interval`, if this gateway may have missed events since the
    /// last look, gives its connections the rooms they lack; forever (run
    /// it as a role task, which stops it). A pass that could not read
    /// everything is made again at the next tick.
    pub async fn follow_missed_rooms(self: Arc<Self>, chat: Chat, interval: Duration) {
        let mut seen = self.channels.losses();
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let losses = self.channels.losses();
            if losses != seen && self.find_missed_rooms(&chat).await {
                seen = losses;
            }
        }
    }

    /// Tells `conn`, just gone live, of the rooms it was given while
    /// opening that its room list (and so `ready`) did not hold. A room
    /// the user left again meanwhile is not told (its removal took it from
    /// the index, or the store no longer counts the user a member).
    ///
    /// The reads run in a task of their own, rarely started: awaited in
    /// the connection's task, their state would take room in every
    /// connection's task for its whole life.
    pub fn tell_rooms_given_while_opening(&self, chat: &Chat, conn: &Arc<Conn>) {
        let untold = self.index.take_untold(conn.id);
        if !untold.is_empty() {
            tokio::spawn(tell_rooms_added(chat.clone(), conn.clone(), untold));
        }
    }

    /// One pass over every user connected here; answers whether every
    /// read succeeded.
    pub(super) async fn find_missed_rooms(&self, chat: &Chat) -> bool {
        let users: HashSet<Id> = self.index.all().iter().map(|conn| conn.user).collect();
        futures_util::stream::iter(users)
            .map(|user| self.find_missed_rooms_of(chat, user))
            .buffer_unordered(USERS_AT_ONCE)
            .fold(true, |all, done| async move { all && done })
            .await
    }

    async fn find_missed_rooms_of(&self, chat: &Chat, user: Id) -> bool {
        // The user's channel first, so that a room joined after the read
        // below comes with an event that reaches this gateway.
        self.reconcile_user(user).await;
        let rooms = match chat.store().rooms_of(user).await {
            Ok(rooms) => rooms,
            Err(error) => {
                tracing::warn!(%error, %user, "cannot read the user's rooms to find missed ones");
                return false;
            }
        };
        let mut complete = true;
        for room in rooms.iter().map(|room| room.room.id) {
            if self.index.misses_room(user, &room) {
                complete &= self.give_missed_room(chat, user, room).await;
            } else {
                // Subscribed already, this costs a lookup; refused earlier,
                // it asks again.
                self.reconcile_room(room).await;
            }
        }
        complete
    }

    /// Gives `room` to the connections of `user` that lack it, and tells
    /// them, once the store confirms the user is still a member.
    async fn give_missed_room(&self, chat: &Chat, user: Id, room: RoomId) -> bool {
        let event = match room_added(chat, user, room).await {
            Ok(event) => event,
            // Gone since the list was read: nothing was missed.
            Err(Error::Forbidden(_) | Error::NotFound(_)) => return true,
            Err(error) => {
                tracing::warn!(%error, %user, %room, "cannot read a missed room");
                return false;
            }
        };
        let (_, added) = self
            .index
            .add_room_for_user(user, room, self.checked.tick());
        // Told once subscribed: from then on the room's events reach them.
        self.reconcile_room(room).await;
        let live = added.iter().filter(|conn| conn.is_live()).count();
        metrics::MISSED_ROOMS_FOUND.inc_by(live as u64);
        tracing::info!(%user, %room, connections = live, "room found missing from connections");
        fan_out(added.iter(), &event, false);
        true
    }
}

/// `room_added` for `user`, read now: `forbidden` or `not_found` if they
/// are no longer a member.
async fn room_added(chat: &Chat, user: Id, room: RoomId) -> chat_router::Result<Event> {
    let summary = chat.room_summary(user, &room).await?;
    Ok(chat_bus::new_event(
        ServerFrame::RoomAdded { room: summary },
        None,
    ))
}

/// Sends `conn` the `room_added` of each of `rooms` the user is still a
/// member of.
async fn tell_rooms_added(chat: Chat, conn: Arc<Conn>, rooms: Vec<RoomId>) {
    for room in rooms {
        match room_added(&chat, conn.user, room).await {
            Ok(event) => fan_out(std::iter::once(&conn), &event, false),
            Err(error) => {
                tracing::info!(%error, user = %conn.user, %room, "room given while opening not told");
            }
        }
    }
}
