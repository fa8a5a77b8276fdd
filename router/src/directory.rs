//! The room directory and paged member lists (v1.1).
//!
//! Both page with an opaque `next_cursor` that names where the previous
//! page ended, never an offset, so a page is one range read in the store
//! and pages stay consistent while rooms are created and members come and
//! go. A cursor is answered only when more lies beyond (one extra row is
//! read to know). Member lists carry presence (`online`), read from the
//! shared state in one call per page.

use chat_persistence::{DirectoryCursor, directory_name};
use chat_protocol::limits::{
    DIRECTORY_DEFAULT_LIMIT, DIRECTORY_MAX_LIMIT, MEMBERS_DEFAULT_LIMIT, MEMBERS_MAX_LIMIT,
    NAME_MAX_CHARS,
};
use chat_protocol::rest::Member;
use chat_protocol::{Id, Room, RoomId};

use crate::limits::bus_error;
use crate::{Chat, Error, Result, bounds};

/// A page of a list and where the next one starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl Chat {
    /// A page of the room's members with their roles and presence, by user
    /// id, for its members. `limit` 1 to 1000 (default 200).
    pub async fn members(
        &self,
        viewer: Id,
        id: &RoomId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Paged<Member>> {
        let limit = checked_limit(limit, MEMBERS_DEFAULT_LIMIT, MEMBERS_MAX_LIMIT)?;
        let after = cursor
            .map(|cursor| {
                cursor
                    .parse::<Id>()
                    .map_err(|_| Error::bad_request("invalid cursor"))
            })
            .transpose()?;
        self.membership_in(viewer, id).await?;
        if bounds::nothing_after(after) {
            return Ok(Paged {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let mut records = self.store.members_page(id, after, limit + 1).await?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let ids: Vec<String> = records.iter().map(|m| m.user.id.to_string()).collect();
        let online = self.bus.state.online(&ids).await.map_err(bus_error)?;
        let next_cursor = more
            .then(|| records.last().map(|m| m.user.id.to_string()))
            .flatten();
        let items = records
            .into_iter()
            .enumerate()
            .map(|(n, m)| Member {
                user: m.user.to_user(),
                role: m.role,
                online: online.get(n).copied().unwrap_or(false),
            })
            .collect();
        Ok(Paged { items, next_cursor })
    }

    /// A page of the room directory: public group rooms whose name starts
    /// with `prefix` (case-insensitive in every script), by name. `limit` 1 to 100
    /// (default 50). Anyone signed in may look.
    pub async fn public_rooms(
        &self,
        prefix: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Paged<Room>> {
        let limit = checked_limit(limit, DIRECTORY_DEFAULT_LIMIT, DIRECTORY_MAX_LIMIT)?;
        if prefix.chars().count() > NAME_MAX_CHARS {
            return Err(Error::bad_request(format!(
                "prefix is longer than {NAME_MAX_CHARS} characters"
            )));
        }
        let after = cursor.map(decode_directory_cursor).transpose()?;
        let mut rooms = self.store.public_rooms(prefix, after, limit + 1).await?;
        let more = rooms.len() > limit as usize;
        rooms.truncate(limit as usize);
        let next_cursor = more
            .then(|| rooms.last().map(encode_directory_cursor))
            .flatten();
        Ok(Paged {
            items: rooms,
            next_cursor,
        })
    }
}

fn checked_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(Error::bad_request(format!("limit must be 1 to {max}")));
    }
    Ok(limit)
}

/// `<room id>:<lower-cased name in hex>`: URL-safe whatever the name holds.
fn encode_directory_cursor(room: &Room) -> String {
    let hex: String = directory_name(&room.name)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}:{hex}", room.id)
}

fn decode_directory_cursor(cursor: &str) -> Result<DirectoryCursor> {
    let invalid = || Error::bad_request("invalid cursor");
    let (room, hex) = cursor.split_once(':').ok_or_else(invalid)?;
    let room_id: RoomId = room.parse().map_err(|_| invalid())?;
    if hex.len() % 2 != 0 || hex.len() > 8 * NAME_MAX_CHARS {
        return Err(invalid());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    let name_lower = String::from_utf8(bytes).map_err(|_| invalid())?;
    Ok(DirectoryCursor {
        name_lower,
        room_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::{RoomKind, Visibility};

    #[test]
    fn directory_cursors_round_trip_and_refuse_garbage() {
        let room = Room {
            id: RoomId::Group(Id(42)),
            kind: RoomKind::Group,
            name: "Café: Lounge".into(),
            visibility: Visibility::Public,
            owner_id: None,
            member_count: 1,
            created_at: 0,
            max_members: None,
        };
        let cursor = encode_directory_cursor(&room);
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b':')
        );
        assert_eq!(
            decode_directory_cursor(&cursor).unwrap(),
            DirectoryCursor {
                name_lower: "café: lounge".into(),
                room_id: room.id,
            }
        );
        for bad in ["", "42", "x:61", "42:6", "42:zz", "42:ff"] {
            assert!(decode_directory_cursor(bad).is_err(), "{bad}");
        }
    }
}
