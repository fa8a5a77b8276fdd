//! Time buckets of the messages table: pure arithmetic, no I/O.
//!
//! A room's messages are partitioned by `(room_id, bucket)`, where the bucket
//! is the message id's timestamp divided by the room's window, counted from
//! the Snowflake epoch (2024-01-01). Because the bucket is a function of the
//! id and the room, any message can be addressed from `(room_id, id)` alone,
//! and a page of history is a slice of one partition (or a few neighbouring
//! ones).
//!
//! Each room has its own window, chosen when the room is created (the
//! configured default, [`crate::scylla::ScyllaOptions::bucket_window`]) and
//! stored with it (`rooms.bucket_window_ms`): changing a room's window would
//! move its messages to other partitions, so it never changes, but a new
//! default applies to the rooms created after it. [`Buckets::of_room`]
//! reads the stored value back.

use std::time::Duration;

use chat_protocol::Id;
use chat_protocol::id::EPOCH_MS;

/// The default window: ten days, as Discord uses.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10 * 24 * 60 * 60);

/// The smallest window accepted. Below a minute, bucket numbers of far
/// future ids would overflow the `int` column (2^41 ms / 60 000 fits).
pub const MIN_WINDOW: Duration = Duration::from_secs(60);

/// How far the bucket of "now" is stretched into the future, so that a walk
/// does not miss a message minted by a node whose clock is slightly ahead.
pub(crate) const CLOCK_SLACK_MS: u64 = 60_000;

/// The bucket arithmetic of one window size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buckets {
    window_ms: u64,
}

impl Buckets {
    /// Buckets of `window`, which must be at least [`MIN_WINDOW`] and a
    /// whole number of milliseconds.
    pub fn new(window: Duration) -> Result<Buckets, String> {
        if window < MIN_WINDOW {
            return Err(format!(
                "the bucket window must be at least {} seconds",
                MIN_WINDOW.as_secs()
            ));
        }
        let window_ms = u64::try_from(window.as_millis())
            .map_err(|_| "the bucket window is too long".to_owned())?;
        Ok(Buckets { window_ms })
    }

    /// The buckets of a room whose row stores `window_ms` (the column
    /// `rooms.bucket_window_ms`). A room without a stored window (its row is
    /// missing, or not yet visible) takes `default`; a stored value outside
    /// the accepted range is refused rather than guessed, as it addresses
    /// the room's messages.
    pub(crate) fn of_room(window_ms: Option<i64>, default: Buckets) -> Result<Buckets, String> {
        let Some(window_ms) = window_ms else {
            return Ok(default);
        };
        let window_ms = u64::try_from(window_ms)
            .map_err(|_| format!("a room stores a negative bucket window ({window_ms} ms)"))?;
        Buckets::new(Duration::from_millis(window_ms))
    }

    /// The window in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The bucket holding messages minted at `unix_ms`. Times before the
    /// Snowflake epoch fall in bucket 0 (no id can be minted then).
    pub fn of_ms(&self, unix_ms: u64) -> i32 {
        let since_epoch = unix_ms.saturating_sub(EPOCH_MS);
        i32::try_from(since_epoch / self.window_ms).unwrap_or(i32::MAX)
    }

    /// The bucket of a message id.
    pub fn of(&self, id: Id) -> i32 {
        self.of_ms(id.unix_ms())
    }

    /// The first millisecond of `bucket` (negative buckets start at the epoch).
    pub fn start_ms(&self, bucket: i32) -> u64 {
        let bucket = u64::try_from(bucket).unwrap_or(0);
        EPOCH_MS.saturating_add(bucket.saturating_mul(self.window_ms))
    }

    /// The smallest id that falls in `bucket`.
    pub fn first_id(&self, bucket: i32) -> Id {
        Id::first_at(self.start_ms(bucket))
    }

    /// The largest id that falls in `bucket`.
    pub fn last_id(&self, bucket: i32) -> Id {
        Id(self.first_id(bucket.saturating_add(1)).0.saturating_sub(1))
    }

    /// The last bucket any message can be in at `now` (clock slack included).
    pub(crate) fn ceiling(&self, now: u64) -> i32 {
        self.of_ms(now.saturating_add(CLOCK_SLACK_MS))
    }
}

