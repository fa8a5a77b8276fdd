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

use chat_bus::{Outbox, names};
use chat_protocol::frames::ServerFrame;
use chat_protocol::internal::Event;
use chat_protocol::{Id, Message, Role, Room, RoomId, RoomSummary};

use crate::{Chat, Result};

/// Queues a durable message for its room (and, for a DM that it just
/// opened, for both users directly), and a `mention` and a `notification`
/// (the stored one, written with the message) for each mentioned user; they
/// leave with the outbox ([`chat_bus::Bus::send`]).
pub fn message_events(outbox: &mut Outbox, message: &Message, also_to_users: &[Id]) {
    // The message id as the event id: if a writer dies after publishing
    // and before acknowledging, the partition's next holder publishes the
    // message again under the same event id, and gateways pass it on once.
    let event = Event {
        id: message.id.0,
        except_user: None,
        frame: ServerFrame::Message {
            message: message.clone(),
        },
        trace: chat_bus::trace::current(),
    };
    outbox.event(names::room_channel(&message.room_id), &event);
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
        outbox.frame(names::user_channel(user), mention, None);
        let notification = ServerFrame::Notification {
            notification: chat_protocol::Notification::of_mention(message),
        };
        outbox.frame(names::user_channel(user), notification, None);
    }
}

impl Chat {
    /// Publishes `frame` to every member of `room`, except the connections
    /// of `except_user`.
    pub async fn publish_to_room(
        &self,
        room: &RoomId,
        frame: ServerFrame,
        except_user: Option<Id>,
    ) {
        self.bus
            .publish_frame(&names::room_channel(room), frame, except_user)
            .await;
    }

    /// Publishes `frame` to every connection of `user`.
    pub async fn publish_to_user(&self, user: Id, frame: ServerFrame) {
        self.bus
            .publish_frame(&names::user_channel(&user), frame, None)
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

    /// Tells the room and every device of `user` that `user` is gone.
    pub(crate) async fn announce_left(&self, user: Id, room: &RoomId) {
        let frame = ServerFrame::MemberLeft {
            room_id: *room,
            user_id: user,
        };
        self.publish_to_room(room, frame, None).await;
        self.publish_to_user(user, ServerFrame::RoomRemoved { room_id: *room })
            .await;
    }

    /// Publishes one presence event to every room of `user`, for the other
    /// members; connections that hear it in several rooms pass it on once
    /// (same event id).
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
        let event = chat_bus::new_event(frame, Some(user));
        for room in self.store.rooms_of(user).await? {
            let channel = names::room_channel(&room.room.id);
            self.bus.publish_event(&channel, &event).await;
        }
        Ok(())
    }
}
