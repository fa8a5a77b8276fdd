//! Group rooms, direct-message rooms, members and roles.
//!
//! Rules: anyone may join a public room; a private room only gains members
//! through its owner or admins; a DM room has exactly its two users, forever.
//! Owners and admins may kick; only the owner may kick an admin; nobody
//! kicks the owner. When the owner leaves, the longest-standing admin (else
//! member) becomes owner. A group room holds at most its `max_members`
//! (see [`crate::room_size`]).

use std::collections::BTreeSet;

use chat_persistence::{NewRoom, StoreError, UserRoom};
use chat_protocol::accounts::audit_kind;
use chat_protocol::limits::{MAX_INITIAL_MEMBERS, UNREAD_COUNT_CAP};
use chat_protocol::rest::CreateRoomRequest;
use chat_protocol::{Id, Role, Room, RoomId, RoomKind, RoomSummary, Visibility};

use crate::{Chat, Error, Result, content};

/// Room summaries computed at once for one `rooms_of` call (each is an
/// unread count and a last-message read, a few store queries).
pub(crate) const SUMMARY_CONCURRENCY: usize = 16;

impl Chat {
    /// A fresh id for a group room to create ([`Chat::create_room`]).
    pub fn new_room_id(&self) -> Result<Id> {
        self.mint_id()
    }

    /// Creates the group room `id` (from [`Chat::new_room_id`]) owned by
    /// `owner`, with `member_ids` as members. Creating the same room again
    /// (the same id and owner: the action was handled twice, by a router
    /// that died before acknowledging it and by its successor) answers the
    /// room and announces nothing.
    pub async fn create_room(&self, owner: Id, id: Id, request: CreateRoomRequest) -> Result<Room> {
        let name = content::name("name", &request.name)?;
        let invited: BTreeSet<Id> = request
            .member_ids
            .into_iter()
            .filter(|&id| id != owner)
            .collect();
        if invited.len() > MAX_INITIAL_MEMBERS {
            return Err(Error::bad_request(format!(
                "member_ids lists more than {MAX_INITIAL_MEMBERS} users"
            )));
        }
        self.check_members_per_call(invited.len())?;
        let max_members = self.checked_max_members(request.max_members)?;
        let limit = max_members.unwrap_or(self.room_limits.default_max_members);
        if invited.len() + 1 > limit as usize {
            return Err(Error::bad_request(format!(
                "member_ids and the owner are more than the room's {limit} members"
            )));
        }
        self.charge_room_created(owner).await?;
        self.charge_members_added(owner, invited.len()).await?;
        let invited: Vec<Id> = invited.into_iter().collect();
        let known = self.store.users(&invited).await?;
        if known.len() != invited.len() {
            let missing = invited
                .iter()
                .find(|id| !known.iter().any(|u| u.id == **id))
                .map_or_else(String::new, Id::to_string);
            return Err(Error::bad_request(format!(
                "member_ids: user {missing} does not exist"
            )));
        }
        let room = NewRoom {
            id: RoomId::Group(id),
            kind: RoomKind::Group,
            name,
            visibility: request.visibility,
            owner_id: Some(owner),
            created_at: id.unix_ms(),
            max_members,
        };
        let members: Vec<(Id, Role)> = std::iter::once((owner, Role::Owner))
            .chain(invited.into_iter().map(|id| (id, Role::Member)))
            .collect();
        let room = match self.store.create_room(room, &members).await {
            Err(StoreError::Conflict(detail)) => {
                return match self.store.room(&RoomId::Group(id)).await? {
                    Some(existing) if existing.owner_id == Some(owner) => Ok(existing),
                    _ => Err(Error::Internal(detail)),
                };
            }
            other => other?,
        };
        for &(member, role) in &members {
            self.announce_new_room(member, &room, role).await;
        }
        self.audit_room(audit_kind::ROOM_CREATED, owner, None, room.id);
        Ok(room)
    }

    /// A room as `viewer` may see it.
    pub async fn room(&self, viewer: Id, id: &RoomId) -> Result<Room> {
        Ok(self.visible_room(viewer, id).await?.0)
    }

    /// Every room `user` belongs to, with unread counts and last messages,
    /// in the store's order. The summaries are fetched
    /// `SUMMARY_CONCURRENCY` at a time: a connect costs about
    /// rooms ÷ 16 round trips of latency instead of one per room, while one
    /// user's reconnect cannot flood the store.
    pub async fn rooms_of(&self, user: Id) -> Result<Vec<RoomSummary>> {
        Ok(self.rooms_page_after(user, None, None).await?.rooms)
    }

    /// One room from `user`'s point of view.
    pub async fn room_summary(&self, user: Id, id: &RoomId) -> Result<RoomSummary> {
        let (room, membership) = self.member_of(user, id).await?;
        let mentions = self.unread_mentions(user).await?;
        self.summarize(user, UserRoom { room, membership }, &mentions)
            .await
    }

    /// `mentions`: the user's unread mentions, from
    /// [`unread_mentions`](Chat::unread_mentions).
    pub(crate) async fn summarize(
        &self,
        user: Id,
        user_room: UserRoom,
        mentions: &[chat_protocol::Notification],
    ) -> Result<RoomSummary> {
        let UserRoom { room, membership } = user_room;
        let unread_count = self
            .store
            .unread_count(&room.id, user, membership.last_read, UNREAD_COUNT_CAP)
            .await?;
        let last_message = self.store.last_message(&room.id).await?;
        let mention_count =
            crate::notifications::mention_count(mentions, &room.id, membership.last_read);
        Ok(RoomSummary {
            room,
            unread_count,
            last_message,
            role: membership.role,
            mention_count,
        })
    }

