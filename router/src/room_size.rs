//! Room size (v1.1): each group room has at most `max_members` members,
//! its own (chosen at creation, 2 to the server's cap) or the server's
//! default. Joining or adding past it is 409 `conflict` "room is full".
//!
//! The count and the add are one step in the store
//! (`Store::add_member_within`), so two concurrent joins cannot both take
//! the last place; a room's joins are also handled one at a time by the
//! router holding its partition. Direct-message rooms always have exactly
//! their two users and are not limited here.

use chat_persistence::MemberAdded;
use chat_protocol::{Id, Role, Room, RoomId};
use serde::{Deserialize, Serialize};

use crate::{Chat, Error, Result};

/// The server's room size limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomLimits {
    /// The limit of a room created without `max_members`.
    pub default_max_members: u32,
    /// The highest `max_members` a room may ask for.
    pub max_members_cap: u32,
    /// The most members one `POST /rooms` may list in `member_ids`
    /// ([`crate::caps`]).
    pub members_per_call: u32,
}

impl Default for RoomLimits {
    fn default() -> RoomLimits {
        RoomLimits {
            default_max_members: 10_000,
            max_members_cap: 10_000,
            members_per_call: 100,
        }
    }
}

/// The fewest members a room may be limited to (its owner and one more).
pub const MIN_MAX_MEMBERS: u32 = 2;

impl Chat {
    /// Checks a requested `max_members` against the server's cap.
    pub(crate) fn checked_max_members(&self, requested: Option<u32>) -> Result<Option<u32>> {
        let cap = self.room_limits.max_members_cap;
        match requested {
            Some(max) if !(MIN_MAX_MEMBERS..=cap).contains(&max) => Err(Error::bad_request(
                format!("max_members must be {MIN_MAX_MEMBERS} to {cap}"),
            )),
            other => Ok(other),
        }
    }

    /// The most members `room` may have.
    pub(crate) fn max_members_of(&self, room: &Room) -> u32 {
        room.max_members
            .unwrap_or(self.room_limits.default_max_members)
    }

    /// Adds `user` to `room` unless it is full; answers whether they were
    /// newly added (`false`: already a member).
    pub(crate) async fn add_within_limit(
        &self,
        room: &Room,
        id: &RoomId,
        user: Id,
        role: Role,
    ) -> Result<bool> {
        let max = self.max_members_of(room);
        match self
            .store
            .add_member_within(id, user, role, self.now_ms(), max)
            .await?
        {
            MemberAdded::Added => Ok(true),
            MemberAdded::AlreadyMember => Ok(false),
            MemberAdded::Full => {
                crate::metrics::ROOM_FULL.inc();
                Err(Error::Conflict("room is full"))
            }
        }
    }
}
