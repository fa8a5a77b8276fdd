//! The membership checks that every room action goes through.
//!
//! A non-member learns nothing about a room's messages or members. A DM
//! room answers `forbidden` to anyone but its two users, whether it exists
//! or not, so that outsiders cannot probe who talks to whom.

use chat_persistence::Membership;
use chat_protocol::{Id, Room, RoomId, Visibility};

use crate::{Chat, Error, Result};

impl Chat {
    /// The room, which must exist and be visible to `viewer`: public group
    /// rooms are visible to everyone, other rooms to their members.
    pub async fn visible_room(
        &self,
        viewer: Id,
        id: &RoomId,
    ) -> Result<(Room, Option<Membership>)> {
        let room = self.existing_room(viewer, id).await?;
        let membership = self.store.membership(id, viewer).await?;
        if membership.is_none() && room.visibility != Visibility::Public {
            return Err(Error::Forbidden("not a member of this room"));
        }
        Ok((room, membership))
    }

    /// The room and `user`'s membership of it; `forbidden` for non-members.
    pub async fn member_of(&self, user: Id, id: &RoomId) -> Result<(Room, Membership)> {
        let membership = self.membership_in(user, id).await?;
        let room = self.existing_room(user, id).await?;
        Ok((room, membership))
    }

    /// `user`'s membership of the room, for actions that need no more of
    /// the room than that it exists: `forbidden` for non-members,
    /// `not_found` when there is no such room, as [`Chat::member_of`]
    /// answers. A membership implies its room (members are written after
    /// their room and removed before it), so a member costs one store read
    /// (the hot path: every `send` and `typing`); only a refusal reads the
    /// room, to say which.
    pub async fn membership_in(&self, user: Id, id: &RoomId) -> Result<Membership> {
        check_dm_participant(user, id)?;
        match self.store.membership(id, user).await? {
            Some(membership) => Ok(membership),
            None => {
                self.existing_room(user, id).await?;
                Err(Error::Forbidden("not a member of this room"))
            }
        }
    }

    /// The room, which must exist; DM rooms are refused to outsiders before
    /// their existence is looked up.
    pub(crate) async fn existing_room(&self, viewer: Id, id: &RoomId) -> Result<Room> {
        check_dm_participant(viewer, id)?;
        self.store.room(id).await?.ok_or(Error::NotFound("room"))
    }
}

/// `forbidden` if `id` is a DM room and `user` is not one of its two users.
pub fn check_dm_participant(user: Id, id: &RoomId) -> Result<()> {
    match id.dm_users() {
        Some((lo, hi)) if user != lo && user != hi => {
            Err(Error::Forbidden("not a member of this room"))
        }
        _ => Ok(()),
    }
}
