//! Accepting, editing, deleting and reading messages.
//!
//! A new message takes two steps, the same for REST and WebSocket:
//! [`Chat::admit_sends`] and [`Chat::accept_message`] (the router's step,
//! for a batch at a time: validate, rate-limit, claim the `client_id` for a
//! freshly minted id, all of the batch in one call to the shared state;
//! then resolve the room and mentions)
//! and the writer stage's (write, then deliver and acknowledge: the
//! persistence worker's, or the router's own when `realtime.write_stage` is
//! `router`; see [`crate::writer`]). So nobody sees or is told about a
//! message before it is durable.

use chat_bus::{Admission, Admitted};
use chat_persistence::PageRequest;
use chat_protocol::frames::{SendMessage, ServerFrame};
use chat_protocol::internal::{Origin, ToPersist};
use chat_protocol::limits::{
    HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, IDEMPOTENCY_WINDOW_MS, MAX_MENTIONS,
};
use chat_protocol::{Id, Message, RoomId};

use crate::limits::{FirstUse, SendKey, bus_error};
use crate::rooms::Handling;
use crate::{Chat, Error, Result, bounds, content, mentions};

/// A page of history.
pub use chat_persistence::Page;

/// A `send` of a router batch, admitted (or not) with the rest of its
/// batch by [`Chat::admit_sends`]: its rate limits taken and its
/// `client_id` claimed for the id minted here.
#[derive(Debug)]
pub struct Ticket {
    /// The id minted for the message (claimed for its `client_id`).
    id: Id,
    /// What the shared state answered.
    admitted: Admitted,
    /// Whether the user's action budget was charged here (a WebSocket
    /// `send`; REST calls are charged by the gateway).
    budget_charged: bool,
    /// What the send was claimed by for `id`.
    claim: SendKey,
}

/// A `send` of a router batch, for [`Chat::admit_sends`].
#[derive(Debug)]
pub struct SendToAdmit<'a> {
    pub sender: Id,
    pub send: &'a SendMessage,
    /// Whether to charge the sender's action budget here: a WebSocket
    /// `send` handled for the first time (the gateway charges REST calls;
    /// one handled again was charged when first handled).
    pub charge_budget: bool,
    /// The partition of the work stream that carried it, and its entry
    /// there: what claims it when it has no `client_id`.
    pub partition: u16,
    pub entry: &'a str,
}