    /// `user` joins a public group room. Joining a room one belongs to is a
    /// no-op. Whoever joins a room that everybody left becomes its owner, so
    /// that no room is left without someone to moderate it.
    pub async fn join(&self, user: Id, id: &RoomId) -> Result<Room> {
        let (room, membership) = self.visible_room(user, id).await?;
        if membership.is_some() {
            return Ok(room);
        }
        if room.kind == RoomKind::Dm || room.visibility == Visibility::Private {
            return Err(Error::Forbidden("this room cannot be joined"));
        }
        let added = self.add_within_limit(&room, id, user, Role::Member).await?;
        if added {
            if room.member_count == 0 {
                self.store.set_owner(id, user).await?;
            }
            self.announce_joined(user, id).await?;
            self.audit_room(audit_kind::MEMBER_ADDED, user, Some(user), *id);
        }
        self.room(user, id).await
    }

    /// `user` leaves a group room. An owner who leaves hands the room over.
    pub async fn leave(&self, user: Id, id: &RoomId) -> Result<()> {
        let (room, membership) = self.member_of(user, id).await?;
        if room.kind == RoomKind::Dm {
            return Err(Error::bad_request("a direct-message room cannot be left"));
        }
        if !self.store.remove_member(id, user).await? {
            return Ok(());
        }
        if membership.role == Role::Owner {
            self.hand_over(id).await?;
        }
        self.announce_left(user, id).await;
        self.audit_room(audit_kind::MEMBER_REMOVED, user, Some(user), *id);
        Ok(())
    }

    /// Makes the longest-standing admin, else member, the owner.
    async fn hand_over(&self, id: &RoomId) -> Result<()> {
        let members = self.store.members(id).await?;
        let successor = members
            .iter()
            .find(|m| m.role == Role::Admin)
            .or_else(|| members.first());
        if let Some(successor) = successor {
            self.store.set_owner(id, successor.user.id).await?;
        }
        Ok(())
    }

    /// `actor` adds `target` to a group room. Any member may add to a public
    /// room; only the owner and admins to a private one. Adding a member is
    /// a no-op. Answers whether the target was newly added.
    pub async fn add_member(&self, actor: Id, id: &RoomId, target: Id) -> Result<bool> {
        let (room, membership) = self.member_of(actor, id).await?;
        if room.kind == RoomKind::Dm {
            return Err(Error::bad_request(
                "a direct-message room cannot gain members",
            ));
        }
        if room.visibility == Visibility::Private && !membership.role.is_moderator() {
            return Err(Error::Forbidden(
                "only the owner or an admin may add members to a private room",
            ));
        }
        if self.store.user(target).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        self.charge_members_added(actor, 1).await?;
        let added = self
            .add_within_limit(&room, id, target, Role::Member)
            .await?;
        if added {
            self.announce_joined(target, id).await?;
            self.audit_room(audit_kind::MEMBER_ADDED, actor, Some(target), *id);
        }
        Ok(added)
    }

    /// `actor` removes `target` from a group room.
    pub async fn kick(&self, actor: Id, id: &RoomId, target: Id) -> Result<()> {
        let (room, membership) = self.member_of(actor, id).await?;
        if room.kind == RoomKind::Dm {
            return Err(Error::bad_request(
                "nobody can be removed from a direct-message room",
            ));
        }
        if !membership.role.is_moderator() {
            return Err(Error::Forbidden("only the owner or an admin may kick"));
        }
        if target == actor {
            return Err(Error::bad_request("to leave a room, use leave"));
        }
        let target_role = self
            .store
            .membership(id, target)
            .await?
            .ok_or(Error::NotFound("member"))?
            .role;
        if target_role >= membership.role {
            return Err(Error::Forbidden(
                "only the owner may kick an admin, and nobody the owner",
            ));
        }
        if self.store.remove_member(id, target).await? {
            self.announce_left(target, id).await;
            self.audit_room(audit_kind::MEMBER_REMOVED, actor, Some(target), *id);
        }
        Ok(())
    }

    /// The DM room of `user` and `other`, created if needed. Answers the room
    /// and whether this call created it.
    pub async fn open_dm(&self, user: Id, other: Id) -> Result<(Room, bool)> {
        let id = RoomId::dm(user, other)
            .map_err(|_| Error::bad_request("a direct-message room needs another user"))?;
        if let Some(room) = self.store.room(&id).await? {
            return Ok((room, false));
        }
        if self.store.user(other).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        let room = NewRoom {
            id,
            kind: RoomKind::Dm,
            name: String::new(),
            visibility: Visibility::Private,
            owner_id: None,
            created_at: self.now_ms(),
            max_members: None,
        };
        let (room, created) = match self.store.open_dm(room).await {
            Err(StoreError::Conflict(detail)) => return Err(Error::Internal(detail)),
            other => other?,
        };
        if created {
            for member in [user, other] {
                self.announce_new_room(member, &room, Role::Member).await;
            }
        }
        Ok((room, created))
    }

    /// Audits a room change; the client's address is known only at the
    /// gateway, so room events carry none.
    pub(crate) fn audit_room(&self, kind: &str, actor: Id, target: Option<Id>, room: RoomId) {
        let audit = crate::sessions::Audit {
            actor: Some(actor),
            target,
            room: Some(room),
            ..Default::default()
        };
        self.audit(kind, audit);
    }

    pub(crate) fn now_ms(&self) -> u64 {
        chat_protocol::id::now_ms()
    }
}
