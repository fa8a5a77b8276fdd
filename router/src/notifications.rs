//! Stored mentions (v1.1): listing a user's notifications, marking them
//! read, and the `mention_count` of each room summary.
//!
//! The notifications themselves are written by the store together with the
//! message that mentions (see `Store::insert_messages`), so a mention of an
//! offline user is as durable as the message. A mention counts in a room's
//! `mention_count` while it is unread in both senses a client can express:
//! above the user's notification read mark and above their read position in
//! that room.

use chat_persistence::NotificationPage;
use chat_protocol::limits::{
    MENTION_COUNT_CAP, NOTIFICATIONS_DEFAULT_LIMIT, NOTIFICATIONS_MAX_LIMIT,
};
use chat_protocol::{Id, Notification, RoomId};

use crate::{Chat, Error, Result, bounds};

/// How far in the future (by its id's time) a read mark may lie. A mark
/// from the future would silently mark notifications not yet written as
/// read; the slack covers clocks of other nodes running a little ahead.
const MARK_SLACK_MS: u64 = 60_000;

impl Chat {
    /// A page of `user`'s notifications, newest first: those older than
    /// `before` (from the newest if absent), `limit` 1 to 100 (default 50).
    pub async fn notifications(
        &self,
        user: Id,
        before: Option<Id>,
        limit: Option<u32>,
    ) -> Result<NotificationPage> {
        let limit = limit.unwrap_or(NOTIFICATIONS_DEFAULT_LIMIT);
        if !(1..=NOTIFICATIONS_MAX_LIMIT).contains(&limit) {
            return Err(Error::bad_request(format!(
                "limit must be 1 to {NOTIFICATIONS_MAX_LIMIT}"
            )));
        }
        let before = bounds::before(before);
        Ok(self.store.notifications(user, before, limit).await?)
    }

    /// Marks every notification of `user` up to `up_to` (included) read.
    /// The mark only moves forward; one from the future is refused.
    pub async fn mark_notifications_read(&self, user: Id, up_to: Id) -> Result<()> {
        if up_to.unix_ms() > self.now_ms().saturating_add(MARK_SLACK_MS) {
            return Err(Error::bad_request(
                "up_to names no notification (it lies in the future)",
            ));
        }
        Ok(self.store.mark_notifications_read(user, up_to).await?)
    }

    /// `user`'s unread mentions (at most [`MENTION_COUNT_CAP`]), to count
    /// per room with [`mention_count`].
    pub(crate) async fn unread_mentions(&self, user: Id) -> Result<Vec<Notification>> {
        Ok(self
            .store
            .unread_notifications(user, MENTION_COUNT_CAP)
            .await?)
    }
}

/// Of `unread` (see [`Chat::unread_mentions`]), how many are in `room` and
/// newer than the member's read position there.
pub(crate) fn mention_count(unread: &[Notification], room: &RoomId, last_read: Option<Id>) -> u32 {
    let count = unread
        .iter()
        .filter(|n| n.room_id == *room && last_read.is_none_or(|read| n.message_id > read))
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::NotificationKind;

    fn note(room: RoomId, id: u64) -> Notification {
        Notification {
            id: Id(id),
            kind: NotificationKind::Mention,
            room_id: room,
            message_id: Id(id),
            sender_id: Id(1),
            created_at: 0,
            read: false,
        }
    }

    #[test]
    fn counts_per_room_above_the_read_position() {
        let (a, b) = (RoomId::Group(Id(10)), RoomId::Group(Id(11)));
        let unread = [note(a, 5), note(b, 4), note(a, 3), note(a, 2)];
        assert_eq!(mention_count(&unread, &a, None), 3);
        assert_eq!(mention_count(&unread, &a, Some(Id(3))), 1);
        assert_eq!(mention_count(&unread, &b, Some(Id(4))), 0);
        assert_eq!(mention_count(&unread, &RoomId::Group(Id(12)), None), 0);
    }
}