impl Chat {
    /// The rate limits and claims of a router batch's sends, in one call
    /// to the shared state (one Redis round trip, one script): for each
    /// its action budget (when `charge_budget`), its claim for a freshly
    /// minted id (by its `client_id`, or by its entry when it has none:
    /// `SendKey`), then its send rate, unless the claim found the send
    /// made already (a retry, answered with the original's ack; or an
    /// entry handled again after its router died). A send that fails the
    /// checks made before any limit (`client_id`, content) is answered
    /// with that error, as [`accept_message`](Chat::accept_message) would,
    /// and takes no token but its action budget's (when `charge_budget`:
    /// every action counts, a refused one too, so that a flood of bad
    /// sends is cut off like any other; over the budget it is answered
    /// `rate_limited`).
    pub async fn admit_sends(&self, sends: &[SendToAdmit<'_>]) -> Vec<Result<Ticket>> {
        let mut answers: Vec<Result<Ticket>> = Vec::with_capacity(sends.len());
        let mut batch = Vec::new();
        let mut waiting = Vec::new();
        for (index, send) in sends.iter().enumerate() {
            match self.send_admission(send) {
                Ok((id, admission, claim)) => {
                    batch.push(admission);
                    waiting.push(index);
                    answers.push(Ok(Ticket {
                        id,
                        admitted: Admitted::Admitted { existing: None },
                        budget_charged: send.charge_budget,
                        claim,
                    }));
                }
                Err(error) if send.charge_budget => {
                    batch.push(Admission {
                        buckets: vec![self.budget_bucket(send.sender)],
                        claim: None,
                        unless_repeat: Vec::new(),
                    });
                    waiting.push(index);
                    answers.push(Err(error));
                }
                Err(error) => answers.push(Err(error)),
            }
        }
        if batch.is_empty() {
            return answers;
        }
        match self.bus.state.admit(&batch).await {
            Ok(admitted) => {
                for (index, outcome) in waiting.into_iter().zip(admitted) {
                    match (answers.get_mut(index), outcome) {
                        (Some(Ok(ticket)), outcome) => ticket.admitted = outcome,
                        (Some(refused), Admitted::Limited { retry_after, .. }) => {
                            crate::metrics::BUDGET_REFUSED
                                .with_label_values(&[crate::metrics::action::SEND])
                                .inc();
                            *refused = Err(Error::RateLimited {
                                retry_after_ms: retry_after.as_millis().max(1) as u64,
                            });
                        }
                        _ => {}
                    }
                }
            }
            Err(error) => {
                let error = bus_error(error);
                for index in waiting {
                    // A refused send stays refused for what it is.
                    if let Some(answer @ Ok(_)) = answers.get_mut(index) {
                        *answer = Err(Error::Unavailable(error.to_string()));
                    }
                }
            }
        }
        answers
    }

    /// What [`admit_sends`](Chat::admit_sends) asks the shared state for
    /// one send, with the id minted for it and what claims it.
    fn send_admission(&self, admit: &SendToAdmit<'_>) -> Result<(Id, Admission, SendKey)> {
        let SendToAdmit {
            sender,
            send,
            charge_budget,
            partition,
            entry,
        } = *admit;
        let key = match content::client_id(send.client_id.as_deref())? {
            Some(client_id) => SendKey::ClientId(client_id),
            None => SendKey::Entry(format!("{partition}:{entry}")),
        };
        content::message_content(&send.content)?;
        let id = self.mint_id()?;
        let mut buckets = Vec::with_capacity(1);
        if charge_budget {
            buckets.push(self.budget_bucket(sender));
        }
        let claim = Some(self.send_claim(sender, &key, send.room_id, id)?);
        // A retry of a send already made is answered with its ack; only
        // new messages count against the send rate.
        let unless_repeat = vec![self.send_bucket(sender)];
        Ok((
            id,
            Admission {
                buckets,
                claim,
                unless_repeat,
            },
            key,
        ))
    }

    /// Checks and prepares a message from `sender`, admitted by
    /// [`admit_sends`](Chat::admit_sends); answers what the persistence
    /// workers must do with it. Nothing is stored here but the DM room it
    /// opens. Whatever refuses it after its `client_id` was claimed gives
    /// the claim back. `handling`: its entry's.
    pub async fn accept_message(
        &self,
        sender: Id,
        send: SendMessage,
        origin: Origin,
        ticket: Ticket,
        handling: Handling,
    ) -> Result<ToPersist> {
        let client_id = content::client_id(send.client_id.as_deref())?;
        let content = content::message_content(&send.content)?;
        let existing = match ticket.admitted {
            Admitted::Limited {
                bucket,
                retry_after,
            } => {
                if ticket.budget_charged && bucket == 0 {
                    crate::metrics::BUDGET_REFUSED
                        .with_label_values(&[crate::metrics::action::SEND])
                        .inc();
                } else {
                    crate::metrics::RATE_LIMITED
                        .with_label_values(&[crate::metrics::action::SEND])
                        .inc();
                }
                return Err(Error::RateLimited {
                    retry_after_ms: retry_after.as_millis().max(1) as u64,
                });
            }
            Admitted::Admitted { existing } => existing,
        };
        let claimed = Some(&ticket.claim).filter(|_| existing.is_none());
        let checked = self
            .check_message(
                sender,
                &send,
                &content,
                client_id.clone(),
                ticket.id,
                handling,
            )
            .await;
        let (message, opened_dm) = self.releasing_on_refusal(sender, claimed, checked).await?;
        if let Some((room_id, message_id)) = self
            .first_use(sender, &ticket.claim, existing.as_deref())
            .await?
        {
            let retry = (room_id == send.room_id).then(|| Message {
                id: message_id,
                created_at: message_id.unix_ms(),
                ..message
            });
            return Ok(ToPersist::Repeat {
                room_id,
                message_id,
                message: retry,
                client_id,
                origin,
                republish: false,
            });
        }
        // Only now is it a new message: a repeat's files are linked to the
        // original (by the writer, if it writes the retry), never to the id
        // minted for it, which no message will ever have.
        let linked = crate::files::link_attachments(self.store.as_ref(), &message)
            .await
            .map_err(Error::from);
        self.releasing_on_refusal(sender, claimed, linked).await?;
        let also_to_users = match (opened_dm, send.room_id.dm_users()) {
            (true, Some((lo, hi))) => vec![lo, hi],
            _ => Vec::new(),
        };
        Ok(ToPersist::New {
            message,
            origin,
            also_to_users,
        })
    }

    /// `outcome`, after the claim of `claimed` (what this send claimed) is
    /// given back if it is a refusal: the message it was claimed for will
    /// not be accepted.
    async fn releasing_on_refusal<T>(
        &self,
        sender: Id,
        claimed: Option<&SendKey>,
        outcome: Result<T>,
    ) -> Result<T> {
        if outcome.is_err()
            && let Some(key) = claimed
        {
            self.release_claim(sender, key).await;
        }
        outcome
    }

    /// The checks of a message past its limits: the room (or the DM it
    /// opens), attachments, `reply_to`, mentions; answers the message under
    /// `id` and whether it opened a DM room. Its files are not linked yet.
    async fn check_message(
        &self,
        sender: Id,
        send: &SendMessage,
        content: &str,
        client_id: Option<String>,
        id: Id,
        handling: Handling,
    ) -> Result<(Message, bool)> {
        let dm_with = self.may_post_in(sender, &send.room_id).await?;
        let attachments = self.attachments(sender, &send.attachment_ids).await?;
        if let Some(reply_to) = send.reply_to
            && self.store.message(&send.room_id, reply_to).await?.is_none()
        {
            return Err(Error::bad_request(
                "reply_to does not name a message of this room",
            ));
        }
        // A DM comes into being with its first message: opened once nothing
        // else can refuse the message, so a refused one leaves no room. A
        // send handled again may have opened it the first time, its router
        // killed before the room was announced: it is announced again.
        let opened_dm = match dm_with {
            Some(other) => self.open_dm(sender, other, handling).await?.1,
            None => false,
        };
        let mentions = self
            .resolve_mentions(&send.room_id, sender, content)
            .await?;
        let message = Message {
            id,
            room_id: send.room_id,
            sender_id: sender,
            content: content.to_owned(),
            mentions,
            attachments,
            reply_to: send.reply_to,
            client_id,
            created_at: id.unix_ms(),
            edited_at: None,
            deleted: false,
        };
        Ok((message, opened_dm))
    }

    /// Where the send claimed by `key` was first made by `sender`, if it
    /// was: the shared state answered `existing` when the claim found one
    /// (races between routers, retries of messages not stored yet, entries
    /// handled again); for a `client_id`, the store answers for uses the
    /// shared state may have forgotten (e.g. an embedded server that
    /// restarted less than a window ago, or Redis after a failover).
    /// Otherwise the claim made for the new message stands. A state that
    /// has kept every key since before the window began has forgotten
    /// nothing, so the store is not asked: that is one read less per
    /// message for a process up longer than the window. (The store knows
    /// no entries: a send without a `client_id` is one the shared state
    /// must remember.)
    async fn first_use(
        &self,
        sender: Id,
        key: &SendKey,
        existing: Option<&[u8]>,
    ) -> Result<Option<(RoomId, Id)>> {
        if let Some(bytes) = existing {
            let first: FirstUse = chat_protocol::internal::decode(bytes)
                .map_err(|e| Error::Internal(e.to_string()))?;
            return Ok(Some((first.room_id, first.message_id)));
        }
        let SendKey::ClientId(client_id) = key else {
            return Ok(None);
        };
        let window_start_ms = self.now_ms().saturating_sub(IDEMPOTENCY_WINDOW_MS);
        if self
            .bus
            .state
            .keeps_keys_since_ms()
            .is_some_and(|since| since <= window_start_ms)
        {
            return Ok(None);
        }
        let window_start = Id::first_at(window_start_ms);
        match self
            .store
            .message_by_client_id(sender, client_id, window_start)
            .await
        {
            Ok(Some(stored)) => {
                self.repoint_client_id(sender, client_id, &stored).await;
                Ok(Some((stored.room_id, stored.id)))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                self.release_claim(sender, key).await;
                Err(error.into())
            }
        }
    }

    /// Checks that `sender` may post in `room`: a member of a group room,
    /// or one of a DM's two users; answers the other one of a DM, whose
    /// room may not exist yet.
    async fn may_post_in(&self, sender: Id, room: &RoomId) -> Result<Option<Id>> {
        if let Some((lo, hi)) = room.dm_users() {
            crate::access::check_dm_participant(sender, room)?;
            return Ok(Some(if sender == lo { hi } else { lo }));
        }
        self.membership_in(sender, room).await?;
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
        self.membership_in(user, room).await?;
        if bounds::nothing_after(after) {
            return Ok(Page::default());
        }
        let before = bounds::before(before);
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
        self.membership_in(user, room).await?;
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
        self.membership_in(user, room).await?;
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
        let membership = self.membership_in(user, room).await?;
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
        self.membership_in(user, room).await?;
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
