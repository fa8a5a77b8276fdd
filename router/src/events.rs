//! Publishing what happened: events on room channels (every member's
//! connections) and user channels (every device of one user). Delivery is
//! at most once; see [`chat_bus::Bus::publish_event`].

use chat_bus::names;
use chat_protocol::frames::ServerFrame;
use chat_protocol::{Id, RoomId};

use crate::Chat;

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
}
