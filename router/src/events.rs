//! Publishing what happened, in one place: every event the service sends
//! (`message`, `mention`, member, room, read, edit, delete, typing and
//! presence events) leaves through this module, on room channels (every
//! member's connections) and user channels (every device of one user).
//!
//! Two stages publish, both in the router crate: the router (through
//! [`Chat`], for the actions it applies) and the persistence writer stage
//! ([`message_events`], once a message is durable, gathered in an
//! [`Outbox`] so that a batch's events leave in one round trip). The persistence crate
//! only stores. Delivery is at most once; see
//! [`chat_bus::Bus::publish_event`].
//!
//! Room events carry the room's membership version, read from the store
//! when they are published, or for messages with their write
//! ([`Event::membership_version`]): a gateway that missed a `room_removed`
//! (at-most-once pub/sub) learns from the next room event that its view is
//! stale, and re-checks before passing it on. So a removal does not rest on
//! one event arriving.
//!
//! Event ids are derived ([`event_ids`]): an event published again, by an
//! entry handled again or a batch written again, has its first publish's
//! id, and gateways pass it on to a connection once.

use chat_bus::{Outbox, names};
use chat_persistence::Store;
use chat_protocol::frames::ServerFrame;
use chat_protocol::internal::{Event, Origin};
use chat_protocol::{Id, Message, Role, Room, RoomId, RoomSummary};

use crate::event_ids::{self, OfMessage};
use crate::{Chat, Result};

/// A room's membership version, for its events; `None` (logged) when it
/// cannot be read: the events then leave unchecked, as before versions.
pub(crate) async fn membership_version(store: &dyn Store, room: &RoomId) -> Option<u64> {
    match store.membership_version(room).await {
        Ok(version) => Some(version),
        Err(error) => {
            tracing::warn!(%error, %room, "membership version unavailable; event sent unchecked");
            None
        }
    }
}

/// Queues a durable message for its room (and, for a DM that it just
/// opened, for both users directly), and a `mention` and a `notification`
/// (the stored one, written with the message) for each mentioned user; they
/// leave with the outbox ([`chat_bus::Bus::send`]).
/// `membership_version`: the room's, as the write of the message answered
/// it ([`Store::insert_messages`]). `ack`: the send's origin when its
/// gateway answers the `ack` from the room's event ([`Event::ack`]).
pub fn message_events(
    outbox: &mut Outbox,
    message: &Message,
    also_to_users: &[Id],
    membership_version: Option<u64>,
    ack: Option<Origin>,
) {
    // The message id as the event id: if a writer dies after publishing
    // and before acknowledging, the partition's next holder publishes the
    // message again under the same event id, and gateways pass it on once.
    let event = Event {
        id: message.id.0,
        except_user: None,
        membership_version,
        frame: ServerFrame::Message {
            message: message.clone(),
        },
        trace: chat_bus::trace::current(),
        ack,
    };
    outbox.event(names::room_channel(&message.room_id), &event);
    // The ack rides the room's event only: the channel its gateway said
    // it hears.
    let event = Event { ack: None, ..event };
    for user in also_to_users {
        outbox.event(names::user_channel(user), &event);
    }
    for user in &message.mentions {
        let mention = ServerFrame::Mention {
            room_id: message.room_id,
            message_id: message.id,
            sender_id: message.sender_id,
            content: message.content.clone(),
        };
        let channel = names::user_channel(user);
        outbox.event(
            channel.clone(),
            &of_message(message, mention, OfMessage::Mention),
        );
        let notification = ServerFrame::Notification {
            notification: chat_protocol::Notification::of_mention(message),
        };
        let notification = of_message(message, notification, OfMessage::Notification);
        outbox.event(channel, &notification);
    }
}

/// An event of `message` besides its own, under an id derived from the
/// message's (published again with it, it keeps that id).
fn of_message(message: &Message, frame: ServerFrame, kind: OfMessage) -> Event {
    chat_bus::event_with_id(event_ids::of_message(message.id, kind), frame, None)
}

/// A new event, its id from [`event_ids::next`]: an entry handled again
/// publishes it under the same id.
fn new_event(frame: ServerFrame, except_user: Option<Id>) -> Event {
    chat_bus::event_with_id(event_ids::next(), frame, except_user)
}

impl Chat {
    /// Publishes `frame` to every member of `room`, except the connections
    /// of `except_user`, with the room's membership version.
    pub async fn publish_to_room(
        &self,
        room: &RoomId,
        frame: ServerFrame,
        except_user: Option<Id>,
    ) {
        let mut event = new_event(frame, except_user);
        event.membership_version = membership_version(&*self.store, room).await;
        self.bus
            .publish_event(&names::room_channel(room), &event)
            .await;
    }

    /// Publishes `frame` to every connection of `user`.
    pub async fn publish_to_user(&self, user: Id, frame: ServerFrame) {
        self.bus
            .publish_event(&names::user_channel(&user), &new_event(frame, None))
            .await;
    }

    /// Tells every device of `user` about a room that has no messages yet.
    pub(crate) async fn announce_new_room(&self, user: Id, room: &Room, role: Role) {
        let summary = RoomSummary {
            room: room.clone(),
            unread_count: 0,
            last_message: None,
            role,
            mention_count: 0,
        };
        self.publish_to_user(user, ServerFrame::RoomAdded { room: summary })
            .await;
    }

    /// Tells the room and every device of `user` that `user` joined.
    pub(crate) async fn announce_joined(&self, user: Id, room: &RoomId) -> Result<()> {
        let summary = self.room_summary(user, room).await?;
        self.publish_to_user(user, ServerFrame::RoomAdded { room: summary })
            .await;
        let frame = ServerFrame::MemberJoined {
            room_id: *room,
            user_id: user,
        };
        self.publish_to_room(room, frame, None).await;
        Ok(())
    }

    /// Tells every device of `user`, then the room, that `user` is gone.
    /// In that order: a gateway that heard `member_left` first would find
    /// the user's connections still in the room at its new membership
    /// version, and re-read the room's members to remove and tell them
    /// itself (it then passes the user's own `room_removed` to nobody).
    pub(crate) async fn announce_left(&self, user: Id, room: &RoomId) {
        self.publish_to_user(user, ServerFrame::RoomRemoved { room_id: *room })
            .await;
        let frame = ServerFrame::MemberLeft {
            room_id: *room,
            user_id: user,
        };
        self.publish_to_room(room, frame, None).await;
    }

    /// Publishes one presence event to every room of `user`, for the other
    /// members; connections that hear it in several rooms pass it on once
    /// (same event id). Rooms larger than `presence_max_room_members` are
    /// skipped: in a room of n members, everyone connecting would cost n²
    /// deliveries (a 10,000-member room: 10⁸ frames that crowded out its
    /// messages, docs/benchmarks.md); their members read `online` from the
    /// member list instead.
    pub(crate) async fn announce_presence(
        &self,
        user: Id,
        online: bool,
        last_seen_at: Option<u64>,
    ) -> Result<()> {
        let frame = ServerFrame::Presence {
            user_id: user,
            online,
            last_seen_at,
        };
        let mut event = new_event(frame, Some(user));
        for room in self.store.rooms_of(user).await? {
            if room.room.member_count > self.presence_max_room_members {
                crate::metrics::PRESENCE_WITHHELD.inc();
                continue;
            }
            let room = room.room.id;
            event.membership_version = membership_version(&*self.store, &room).await;
            self.bus
                .publish_event(&names::room_channel(&room), &event)
                .await;
        }
        Ok(())
    }
}
