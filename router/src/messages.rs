//! Accepting, editing, deleting and reading messages.
//!
//! A new message takes two steps, the same for REST and WebSocket:
//! [`Chat::accept_message`] (the router's step: validate, rate-limit,
//! resolve the room and mentions, de-duplicate by `client_id`, mint the id)
//! and the persistence worker's (write, then deliver and acknowledge). So
//! nobody sees or is told about a message before it is durable.

use chat_persistence::PageRequest;
use chat_protocol::frames::{SendMessage, ServerFrame};
use chat_protocol::internal::{Origin, ToPersist};
use chat_protocol::limits::{
    HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, IDEMPOTENCY_WINDOW_MS, MAX_MENTIONS,
};
use chat_protocol::{Id, Message, RoomId};

use crate::{Chat, Error, Result, content, mentions};

/// A page of history.
pub use chat_persistence::Page;

impl Chat {
    /// Checks and prepares a message from `sender`; answers what the
    /// persistence workers must do with it. Nothing is stored here.
    pub async fn accept_message(
        &self,
        sender: Id,
        send: SendMessage,
        origin: Origin,
    ) -> Result<ToPersist> {
        let client_id = content::client_id(send.client_id.as_deref())?;
        let content = content::message_content(&send.content)?;
        self.check_send_rate(sender).await?;
        let attachments = self.attachments(sender, &send.attachment_ids).await?;
        let opened_dm = self.room_to_post_in(sender, &send.room_id).await?;
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
        let id = self.mint_id()?;
        let message = |id: Id| Message {
            id,
            room_id: send.room_id,
            sender_id: sender,
            content: content.clone(),
            mentions: mentions.clone(),
            attachments: attachments.clone(),
            reply_to: send.reply_to,
            client_id: client_id.clone(),
            created_at: id.unix_ms(),
            edited_at: None,
            deleted: false,
        };
        // Linked before the client_id is claimed: a failure here must not
        // leave the claim behind. A repeat leaves a link to an id that is
        // never stored, in the room the sender chose; harmless.
        self.link_attachments(&send.room_id, id, &attachments)
            .await?;
        if let Some(key) = &client_id
            && let Some((room_id, message_id)) =
                self.first_use(sender, key, send.room_id, id).await?
        {
            return Ok(ToPersist::Repeat {
                room_id,
                message_id,
                message: (room_id == send.room_id).then(|| message(message_id)),
                origin,
            });
        }
        let also_to_users = match (opened_dm, send.room_id.dm_users()) {
            (true, Some((lo, hi))) => vec![lo, hi],
            _ => Vec::new(),
        };
        Ok(ToPersist::New {
            message: message(id),
            origin,
            also_to_users,
        })
    }

    /// Where `client_id` was first used by `sender` within the window, if it
    /// was; otherwise claims it for `message_id`. The shared state answers
    /// races between routers; the store answers for uses the shared state
    /// has forgotten (e.g. an embedded server that restarted).
    async fn first_use(
        &self,
        sender: Id,
        client_id: &str,
        room: RoomId,
        message_id: Id,
    ) -> Result<Option<(RoomId, Id)>> {
        if let Some(first) = self
            .claim_client_id(sender, client_id, room, message_id)
            .await?
        {
            return Ok(Some((first.room_id, first.message_id)));
        }
        let window_start = Id::first_at(self.now_ms().saturating_sub(IDEMPOTENCY_WINDOW_MS));
        match self
            .store
            .message_by_client_id(sender, client_id, window_start)
            .await
        {
            Ok(Some(stored)) => Ok(Some((stored.room_id, stored.id))),
            Ok(None) => Ok(None),
            Err(error) => {
                self.release_client_id(sender, client_id).await;
                Err(error.into())
            }
        }
    }

    /// Undoes what [`accept_message`](Chat::accept_message) reserved, for a
    /// message that could not be handed on.
    pub async fn abandon_message(&self, accepted: &ToPersist) {
        if let ToPersist::New { message, .. } = accepted
            && let Some(client_id) = &message.client_id
        {
            self.release_client_id(message.sender_id, client_id).await;
        }
    }

    /// Checks that `sender` may post in `room`. A DM room comes into being
    /// with its first message; answers whether this call opened it.
    async fn room_to_post_in(&self, sender: Id, room: &RoomId) -> Result<bool> {
        if let Some((lo, hi)) = room.dm_users() {
            crate::access::check_dm_participant(sender, room)?;
            let other = if sender == lo { hi } else { lo };
            let (_, created) = self.open_dm(sender, other).await?;
            return Ok(created);
        }
        self.member_of(sender, room).await?;
        Ok(false)
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
    /// must be a message of that room, and tells the room.
    pub async fn mark_read(&self, user: Id, room: &RoomId, message_id: Id) -> Result<()> {
        self.member_of(user, room).await?;
        if self.store.message(room, message_id).await?.is_none() {
            return Err(Error::NotFound("message"));
        }
        if !self.store.mark_read(room, user, message_id).await? {
            return Err(Error::Forbidden("not a member of this room"));
        }
        let frame = ServerFrame::Read {
            room_id: *room,
            user_id: user,
            message_id,
        };
        self.publish_to_room(room, frame, None).await;
        Ok(())
    }

    /// Replaces the content of `user`'s own message; mentions are resolved
    /// anew. The room hears `message_updated`.
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
        let edited = self
            .store
            .edit_message(room, id, &content, &mentions, self.now_ms())
            .await?
            .ok_or(Error::NotFound("message"))?;
        let frame = ServerFrame::MessageUpdated {
            message: edited.clone(),
        };
        self.publish_to_room(room, frame, None).await;
        Ok(edited)
    }

    /// Deletes a message: its sender may, and so may the room's owner and
    /// admins. The room hears `message_deleted`.
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
        let tombstone = self
            .store
            .delete_message(room, id)
            .await?
            .ok_or(Error::NotFound("message"))?;
        self.release_attachments(room, &original).await;
        if original.sender_id != user {
            let kind = chat_protocol::accounts::audit_kind::MESSAGE_DELETED;
            self.audit_room(kind, user, Some(original.sender_id), *room);
        }
        let frame = ServerFrame::MessageDeleted {
            room_id: *room,
            message_id: id,
        };
        self.publish_to_room(room, frame, None).await;
        Ok(tombstone)
    }

    /// Tells the room's other members that `user` is (or stopped) typing.
    /// A `typing: true` faster than one per interval per room is dropped
    /// silently; `typing: false` is never dropped (nor counted), or the
    /// others would be left seeing "typing…" after the user stopped.
    pub async fn typing(&self, user: Id, room: &RoomId, typing: bool) -> Result<()> {
        self.member_of(user, room).await?;
        if typing && !self.typing_allowed(user, room).await? {
            return Ok(());
        }
        let frame = ServerFrame::Typing {
            room_id: *room,
            user_id: user,
            typing,
        };
        self.publish_to_room(room, frame, Some(user)).await;
        Ok(())
    }
}
