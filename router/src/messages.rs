//! Posting, editing, deleting and reading messages.
//!
//! Posting is the same for REST and WebSocket: validate, resolve the room
//! (creating a DM room on its first message), de-duplicate by `client_id`,
//! resolve mentions, mint the id, store durably.

use chat_persistence::PageRequest;
use chat_protocol::frames::SendMessage;
use chat_protocol::limits::{
    HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, IDEMPOTENCY_WINDOW_MS, MAX_MENTIONS,
};
use chat_protocol::{Id, Message, Room, RoomId};

use crate::{Chat, Error, Result, content, mentions};

/// The outcome of a post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    /// The stored message (the original one for a repeated `client_id`).
    pub message: Message,
    /// Whether this post repeated an earlier one and created nothing.
    pub duplicate: bool,
    /// The DM room this post brought into being, if it did.
    pub created_dm: Option<Room>,
}

/// A page of history.
pub use chat_persistence::Page;

impl Chat {
    /// Posts a message as `sender`; durable when this returns `Ok`.
    pub async fn post_message(&self, sender: Id, send: SendMessage) -> Result<Posted> {
        let client_id = content::client_id(send.client_id.as_deref())?;
        let content = content::message_content(&send.content)?;
        // Held until the message is stored, so that a concurrent retry with
        // the same client_id finds it instead of racing it.
        let _key = match &client_id {
            Some(key) => Some(self.idempotency.lock(sender, key).await),
            None => None,
        };
        if let Some(key) = &client_id {
            let window_start = Id::first_at(self.now_ms().saturating_sub(IDEMPOTENCY_WINDOW_MS));
            if let Some(original) = self
                .store
                .message_by_client_id(sender, key, window_start)
                .await?
            {
                return Ok(Posted {
                    message: original,
                    duplicate: true,
                    created_dm: None,
                });
            }
        }
        if !send.attachment_ids.is_empty() {
            return Err(Error::bad_request("attachment_ids: unknown file"));
        }
        let created_dm = self.room_to_post_in(sender, &send.room_id).await?;
        if let Some(reply_to) = send.reply_to
            && self.store.message(&send.room_id, reply_to).await?.is_none()
        {
            return Err(Error::bad_request(
                "reply_to does not name a message of this room",
            ));
        }
        let mentions = self
            .resolve_mentions(&send.room_id, sender, &content)
            .await?;
        let id = self.ids.next_id();
        let message = Message {
            id,
            room_id: send.room_id,
            sender_id: sender,
            content,
            mentions,
            attachments: Vec::new(),
            reply_to: send.reply_to,
            client_id,
            created_at: id.unix_ms(),
            edited_at: None,
            deleted: false,
        };
        self.store
            .insert_messages(std::slice::from_ref(&message))
            .await?;
        Ok(Posted {
            message,
            duplicate: false,
            created_dm,
        })
    }

    /// Checks that `sender` may post in `room`. A DM room comes into being
    /// with its first message; it is returned when this call created it.
    async fn room_to_post_in(&self, sender: Id, room: &RoomId) -> Result<Option<Room>> {
        if let Some((lo, hi)) = room.dm_users() {
            crate::access::check_dm_participant(sender, room)?;
            let other = if sender == lo { hi } else { lo };
            let (room, created) = self.open_dm(sender, other).await?;
            return Ok(created.then_some(room));
        }
        self.member_of(sender, room).await?;
        Ok(None)
    }

    /// The ids of the room members that `content` mentions, sender excluded,
    /// de-duplicated, in order of first mention, at most 50.
    async fn resolve_mentions(&self, room: &RoomId, sender: Id, content: &str) -> Result<Vec<Id>> {
        let names = mentions::candidates(content);
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let users = self.store.users_by_username(&names).await?;
        let candidate_ids: Vec<Id> = names
            .iter()
            .filter_map(|name| {
                users
                    .iter()
                    .find(|u| u.username.eq_ignore_ascii_case(name))
                    .map(|u| u.id)
            })
            .filter(|&id| id != sender)
            .collect();
        let members = self.store.memberships(room, &candidate_ids).await?;
        let mut mentioned: Vec<Id> = Vec::new();
        for id in candidate_ids {
            if mentioned.len() == MAX_MENTIONS {
                break;
            }
            if !mentioned.contains(&id) && members.iter().any(|(member, _)| *member == id) {
                mentioned.push(id);
            }
        }
        Ok(mentioned)
    }

    /// A page of a room's history, for its members.
    pub async fn history(
        &self,
        user: Id,
        room: &RoomId,
        before: Option<Id>,
        after: Option<Id>,
        limit: Option<u32>,
    ) -> Result<Page> {
        let limit = limit.unwrap_or(HISTORY_DEFAULT_LIMIT);
        if !(1..=HISTORY_MAX_LIMIT).contains(&limit) {
            return Err(Error::bad_request(format!(
                "limit must be 1 to {HISTORY_MAX_LIMIT}"
            )));
        }
        self.member_of(user, room).await?;
        Ok(self
            .store
            .messages(
                room,
                PageRequest {
                    before,
                    after,
                    limit,
                },
            )
            .await?)
    }

    /// Moves `user`'s read position in `room` forward to `message_id`, which
    /// must be a message of that room.
    pub async fn mark_read(&self, user: Id, room: &RoomId, message_id: Id) -> Result<()> {
        self.member_of(user, room).await?;
        if self.store.message(room, message_id).await?.is_none() {
            return Err(Error::NotFound("message"));
        }
        if !self.store.mark_read(room, user, message_id).await? {
            return Err(Error::Forbidden("not a member of this room"));
        }
        Ok(())
    }

    /// Replaces the content of `user`'s own message; mentions are resolved
    /// anew.
    pub async fn edit_message(
        &self,
        user: Id,
        room: &RoomId,
        id: Id,
        raw: &str,
    ) -> Result<Message> {
        let content = content::message_content(raw)?;
        self.member_of(user, room).await?;
        let original = self
            .store
            .message(room, id)
            .await?
            .filter(|m| !m.deleted)
            .ok_or(Error::NotFound("message"))?;
        if original.sender_id != user {
            return Err(Error::Forbidden("only the sender may edit a message"));
        }
        let mentions = self.resolve_mentions(room, user, &content).await?;
        self.store
            .edit_message(room, id, &content, &mentions, self.now_ms())
            .await?
            .ok_or(Error::NotFound("message"))
    }

    /// Deletes a message: its sender may, and so may the room's owner and
    /// admins.
    pub async fn delete_message(&self, user: Id, room: &RoomId, id: Id) -> Result<Message> {
        let (_, membership) = self.member_of(user, room).await?;
        let original = self
            .store
            .message(room, id)
            .await?
            .ok_or(Error::NotFound("message"))?;
        if original.sender_id != user && !membership.role.is_moderator() {
            return Err(Error::Forbidden(
                "only the sender, the owner or an admin may delete a message",
            ));
        }
        self.store
            .delete_message(room, id)
            .await?
            .ok_or(Error::NotFound("message"))
    }
}
