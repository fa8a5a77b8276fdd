//! Paging bounds that clients give (`before`, `after`, a member cursor),
//! made safe for the stores.
//!
//! A bound need not be the id of anything, so a client may send any 64-bit
//! id, and one past every id is fine: "before the end of time" is the
//! newest page, "after the end of time" is nothing. The stores keep ids as
//! signed 64-bit integers (SQLite `INTEGER`, CQL `bigint`), whose order is
//! the ids' own only below 2^63; ids stay there (a Snowflake's time fills
//! 2^63 in 2093), bounds need not. So a bound at or past [`LAST_ID`] is
//! answered here and never reaches a store.

use chat_protocol::Id;

/// The highest id the stores order as ids.
const LAST_ID: Id = Id(i64::MAX as u64);

/// A `before` bound as the stores can take it: one past every id is no
/// bound at all.
pub(crate) fn before(bound: Option<Id>) -> Option<Id> {
    bound.filter(|bound| *bound <= LAST_ID)
}

/// Whether nothing can follow the `after` bound: it is at or past every id.
pub(crate) fn nothing_after(bound: Option<Id>) -> bool {
    bound.is_some_and(|bound| bound >= LAST_ID)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_past_every_id_are_answered_here() {
        for past in [LAST_ID.0 + 1, u64::MAX] {
            assert_eq!(before(Some(Id(past))), None, "{past}");
            assert!(nothing_after(Some(Id(past))), "{past}");
        }
        assert!(nothing_after(Some(LAST_ID)));
        for ordinary in [0, 1, 7_000_000_000_000_000, LAST_ID.0 - 1] {
            assert_eq!(before(Some(Id(ordinary))), Some(Id(ordinary)));
            assert!(!nothing_after(Some(Id(ordinary))));
        }
        assert_eq!(before(Some(LAST_ID)), Some(LAST_ID));
        assert_eq!(before(None), None);
        assert!(!nothing_after(None));
    }
}
