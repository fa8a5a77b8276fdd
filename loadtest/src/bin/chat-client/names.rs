//! Names for ids: usernames for user ids and labels (`#general`,
//! `@bob`) for room ids, looked up over REST once and remembered.

use std::collections::HashMap;

use chat_loadtest::api::Api;
use chat_protocol::{Id, Room, RoomId, RoomKind, User};

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
            self.rooms.insert(room.id, format!("#{}", room.name));
        }
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

    /// `#name` for a group room, `@other` for a DM.
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
                self.learn_room(&room);
                format!("#{}", room.name)
            }
            Err(_) => format!("room:{id}"),
        }
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
    fn clock_is_utc_time_of_day() {
        // 2024-01-01T13:05:09Z
        assert_eq!(clock(1_704_114_309_000), "13:05:09");
        assert_eq!(clock(0), "00:00:00");
    }
}
