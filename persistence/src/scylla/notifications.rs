//! Notifications: one row per (mentioned user, message) in the user's
//! partition, newest first, and one read mark per user.
//!
//! The rows are written by `insert_messages`, after the messages and before
//! it returns, for every message of the batch (stored before or not): fixed
//! values on fixed keys, so a retried batch rewrites the same rows and a
//! batch that failed half-way is completed by its retry. A page is one
//! slice of one partition. The read mark is a single cell written with the
//! mark's own time as its write timestamp, so the newest mark wins whatever
//! order concurrent writes arrive in: it only moves forward without a
//! lightweight transaction.

use chat_protocol::{Id, Message, Notification, NotificationKind};

use super::ScyllaStore;
use super::rows::{
    id_from_cql, id_to_cql, id_write_timestamp, room_id_from_cql, time_from_cql, time_to_cql,
};
use crate::Result;
use crate::records::NotificationPage;

/// A row of `notifications`: id, room_id, message_id, sender_id, created_at.
type NotificationRow = (i64, String, i64, i64, i64);

fn decode(row: NotificationRow, mark: Option<Id>) -> Result<Notification> {
    let (id, room_id, message_id, sender_id, created_at) = row;
    let id = id_from_cql(id);
    Ok(Notification {
        id,
        kind: NotificationKind::Mention,
        room_id: room_id_from_cql(&room_id)?,
        message_id: id_from_cql(message_id),
        sender_id: id_from_cql(sender_id),
        created_at: time_from_cql(created_at),
        read: mark.is_some_and(|mark| id <= mark),
    })
}

impl ScyllaStore {
    /// Writes the notifications of `messages` (one per mentioned user).
    pub(super) async fn insert_notifications(&self, messages: &[Message]) -> Result<()> {
        let rows: Vec<(i64, i64, String, i64, i64, i64)> = messages
            .iter()
            .flat_map(|message| {
                let notification = Notification::of_mention(message);
                message.mentions.iter().map(move |user| {
                    (
                        id_to_cql(*user),
                        id_to_cql(notification.id),
                        notification.room_id.to_string(),
                        id_to_cql(notification.message_id),
                        id_to_cql(notification.sender_id),
                        time_to_cql(notification.created_at),
                    )
                })
            })
            .collect();
        self.concurrently(rows, |values| async move {
            self.execute(&self.statements.insert_notification, values)
                .await
                .map(drop)
        })
        .await?;
        Ok(())
    }

    async fn notification_mark(&self, user: Id) -> Result<Option<Id>> {
        let row: Option<(Option<i64>,)> = self
            .first_row(
                &self.statements.select_notification_mark,
                (id_to_cql(user),),
            )
            .await?;
        Ok(row.and_then(|(mark,)| mark).map(id_from_cql))
    }

    pub(super) async fn notifications_impl(
        &self,
        user: Id,
        before: Option<Id>,
        limit: u32,
    ) -> Result<NotificationPage> {
        let limit = limit.max(1);
        let mark = self.notification_mark(user).await?;
        let before = before.map_or(i64::MAX, id_to_cql);
        let fetch = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
        let rows: Vec<NotificationRow> = self
            .rows(
                &self.statements.select_notifications_before,
                (id_to_cql(user), before, fetch),
            )
            .await?;
        let has_more = rows.len() > limit as usize;
        let notifications = rows
            .into_iter()
            .take(limit as usize)
            .map(|row| decode(row, mark))
            .collect::<Result<Vec<_>>>()?;
        Ok(NotificationPage {
            notifications,
            has_more,
        })
    }

    pub(super) async fn mark_notifications_read_impl(&self, user: Id, up_to: Id) -> Result<()> {
        self.execute(
            &self.statements.mark_notifications_read,
            (id_write_timestamp(up_to), id_to_cql(up_to), id_to_cql(user)),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn unread_notifications_impl(
        &self,
        user: Id,
        cap: u32,
    ) -> Result<Vec<Notification>> {
        let mark = self.notification_mark(user).await?;
        let after = mark.map_or(i64::MIN, id_to_cql);
        let rows: Vec<NotificationRow> = self
            .rows(
                &self.statements.select_notifications_after,
                (
                    id_to_cql(user),
                    after,
                    i32::try_from(cap.max(1)).unwrap_or(i32::MAX),
                ),
            )
            .await?;
        rows.into_iter().map(|row| decode(row, mark)).collect()
    }
}
