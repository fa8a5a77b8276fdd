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

/// Whether a room action is handled for the first time or again.
///
/// An inbound entry is handed out again when the router that took it
/// died, or gave its partition up, before acknowledging it (see
/// [`crate::worker`]). That router may have applied the action, and may
/// even have died between storing its effect and publishing its events or
/// answering. So an action handled again that finds its effect already in
/// place is answered as done, not refused for what its first handling did
/// (a `leave` refused as "not a member" of the room it left), finishes
/// what that handling may not have (an owner's hand-over), and publishes
/// its events again, so that none is lost, under the ids the first
/// handling gave them ([`crate::event_ids`]): a connection that heard them
/// then hears no copy. Nor are the caps charged a second time (a room
/// created, members added).
///
/// Which of the two it was cannot be told: an action refused the first
/// time (a non-member's `leave`) whose router died before acknowledging
/// it is answered done when handled again, and its events published. That
/// takes a router dying within the 100 ms before an acknowledgement, and
/// leaves the state as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handling {
    /// The entry's first handling.
    First,
    /// Handed out before, to a router that did not acknowledge it.
    Again,
}

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
    /// room; handled again, it announces the room to its members again.
    pub async fn create_room(
        &self,
        owner: Id,
        id: Id,
        request: CreateRoomRequest,
        handling: Handling,
    ) -> Result<Room> {
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
        // Charged once the request is known good: a refused one costs no
        // room of the hour.
        if handling == Handling::First {
            self.charge_room_created(owner).await?;
            self.charge_members_added(owner, invited.len()).await?;
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
                    Some(existing) if existing.owner_id == Some(owner) => {
                        if handling == Handling::Again {
                            // In the first handling's order (the owner,
                            // then by id), so that its events keep their
                            // ids (see `crate::event_ids`).
                            let mut members = self.store.members(&existing.id).await?;
                            members.sort_by_key(|m| (m.role != Role::Owner, m.user.id));
                            for member in members {
                                self.announce_new_room(member.user.id, &existing, member.role)
                                    .await;
                            }
                        }
                        Ok(existing)
                    }
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
    pub async fn join(&self, user: Id, id: &RoomId, handling: Handling) -> Result<Room> {
        let (room, membership) = self.visible_room(user, id).await?;
        if membership.is_some() {
            if handling == Handling::Again {
                // The first handling may have added the user to an empty
                // room and died before making them its owner.
                if room.member_count == 1 && room.owner_id != Some(user) {
                    self.store.set_owner(id, user).await?;
                }
                self.announce_joined(user, id).await?;
            }
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
    pub async fn leave(&self, user: Id, id: &RoomId, handling: Handling) -> Result<()> {
        let (room, membership) = match self.member_of(user, id).await {
            Err(refusal @ Error::Forbidden(_)) if handling == Handling::Again => {
                return self.left_again(user, id, refusal).await;
            }
            found => found?,
        };
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

    /// A `leave` handled again that finds `user` gone from the group room
    /// (its first handling removed them, as far as anyone can tell):
    /// finishes that handling's hand-over if it died before it, and
    /// announces the departure again. `refusal` answers a DM room.
    async fn left_again(&self, user: Id, id: &RoomId, refusal: Error) -> Result<()> {
        let room = self.existing_room(user, id).await?;
        if room.kind == RoomKind::Dm {
            return Err(refusal);
        }
        if room.owner_id == Some(user) {
            self.hand_over(id).await?;
        }
        self.announce_left(user, id).await;
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
    /// a no-op (handled again, it announces the member again). Answers
    /// whether the target was newly added.
    pub async fn add_member(
        &self,
        actor: Id,
        id: &RoomId,
        target: Id,
        handling: Handling,
    ) -> Result<bool> {
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
        if handling == Handling::First {
            // Adding a member adds nobody (204, no event): not charged.
            if self.store.membership(id, target).await?.is_some() {
                return Ok(false);
            }
            self.charge_members_added(actor, 1).await?;
        }
        let added = self
            .add_within_limit(&room, id, target, Role::Member)
            .await?;
        if added {
            self.audit_room(audit_kind::MEMBER_ADDED, actor, Some(target), *id);
        }
        if added || handling == Handling::Again {
            self.announce_joined(target, id).await?;
        }
        Ok(added)
    }

    /// `actor` removes `target` from a group room. Handled again, a
    /// target already gone is announced gone again.
    pub async fn kick(&self, actor: Id, id: &RoomId, target: Id, handling: Handling) -> Result<()> {
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
        let Some(target_membership) = self.store.membership(id, target).await? else {
            return match handling {
                Handling::First => Err(Error::NotFound("member")),
                Handling::Again => {
                    self.announce_left(target, id).await;
                    Ok(())
                }
            };
        };
        if target_membership.role >= membership.role {
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
    /// and whether this call created it (handled again, an existing room is
    /// announced to both again).
    pub async fn open_dm(&self, user: Id, other: Id, handling: Handling) -> Result<(Room, bool)> {
        let id = RoomId::dm(user, other)
            .map_err(|_| Error::bad_request("a direct-message room needs another user"))?;
        if let Some(room) = self.store.room(&id).await? {
            if handling == Handling::Again {
                for member in [user, other] {
                    self.announce_new_room(member, &room, Role::Member).await;
                }
            }
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

#[cfg(test)]
mod tests {
    use chat_bus::{Subscription, names};
    use chat_persistence::NewUser;
    use chat_protocol::Visibility;
    use chat_protocol::frames::ServerFrame;
    use chat_protocol::internal::{self, Event};

    use super::*;
    use crate::RateLimits;

    /// A chat over SQLite and the in-process bus, where a user may create
    /// one room an hour, with an owner and a member of one public room
    /// (events of its creation already heard), listening to the room's
    /// channel and both users'.
    struct World {
        chat: Chat,
        owner: Id,
        member: Id,
        room: RoomId,
        heard: Subscription,
        _test: crate::testing::TestChat,
    }

    impl World {
        async fn new() -> World {
            let test = crate::testing::chat_with(RateLimits {
                rooms_created_per_hour: 1,
                ..RateLimits::default()
            });
            let (chat, store) = (test.chat.clone(), test.store.clone());
            let mut users = Vec::new();
            for name in ["owner", "member"] {
                let user = NewUser {
                    id: chat.mint_id().unwrap(),
                    username: name.into(),
                    display_name: name.into(),
                    password_hash: String::new(),
                    created_at: 1,
                };
                users.push(store.create_user(user).await.unwrap().id);
            }
            let (owner, member) = (users[0], users[1]);
            let heard = chat.bus().pubsub.subscribe(64).await.unwrap();
            for user in [owner, member] {
                heard
                    .control
                    .add(&names::user_channel(&user))
                    .await
                    .unwrap();
            }
            let id = chat.new_room_id().unwrap();
            let room = RoomId::Group(id);
            heard
                .control
                .add(&names::room_channel(&room))
                .await
                .unwrap();
            let mut world = World {
                chat,
                owner,
                member,
                room,
                heard,
                _test: test,
            };
            world
                .create(id, Handling::First)
                .await
                .expect("the room is created");
            world.events();
            world
        }

        /// Creates the world's room, as the owner, with the member.
        async fn create(&self, id: Id, handling: Handling) -> Result<Room> {
            let request = CreateRoomRequest {
                name: "plans".into(),
                visibility: Visibility::Public,
                member_ids: vec![self.member],
                max_members: None,
            };
            self.chat
                .create_room(self.owner, id, request, handling)
                .await
        }

        /// The frames published since last asked, each with its channel.
        fn events(&mut self) -> Vec<(String, ServerFrame)> {
            let mut frames = Vec::new();
            while let Ok(delivery) = self.heard.deliveries.try_recv() {
                let event: Event = internal::decode(&delivery.payload).unwrap();
                frames.push((delivery.channel.to_string(), event.frame));
            }
            frames
        }

        /// Whether the frames published since last asked told `user` and
        /// the room that `user` left.
        fn heard_left(&mut self, user: Id) -> bool {
            let frames = self.events();
            let told_room = frames.iter().any(|(channel, frame)| {
                *channel == names::room_channel(&self.room)
                    && matches!(frame, ServerFrame::MemberLeft { user_id, .. } if *user_id == user)
            });
            let told_user = frames.iter().any(|(channel, frame)| {
                *channel == names::user_channel(&user)
                    && matches!(frame, ServerFrame::RoomRemoved { room_id } if *room_id == self.room)
            });
            told_room && told_user
        }
    }

    /// The first handling of a leave removed the owner and died before
    /// the hand-over and the events: handled again, the leave is done, the
    /// room gets its new owner and everyone hears of it. Handled for the
    /// first time, the same leave is a non-member's, refused.
    #[tokio::test]
    async fn a_leave_handled_again_finishes_what_its_first_handling_began() {
        let mut world = World::new().await;
        let store = world.chat.store().clone();
        assert!(store.remove_member(&world.room, world.owner).await.unwrap());

        let refused = world.chat.leave(world.owner, &world.room, Handling::First);
        assert!(matches!(refused.await, Err(Error::Forbidden(_))));
        assert!(world.events().is_empty());

        let again = world.chat.leave(world.owner, &world.room, Handling::Again);
        again.await.expect("done");
        let room = store.room(&world.room).await.unwrap().unwrap();
        assert_eq!(room.owner_id, Some(world.member), "handed over");
        assert!(world.heard_left(world.owner));
    }

    /// A kick handled again that finds its target gone is done and
    /// announced; handled for the first time, the target is `not_found`.
    #[tokio::test]
    async fn a_kick_handled_again_is_done_and_announced() {
        let mut world = World::new().await;
        let store = world.chat.store().clone();
        assert!(
            store
                .remove_member(&world.room, world.member)
                .await
                .unwrap()
        );
        let (owner, member, room) = (world.owner, world.member, world.room);

        let refused = world.chat.kick(owner, &room, member, Handling::First);
        assert!(matches!(refused.await, Err(Error::NotFound("member"))));
        assert!(world.events().is_empty());

        let again = world.chat.kick(owner, &room, member, Handling::Again);
        again.await.expect("done");
        assert!(world.heard_left(member));
    }

    /// A room created again (the same id) is answered: handled again, it
    /// is announced to its members once more, and the hourly cap of one
    /// room, spent by the first handling, is not charged again.
    #[tokio::test]
    async fn a_room_created_again_is_announced_again_and_not_charged_twice() {
        let mut world = World::new().await;
        let RoomId::Group(id) = world.room else {
            unreachable!("a group room")
        };
        let room = world.create(id, Handling::Again).await.expect("answered");
        assert_eq!(room.id, world.room);
        let added: Vec<(String, Role)> = world
            .events()
            .into_iter()
            .filter_map(|(channel, frame)| match frame {
                ServerFrame::RoomAdded { room } if room.room.id == world.room => {
                    Some((channel, room.role))
                }
                _ => None,
            })
            .collect();
        assert_eq!(added.len(), 2, "{added:?}");
        assert!(added.contains(&(names::user_channel(&world.owner), Role::Owner)));
        assert!(added.contains(&(names::user_channel(&world.member), Role::Member)));

        // The cap is spent: a new room is refused.
        let another = world.chat.new_room_id().unwrap();
        let refused = world.create(another, Handling::First).await;
        assert!(
            matches!(refused, Err(Error::RateLimited { .. })),
            "{refused:?}"
        );
    }

    /// A join or an add handled again that finds the user a member
    /// announces them again; handled for the first time, it is a no-op.
    #[tokio::test]
    async fn a_join_or_add_handled_again_announces_the_member_again() {
        let mut world = World::new().await;
        let (owner, member, room) = (world.owner, world.member, world.room);
        let joined = |frames: &[(String, ServerFrame)]| {
            frames.iter().any(|(channel, frame)| {
                *channel == names::room_channel(&room)
                    && matches!(frame, ServerFrame::MemberJoined { user_id, .. } if *user_id == member)
            }) && frames.iter().any(|(channel, frame)| {
                *channel == names::user_channel(&member)
                    && matches!(frame, ServerFrame::RoomAdded { .. })
            })
        };
        world
            .chat
            .join(member, &room, Handling::First)
            .await
            .unwrap();
        let added = world.chat.add_member(owner, &room, member, Handling::First);
        assert!(!added.await.unwrap());
        assert!(world.events().is_empty());

        world
            .chat
            .join(member, &room, Handling::Again)
            .await
            .unwrap();
        assert!(joined(&world.events()));
        let added = world.chat.add_member(owner, &room, member, Handling::Again);
        assert!(!added.await.unwrap());
        assert!(joined(&world.events()));
    }

    /// A send whose first handling opened its DM room and died before the
    /// room was announced announces it when handled again; a send handled
    /// for the first time into a DM that exists announces nothing.
    #[tokio::test]
    async fn a_send_handled_again_announces_the_dm_it_may_have_opened() {
        let mut world = World::new().await;
        let (owner, member) = (world.owner, world.member);
        let dm = RoomId::dm(owner, member).unwrap();
        let opened = NewRoom {
            id: dm,
            kind: RoomKind::Dm,
            name: String::new(),
            visibility: Visibility::Private,
            owner_id: None,
            created_at: 1,
            max_members: None,
        };
        let (_, created) = world.chat.store().open_dm(opened).await.unwrap();
        assert!(created);
        let send = |chat: &Chat, entry: &str, handling: Handling| {
            let (chat, entry) = (chat.clone(), entry.to_owned());
            async move {
                let send = chat_protocol::frames::SendMessage {
                    room_id: dm,
                    content: "hi".into(),
                    client_id: None,
                    reply_to: None,
                    attachment_ids: Vec::new(),
                };
                let admit = crate::messages::SendToAdmit {
                    sender: owner,
                    send: &send,
                    charge_budget: false,
                    partition: 0,
                    entry: &entry,
                };
                let ticket = chat.admit_sends(&[admit]).await.pop().unwrap().unwrap();
                let origin = internal::Origin {
                    gateway: "g".into(),
                    request: 1,
                    connection: None,
                    reference: None,
                    trace: None,
                    hears_room: false,
                };
                chat.accept_message(owner, send, origin, ticket, handling)
                    .await
                    .unwrap();
            }
        };
        let announced = |frames: &[(String, ServerFrame)]| {
            [owner, member].map(|user| {
                frames.iter().any(|(channel, frame)| {
                    *channel == names::user_channel(&user)
                        && matches!(frame, ServerFrame::RoomAdded { room } if room.room.id == dm)
                })
            })
        };

        send(&world.chat, "1-0", Handling::First).await;
        assert_eq!(announced(&world.events()), [false, false]);
        send(&world.chat, "2-0", Handling::Again).await;
        assert_eq!(announced(&world.events()), [true, true]);
    }
}
