//! Names for ids: usernames for user ids and labels (`#general·3f2a`,
//! `@bob`) for room ids, looked up over REST once and remembered.
//!
//! Room names are not unique (anyone may create a public `general`), so a
//! group room's label carries a short tag derived from its id: two rooms of
//! one name show different labels, and one room always the same label.

use std::collections::HashMap;

use chat_protocol::{Id, Room, RoomId, RoomKind, User};

use crate::api::Api;

pub struct Names {
    api: Api,
    me: Id,
    users: HashMap<Id, String>,
    rooms: HashMap<RoomId, String>,
}

impl Names {
    pub fn new(api: Api, me: &User) -> Names {
        let mut users = HashMap::new();
        users.insert(me.id, me.username.clone());
        Names {
            api,
            me: me.id,
            users,
            rooms: HashMap::new(),
        }
    }

    pub fn learn_user(&mut self, user: &User) {
        self.users.insert(user.id, user.username.clone());
    }

    pub fn learn_room(&mut self, room: &Room) {
        if room.kind == RoomKind::Group {
            self.rooms.insert(room.id, group_label(&room.name, room.id));
        }
    }

    /// The signed-in user's id.
    pub fn me(&self) -> Id {
        self.me
    }

    /// Signs the lookups in with a new token (after logging in again).
    pub fn set_api(&mut self, api: Api) {
        self.api = api;
    }

    /// The username of `id`, asking the server the first time.
    pub async fn user(&mut self, id: Id) -> String {
        if let Some(name) = self.users.get(&id) {
            return name.clone();
        }
        match self.api.user(id).await {
            Ok(user) => {
                self.users.insert(id, user.username.clone());
                user.username
            }
            Err(_) => format!("user:{id}"),
        }
    }

    /// `#name·tag` for a group room, `@other` for a DM.
    pub async fn room(&mut self, id: RoomId) -> String {
        if let Some((lo, hi)) = id.dm_users() {
            let other = if lo == self.me { hi } else { lo };
            return format!("@{}", self.user(other).await);
        }
        if let Some(label) = self.rooms.get(&id) {
            return label.clone();
        }
        match self.api.room(&id).await {
            Ok(room) => {
                let label = group_label(&room.name, room.id);
                self.learn_room(&room);
                label
            }
            Err(_) => format!("room:{id}"),
        }
    }
}

/// `#name·tag`, the tag being four hex digits mixed from the whole id (a
/// Snowflake's low bits alone are mostly the same worker and sequence).
fn group_label(name: &str, id: RoomId) -> String {
    let bits = match id {
        RoomId::Group(Id(bits)) => bits,
        RoomId::Dm { lo, hi } => lo.0 ^ hi.0.rotate_left(32),
    };
    // Fibonacci hashing: the top 16 bits of the product depend on every bit.
    let tag = bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48;
    format!("#{name}·{tag:04x}")
}

/// "1 member", "2 members": `count` and `thing`, plural unless one.
pub fn counted(count: usize, thing: &str) -> String {
    match count {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

/// `HH:MM:SS` (UTC) of a timestamp in milliseconds since the Unix epoch.
pub fn clock(unix_ms: u64) -> String {
    let secs = unix_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_of_one_name_have_different_labels() {
        let first = group_label("general", RoomId::Group(Id(1 << 22)));
        let second = group_label("general", RoomId::Group(Id(2 << 22)));
        assert!(first.starts_with("#general·"), "{first}");
        assert_eq!(first.chars().count(), "#general·".chars().count() + 4);
        assert_ne!(first, second);
        assert_eq!(first, group_label("general", RoomId::Group(Id(1 << 22))));
    }

    #[test]
    fn member_counts_are_grammatical() {
        assert_eq!(counted(1, "member"), "1 member");
        assert_eq!(counted(2, "member"), "2 members");
        assert_eq!(counted(0, "room"), "0 rooms");
    }

    #[test]
    fn clock_is_utc_time_of_day() {
        // 2024-01-01T13:05:09Z
        assert_eq!(clock(1_704_114_309_000), "13:05:09");
        assert_eq!(clock(0), "00:00:00");
    }
}