impl Default for Buckets {
    fn default() -> Buckets {
        Buckets {
            window_ms: DEFAULT_WINDOW.as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 24 * 60 * 60 * 1000;

    fn ten_days() -> Buckets {
        Buckets::new(DEFAULT_WINDOW).unwrap()
    }

    #[test]
    fn the_epoch_starts_bucket_zero() {
        let buckets = ten_days();
        assert_eq!(buckets.of_ms(EPOCH_MS), 0);
        assert_eq!(buckets.of(Id::first_at(EPOCH_MS)), 0);
        assert_eq!(buckets.start_ms(0), EPOCH_MS);
        assert_eq!(buckets.first_id(0), Id(0));
    }

    #[test]
    fn a_window_edge_belongs_to_the_next_bucket() {
        let buckets = ten_days();
        let edge = EPOCH_MS + 10 * DAY_MS;
        assert_eq!(buckets.of_ms(edge - 1), 0, "last millisecond of bucket 0");
        assert_eq!(buckets.of_ms(edge), 1, "first millisecond of bucket 1");
        assert_eq!(buckets.start_ms(1), edge);

        // The last id of the last millisecond, and the first of the next.
        let last = Id::from_parts(edge - 1, chat_protocol::id::MAX_WORKER_ID, 4095);
        let first = Id::first_at(edge);
        assert_eq!(Id(last.0 + 1), first, "the two ids are neighbours");
        assert_eq!(buckets.of(last), 0);
        assert_eq!(buckets.of(first), 1);
        assert_eq!(buckets.last_id(0), last);
        assert_eq!(buckets.first_id(1), first);
    }

    #[test]
    fn every_id_lies_between_its_buckets_first_and_last_id() {
        let buckets = Buckets::new(Duration::from_secs(3600)).unwrap();
        for offset in [
            0,
            1,
            59_999,
            3_599_999,
            3_600_000,
            7_200_001,
            99 * 3_600_000 + 5,
        ] {
            let id = Id::from_parts(EPOCH_MS + offset, 17, 99);
            let bucket = buckets.of(id);
            assert!(buckets.first_id(bucket) <= id && id <= buckets.last_id(bucket));
            assert_eq!(bucket, (offset / 3_600_000) as i32);
        }
    }

    #[test]
    fn times_before_the_epoch_and_far_future_ones_saturate() {
        let buckets = ten_days();
        assert_eq!(buckets.of_ms(0), 0);
        assert_eq!(buckets.of_ms(EPOCH_MS - 1), 0);
        assert_eq!(buckets.start_ms(-5), EPOCH_MS);
        let minute = Buckets::new(MIN_WINDOW).unwrap();
        // The largest Snowflake still has a bucket that fits an `int`.
        assert!(minute.of(Id(u64::MAX >> 1)) < i32::MAX);
        assert_eq!(minute.of_ms(u64::MAX), i32::MAX);
    }

    #[test]
    fn windows_are_validated() {
        assert!(Buckets::new(Duration::from_secs(59)).is_err());
        assert!(Buckets::new(MIN_WINDOW).is_ok());
        assert_eq!(Buckets::default(), ten_days());
        assert_eq!(ten_days().window_ms(), 10 * DAY_MS);
    }

    #[test]
    fn a_rooms_stored_window_wins_over_the_default() {
        let hour = Buckets::new(Duration::from_secs(3600)).unwrap();
        assert_eq!(Buckets::of_room(Some(3_600_000), ten_days()), Ok(hour));
        assert_eq!(Buckets::of_room(None, hour), Ok(hour));
        assert!(Buckets::of_room(Some(-1), ten_days()).is_err());
        assert!(Buckets::of_room(Some(59_999), ten_days()).is_err());
    }

    proptest::proptest! {
        /// For any window a room may store and any id, the id lies inside
        /// its bucket, buckets are ordered like ids, and the stored value
        /// round-trips.
        #[test]
        fn every_window_places_ids_in_order(
            window_ms in MIN_WINDOW.as_millis() as u64..=400 * DAY_MS,
            // Times up to ~35 years after the epoch (ids wrap after 2^41 ms).
            a in 0u64..(1 << 40),
            b in 0u64..(1 << 40),
        ) {
            let buckets = Buckets::of_room(Some(window_ms as i64), Buckets::default()).unwrap();
            proptest::prop_assert_eq!(buckets.window_ms(), window_ms);
            let (a, b) = (Id::from_parts(EPOCH_MS + a, 1, 0), Id::from_parts(EPOCH_MS + b, 1, 0));
            for id in [a, b] {
                let bucket = buckets.of(id);
                proptest::prop_assert!(bucket >= 0);
                proptest::prop_assert!(buckets.first_id(bucket) <= id && id <= buckets.last_id(bucket));
            }
            if a <= b {
                proptest::prop_assert!(buckets.of(a) <= buckets.of(b));
            }
        }
    }

    #[test]
    fn the_ceiling_carries_its_slack() {
        let buckets = ten_days();
        let edge = EPOCH_MS + 30 * DAY_MS; // start of bucket 3
        // Just before an edge, "now" already reaches into the next bucket.
        assert_eq!(buckets.ceiling(edge - 1_000), 3);
        assert_eq!(buckets.ceiling(edge - CLOCK_SLACK_MS - 1), 2);
    }
}
