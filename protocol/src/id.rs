//! Snowflake ids: 41 bits of milliseconds since 2024-01-01T00:00:00Z, 10 bits
//! of worker id and 12 bits of sequence.
//!
//! Ids are decimal strings in JSON (JavaScript numbers cannot hold a u64) and
//! unsigned integers in MessagePack. Serialization picks the form from the
//! format's `is_human_readable`; deserialization accepts both forms in every
//! format, because serde's buffering (tagged enums, `flatten`) can hide the
//! format's preference from us.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 2024-01-01T00:00:00Z in milliseconds since the Unix epoch.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
/// Bits of the worker id field.
pub const WORKER_BITS: u32 = 10;
/// Bits of the per-millisecond sequence field.
pub const SEQUENCE_BITS: u32 = 12;
/// The largest valid worker id.
pub const MAX_WORKER_ID: u16 = (1 << WORKER_BITS) - 1;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;
const TIMESTAMP_SHIFT: u32 = WORKER_BITS + SEQUENCE_BITS;

/// A 64-bit Snowflake id of a user, a message, a group room or a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub u64);

impl Id {
    /// The id with the given parts. Out-of-range parts are masked.
    pub fn from_parts(unix_ms: u64, worker: u16, sequence: u64) -> Id {
        let since_epoch = unix_ms.saturating_sub(EPOCH_MS) & ((1 << 41) - 1);
        Id((since_epoch << TIMESTAMP_SHIFT)
            | ((u64::from(worker) & u64::from(MAX_WORKER_ID)) << SEQUENCE_BITS)
            | (sequence & MAX_SEQUENCE))
    }

    /// The smallest id that can be minted at `unix_ms`: every id created at or
    /// after that millisecond is `>=` this one. Used to turn times into id
    /// bounds (idempotency windows, time buckets).
    pub fn first_at(unix_ms: u64) -> Id {
        Id::from_parts(unix_ms, 0, 0)
    }

    /// Milliseconds since the Unix epoch at which this id was minted.
    pub fn unix_ms(self) -> u64 {
        (self.0 >> TIMESTAMP_SHIFT) + EPOCH_MS
    }

    /// The worker id part.
    pub fn worker(self) -> u16 {
        ((self.0 >> SEQUENCE_BITS) & u64::from(MAX_WORKER_ID)) as u16
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a string is not an id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an id is a decimal string of an unsigned 64-bit integer")]
pub struct ParseIdError;

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        // `u64::from_str` accepts a leading '+'; ids are plain digits only.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseIdError);
        }
        s.parse().map(Id).map_err(|_| ParseIdError)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id (decimal string or unsigned integer)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                u64::try_from(v)
                    .map(Id)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// Mints unique, time-ordered ids for one worker id.
///
/// Ids from one generator strictly increase, even when the wall clock steps
/// backwards (the generator keeps using its last timestamp until the clock
/// catches up) or when more than 4096 ids are asked for in one millisecond
/// (the generator borrows the next millisecond).
#[derive(Debug)]
pub struct IdGenerator {
    worker: u16,
    state: Mutex<GeneratorState>,
    /// Set once the worker id may belong to another process (its lease was
    /// lost): from then on nothing is minted, so no id can repeat.
    revoked: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct GeneratorState {
    last_ms: u64,
    sequence: u64,
}

impl IdGenerator {
    /// A generator for `worker`, which must be unique among live processes.
    pub fn new(worker: u16) -> IdGenerator {
        IdGenerator {
            worker: worker & MAX_WORKER_ID,
            state: Mutex::new(GeneratorState::default()),
            revoked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The worker id this generator mints for.
    pub fn worker(&self) -> u16 {
        self.worker
    }

    /// The next id. Panics-free even after [`IdGenerator::revoke`]: for
    /// callers that hold their worker id for good (tests, a single node);
    /// leased worker ids mint through [`IdGenerator::try_next_id`].
    pub fn next_id(&self) -> Id {
        self.next_id_at(now_ms())
    }

    /// The next id, or `None` once the worker id was revoked.
    pub fn try_next_id(&self) -> Option<Id> {
        if self.is_revoked() {
            return None;
        }
        Some(self.next_id_at(now_ms()))
    }

    /// Stops minting for good: the worker id's lease was lost, another
    /// process may mint the same ids from now on.
    pub fn revoke(&self) {
        self.revoked
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`IdGenerator::revoke`] was called.
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn next_id_at(&self, now: u64) -> Id {
        // A poisoned lock only means another thread panicked between two
        // plain integer writes; the state is still valid.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now > state.last_ms {
            state.last_ms = now;
            state.sequence = 0;
        } else if state.sequence == MAX_SEQUENCE {
            state.last_ms += 1;
            state.sequence = 0;
        } else {
            state.sequence += 1;
        }
        Id::from_parts(state.last_ms, self.worker, state.sequence)
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(EPOCH_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_generator_mints_nothing() {
        let ids = IdGenerator::new(3);
        let before = ids.try_next_id().expect("minting before the revocation");
        ids.revoke();
        assert!(ids.is_revoked());
        assert_eq!(ids.try_next_id(), None, "no id after the lease is lost");
        assert_eq!(ids.try_next_id(), None);
        assert_eq!(before.worker(), 3);
    }

    #[test]
    fn parts_round_trip() {
        let id = Id::from_parts(EPOCH_MS + 123_456, 513, 77);
        assert_eq!(id.unix_ms(), EPOCH_MS + 123_456);
        assert_eq!(id.worker(), 513);
        assert_eq!(id.0 & MAX_SEQUENCE, 77);
    }

    #[test]
    fn ids_strictly_increase_even_if_the_clock_goes_back() {
        let generator = IdGenerator::new(3);
        let a = generator.next_id_at(EPOCH_MS + 10_000);
        let b = generator.next_id_at(EPOCH_MS + 5_000);
        let c = generator.next_id_at(EPOCH_MS + 10_000);
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn sequence_overflow_borrows_the_next_millisecond() {
        let generator = IdGenerator::new(1);
        let t = EPOCH_MS + 1_000;
        let ids: Vec<Id> = (0..5000).map(|_| generator.next_id_at(t)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids[4095].unix_ms(), t);
        assert_eq!(ids[4096].unix_ms(), t + 1);
    }

    #[test]
    fn first_at_bounds_every_id_of_that_millisecond() {
        let generator = IdGenerator::new(MAX_WORKER_ID);
        let t = EPOCH_MS + 42;
        let id = generator.next_id_at(t);
        assert!(Id::first_at(t) <= id && id < Id::first_at(t + 1));
    }

    #[test]
    fn parsing_accepts_only_plain_digits() {
        assert_eq!("42".parse::<Id>(), Ok(Id(42)));
        assert!("+42".parse::<Id>().is_err());
        assert!("".parse::<Id>().is_err());
        assert!("-1".parse::<Id>().is_err());
        assert!("18446744073709551616".parse::<Id>().is_err());
    }

    #[test]
    fn json_uses_strings_and_msgpack_integers() {
        let id = Id(18_446_744_073_709_551_615);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"18446744073709551615\""
        );
        let packed = rmp_serde::to_vec(&id).unwrap();
        assert_eq!(packed[0], 0xcf, "MessagePack uint64 marker");
        assert_eq!(rmp_serde::from_slice::<Id>(&packed).unwrap(), id);
        assert_eq!(serde_json::from_str::<Id>("7").unwrap(), Id(7));
        assert!(serde_json::from_str::<Id>("\"x\"").is_err());
        assert!(serde_json::from_str::<Id>("-3").is_err());
    }
}
