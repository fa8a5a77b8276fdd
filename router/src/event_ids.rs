//! Event ids that repeat when an event is published again.
//!
//! Gateways pass an event on to a connection once: each connection
//! remembers the ids of the last events it was sent and drops a copy
//! (`gateway/src/ws/conn.rs`). A copy comes when work is done again: an
//! inbound entry handled again after its router died before acknowledging
//! it (see [`crate::rooms::Handling`]), a persist batch written again after
//! its writer died. For the copy to be dropped it must carry the first
//! publish's id, so those ids are derived, not drawn at random:
//!
//! - the events published while an inbound entry is handled are numbered
//!   from the entry ([`handling_entry`]): the same entry publishes the same
//!   events in the same order, under the same ids, however often it is
//!   handled;
//! - a message's own event has the message's id; its `mention` and
//!   `notification` frames have ids derived from it ([`of_message`]).
//!
//! Events published outside both (presence from a gateway's own sweep, for
//! instance) get random ids, as before.

use std::cell::Cell;
use std::future::Future;

use chat_protocol::Id;

tokio::task_local! {
    /// The ids of the events of the entry being handled on this task.
    static ENTRY_EVENTS: EntryEvents;
}

/// The entry being handled and how many events its handling published.
struct EntryEvents {
    seed: u64,
    published: Cell<u64>,
}

/// Runs `handling`, the handling of the inbound entry `entry` of
/// `partition`, so that the events it publishes get ids derived from the
/// entry (see [`next`]).
pub async fn handling_entry<F: Future>(partition: u16, entry: &str, handling: F) -> F::Output {
    // No allocation: this runs for every entry, sends included.
    let seed = mix(chat_bus::partitions::fnv1a(entry), u64::from(partition));
    let events = EntryEvents {
        seed,
        published: Cell::new(0),
    };
    ENTRY_EVENTS.scope(events, handling).await
}

/// The id of the next event to publish: the entry's next, while an entry
/// is handled on this task, else a random one.
pub fn next() -> u64 {
    ENTRY_EVENTS
        .try_with(|events| {
            let n = events.published.get();
            events.published.set(n + 1);
            mix(events.seed, n)
        })
        .unwrap_or_else(|_| rand::random())
}

/// What a message's event brings besides itself, each with an id of its
/// own derived from the message's.
#[derive(Clone, Copy, Debug)]
pub enum OfMessage {
    Mention,
    Notification,
}

/// The id of a `mention` or `notification` frame of `message`.
pub fn of_message(message: Id, kind: OfMessage) -> u64 {
    mix(message.0, kind as u64 + 1)
}

/// A well-spread 64-bit id from a seed and a number (SplitMix64's
/// finaliser over their sum): the same in every process and version, and
/// far from both the seed and its other numbers, so that a derived id
/// does not meet a message id or another derived id by more than chance.
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ids_of_a_handling(partition: u16, entry: &str) -> Vec<u64> {
        handling_entry(partition, entry, async { (0..3).map(|_| next()).collect() }).await
    }

    #[tokio::test]
    async fn an_entry_handled_again_publishes_under_the_same_ids() {
        let first = ids_of_a_handling(3, "1700000000000-0").await;
        assert_eq!(ids_of_a_handling(3, "1700000000000-0").await, first);
        let distinct: std::collections::HashSet<_> = first.iter().collect();
        assert_eq!(distinct.len(), 3, "each event its own id: {first:?}");
        for other in [
            ids_of_a_handling(3, "1700000000000-1").await,
            ids_of_a_handling(4, "1700000000000-0").await,
        ] {
            assert!(other.iter().all(|id| !first.contains(id)), "{other:?}");
        }
    }

    #[tokio::test]
    async fn outside_a_handling_ids_are_random() {
        assert_ne!(next(), next());
        let inside = ids_of_a_handling(0, "1-0").await;
        assert!(!inside.contains(&next()));
    }

    #[test]
    fn a_messages_frames_have_ids_of_their_own() {
        let message = Id(123_456_789);
        let mention = of_message(message, OfMessage::Mention);
        let notification = of_message(message, OfMessage::Notification);
        assert_eq!(mention, of_message(message, OfMessage::Mention));
        assert_ne!(mention, notification);
        assert!(![message.0, message.0 + 1].contains(&mention));
    }
}
