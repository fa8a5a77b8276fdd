//! Room ids: opaque strings on the wire. A group room's id is its Snowflake
//! in decimal; a direct-message room between two users is `dm:<lo>:<hi>`.
//!
//! Parsing is strict so that one room has exactly one spelling: `dm:5:3`,
//! `dm:3:3` and `007` are not room ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Id;

/// The id of a group room or of a direct-message room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoomId {
    /// A group room, named by its Snowflake.
    Group(Id),
    /// The direct-message room of two distinct users, `lo < hi`.
    Dm { lo: Id, hi: Id },
}

/// Why a string is not a room id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseRoomIdError {
    #[error("a room id is a decimal id or dm:<lo>:<hi>")]
    Malformed,
    #[error("a direct-message room needs two distinct users")]
    SameUser,
}

impl RoomId {
    /// The DM room of `a` and `b`, whichever order they come in.
    pub fn dm(a: Id, b: Id) -> Result<RoomId, ParseRoomIdError> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Ok(RoomId::Dm { lo: a, hi: b }),
            std::cmp::Ordering::Greater => Ok(RoomId::Dm { lo: b, hi: a }),
            std::cmp::Ordering::Equal => Err(ParseRoomIdError::SameUser),
        }
    }

    /// Whether this is a direct-message room.
    pub fn is_dm(&self) -> bool {
        matches!(self, RoomId::Dm { .. })
    }

    /// The two users of a DM room.
    pub fn dm_users(&self) -> Option<(Id, Id)> {
        match *self {
            RoomId::Dm { lo, hi } => Some((lo, hi)),
            RoomId::Group(_) => None,
        }
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomId::Group(id) => write!(f, "{id}"),
            RoomId::Dm { lo, hi } => write!(f, "dm:{lo}:{hi}"),
        }
    }
}

fn canonical_id(s: &str) -> Result<Id, ParseRoomIdError> {
    let id: Id = s.parse().map_err(|_| ParseRoomIdError::Malformed)?;
    // Reject "007" so that every room has a single spelling.
    if id.to_string() != s {
        return Err(ParseRoomIdError::Malformed);
    }
    Ok(id)
}

impl FromStr for RoomId {
    type Err = ParseRoomIdError;
    fn from_str(s: &str) -> Result<RoomId, ParseRoomIdError> {
        match s.strip_prefix("dm:") {
            None => canonical_id(s).map(RoomId::Group),
            Some(pair) => {
                let (lo, hi) = pair.split_once(':').ok_or(ParseRoomIdError::Malformed)?;
                let (lo, hi) = (canonical_id(lo)?, canonical_id(hi)?);
                match lo.cmp(&hi) {
                    std::cmp::Ordering::Less => Ok(RoomId::Dm { lo, hi }),
                    std::cmp::Ordering::Equal => Err(ParseRoomIdError::SameUser),
                    std::cmp::Ordering::Greater => Err(ParseRoomIdError::Malformed),
                }
            }
        }
    }
}

impl Serialize for RoomId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RoomId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RoomId, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["1", "123456789", "dm:1:2", "dm:99:18446744073709551615"] {
            assert_eq!(s.parse::<RoomId>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn dm_orders_its_users_as_integers() {
        // "10" < "9" as strings, but 9 < 10 as integers.
        assert_eq!(RoomId::dm(Id(10), Id(9)).unwrap().to_string(), "dm:9:10");
        assert_eq!(RoomId::dm(Id(4), Id(4)), Err(ParseRoomIdError::SameUser));
    }

    #[test]
    fn rejects_non_canonical_spellings() {
        for s in [
            "", "dm:", "dm:2:1", "dm:1", "dm:1:2:3", "007", "x", "dm:a:b", "-1", "+1",
        ] {
            assert!(s.parse::<RoomId>().is_err(), "{s:?} parsed");
        }
        assert_eq!("dm:3:3".parse::<RoomId>(), Err(ParseRoomIdError::SameUser));
    }
}
