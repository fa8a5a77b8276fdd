//! Per-room ordered partitions: which stream a piece of work goes to, and
//! which consumer may handle it.
//!
//! Work is spread over a fixed number of partitions by a stable hash of its
//! key (a room id, or a user id for work that belongs to no room). Each
//! partition is its own stream (`inbound.7`, `persist.7`), and each
//! partition of a consumer group is held by exactly one live member at a
//! time through a lease in the shared state
//! ([`SharedState::claim_partitions`](crate::SharedState::claim_partitions)).
//! One holder reading one stream in order is what keeps a room's work in
//! one order from the gateway to the store and back out to its members.
//!
//! Ownership is like a Kafka consumer group's, with the coordinator's job
//! done by one atomic call: every member announces itself and renews its
//! leases every third of the lease time, takes free partitions up to its
//! fair share (`ceil(partitions / live members)`), and gives back what it
//! holds beyond that share once it has finished and acknowledged its work
//! on them, so that a member that joins gets partitions within two renewal
//! periods. A member that dies stops renewing; its leases run out and the
//! survivors take its partitions, first taking over whatever it left
//! unacknowledged (handled again, idempotently) and only then reading new
//! entries, so order is kept across the hand-over.

/// How many partitions there are unless configured (`realtime.partitions`).
pub const DEFAULT_PARTITIONS: u16 = 16;

/// The most partitions a deployment may have.
pub const MAX_PARTITIONS: u16 = 1024;

/// The partition of `key` among `count`: FNV-1a of its bytes, the same in
/// every process and every version (changing it would reorder rooms in
/// flight during an upgrade).
pub fn partition_of(key: &str, count: u16) -> u16 {
    (fnv1a(key) % u64::from(count.max(1))) as u16
}

/// A stable 64-bit hash (FNV-1a).
pub fn fnv1a(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The stream of partition `partition` of the work stream `base`.
pub fn stream(base: &str, partition: u16) -> String {
    format!("{base}.{partition}")
}

/// What one member holds after
/// [`claim_partitions`](crate::SharedState::claim_partitions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leases {
    /// The partitions this member holds now, in increasing order.
    pub held: Vec<u16>,
    /// How many it should hold: `ceil(partitions / live members)`.
    pub share: u16,
}

/// The fair share of each of `members` live members.
pub fn fair_share(partitions: u16, members: usize) -> u16 {
    let members = members.max(1);
    let share = usize::from(partitions).div_ceil(members);
    u16::try_from(share).unwrap_or(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_stable_and_in_range() {
        for count in [1, 2, 16, 1024] {
            for key in ["", "a", "0192837465", "dm:1:2"] {
                let p = partition_of(key, count);
                assert!(p < count);
                assert_eq!(p, partition_of(key, count));
            }
        }
        // Fixed values: a change of hash would move rooms between partitions.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn shares_cover_every_partition() {
        assert_eq!(fair_share(16, 0), 16);
        assert_eq!(fair_share(16, 1), 16);
        assert_eq!(fair_share(16, 3), 6);
        assert_eq!(fair_share(2, 5), 1);
        for members in 1..40 {
            assert!(usize::from(fair_share(16, members)) * members >= 16);
        }
    }
}
