//! Cases: leases in [`SharedState`](crate::SharedState), worker ids and
//! work stream partitions held by one owner each, renewed by it alone and
//! taken over when it falls silent; and the backend's ping.

use std::collections::HashSet;
use std::time::Duration;

use super::helpers::{concurrently, unique};
use crate::{Bus, BusError, MAX_WORKER_ID, SharedState};

/// [`SharedState::lease_worker_id`] never hands one id to two owners, even
/// leasing concurrently from two processes, and only ids up to
/// [`MAX_WORKER_ID`]; [`SharedState::renew_worker_id`] renews a lease for
/// its owner only, never for someone else nor for an id never leased.
pub async fn worker_ids_are_leased_uniquely_and_renewed_only_by_their_owner(
    one: &Bus,
    other: &Bus,
) {
    let ttl = Duration::from_secs(60);
    let owners = unique("process");
    let leases = concurrently(one, other, 50, |state, i| {
        let owner = format!("{owners}-{i}");
        async move {
            let id = state.lease_worker_id(&owner, ttl).await.unwrap();
            (owner, id)
        }
    })
    .await;
    let unique: HashSet<u16> = leases.iter().map(|(_, id)| *id).collect();
    assert_eq!(unique.len(), 50, "no two owners share an id");
    assert!(unique.iter().all(|id| *id <= MAX_WORKER_ID));

    let state = &one.state;
    let (owner, id) = &leases[0];
    assert!(state.renew_worker_id(*id, owner, ttl).await.unwrap());
    assert!(
        !state
            .renew_worker_id(*id, "someone else", ttl)
            .await
            .unwrap()
    );
    let free = (0..=MAX_WORKER_ID).find(|i| !unique.contains(i)).unwrap();
    assert!(
        !state.renew_worker_id(free, owner, ttl).await.unwrap(),
        "an id never leased"
    );
    // A later lease, a short one too, takes none of the held ids.
    let short = state
        .lease_worker_id(&format!("{owners}-short"), Duration::from_millis(100))
        .await
        .unwrap();
    assert!(!unique.contains(&short));
}

/// A worker id lease that runs out cannot be renewed by its old owner and
/// is handed out again; every id in `0..=MAX_WORKER_ID` can be leased, and
/// leasing one more fails with `Unavailable`. Takes every worker id: needs
/// a backend where nobody else holds one.
pub async fn expired_worker_ids_are_leased_again_until_every_id_is_taken(state: &dyn SharedState) {
    let ttl = Duration::from_secs(60);
    let owner = unique("short-lived");
    let short = state
        .lease_worker_id(&owner, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(short <= MAX_WORKER_ID);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!state.renew_worker_id(short, &owner, ttl).await.unwrap());

    let many = unique("many");
    let mut leased = HashSet::new();
    for n in 0..=MAX_WORKER_ID {
        let id = state
            .lease_worker_id(&format!("{many}-{n}"), ttl)
            .await
            .unwrap();
        assert!(leased.insert(id), "{id} leased twice");
    }
    assert_eq!(leased, (0..=MAX_WORKER_ID).collect(), "every id");
    assert!(
        leased.contains(&short),
        "the expired id is handed out again"
    );
    assert!(matches!(
        state.lease_worker_id("one too many", ttl).await,
        Err(BusError::Unavailable(_))
    ));
}

/// [`SharedState::claim_partitions`]: the first member takes every
/// partition; a second one takes the half that the first gives back, never
/// one the first still holds; a member that leaves hands all of its
/// partitions to the other.
pub async fn partitions_are_held_by_one_member_each_and_rebalanced(one: &Bus, other: &Bus) {
    let group = unique("group");
    let ttl = Duration::from_secs(30);
    let first = one
        .state
        .claim_partitions(&group, "a", 8, ttl)
        .await
        .unwrap();
    assert_eq!(first.held, (0..8).collect::<Vec<u16>>());
    assert_eq!(first.share, 8);
    let second = other
        .state
        .claim_partitions(&group, "b", 8, ttl)
        .await
        .unwrap();
    assert!(second.held.is_empty(), "nothing free yet");
    assert_eq!(second.share, 4);
    let renewed = one
        .state
        .claim_partitions(&group, "a", 8, ttl)
        .await
        .unwrap();
    assert_eq!(renewed.held.len(), 8, "still held until given back");
    assert_eq!(renewed.share, 4);
    one.state
        .release_partitions(&group, "a", &renewed.held[4..], false)
        .await
        .unwrap();
    // Someone else's lease is not given back by a stranger.
    other
        .state
        .release_partitions(&group, "b", &[0, 1], false)
        .await
        .unwrap();
    let second = other
        .state
        .claim_partitions(&group, "b", 8, ttl)
        .await
        .unwrap();
    assert_eq!(second.held, vec![4, 5, 6, 7]);
    let first = one
        .state
        .claim_partitions(&group, "a", 8, ttl)
        .await
        .unwrap();
    assert_eq!(first.held, vec![0, 1, 2, 3]);
    one.state
        .release_partitions(&group, "a", &first.held, true)
        .await
        .unwrap();
    let all = other
        .state
        .claim_partitions(&group, "b", 8, ttl)
        .await
        .unwrap();
    assert_eq!(all.held, (0..8).collect::<Vec<u16>>());
    assert_eq!(all.share, 8, "the member that left no longer counts");
}

/// A member that stops renewing loses its partitions once their lease runs
/// out; another takes them, and the silent one, back, holds none of them.
pub async fn partitions_of_a_silent_member_are_taken_over(state: &dyn SharedState) {
    let group = unique("group");
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(30);
    let held = state.claim_partitions(&group, "a", 4, short).await.unwrap();
    assert_eq!(held.held.len(), 4);
    let waiting = state.claim_partitions(&group, "b", 4, long).await.unwrap();
    assert!(waiting.held.is_empty(), "a's leases are live");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken = state.claim_partitions(&group, "b", 4, long).await.unwrap();
    assert_eq!(taken.held, vec![0, 1, 2, 3]);
    let back = state.claim_partitions(&group, "a", 4, long).await.unwrap();
    assert!(back.held.is_empty(), "b holds them all now");
    assert_eq!(back.share, 2);
}

/// [`SharedState::ping`] answers `Ok` while the backend is reachable.
pub async fn ping_answers(state: &dyn SharedState) {
    state.ping().await.unwrap();
}
