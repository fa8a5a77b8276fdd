//! Cases: [`SharedState::put_if_absent`](crate::SharedState::put_if_absent),
//! the claims behind `client_id` deduplication: the first live value wins
//! and lives for its time to live.

use std::time::Duration;

use super::helpers::{concurrently, payload, unique};
use crate::{Bus, Payload, SharedState};

/// [`SharedState::put_if_absent`] stores a value unless the key holds a
/// live one, which it answers instead (binary values included);
/// [`SharedState::remove`] (idempotent) frees the key.
pub async fn put_if_absent_keeps_the_first_live_value(state: &dyn SharedState) {
    let [key, bin] = ["k", "bin"].map(unique);
    let long = Duration::from_secs(60);
    assert_eq!(
        state.put_if_absent(&key, payload("a"), long).await.unwrap(),
        None
    );
    assert_eq!(
        state.put_if_absent(&key, payload("b"), long).await.unwrap(),
        Some(payload("a"))
    );
    state.remove(&key).await.unwrap();
    state.remove(&key).await.unwrap();
    assert_eq!(
        state
            .put_if_absent(&key, payload("again"), long)
            .await
            .unwrap(),
        None
    );
    // Binary values survive.
    let binary = Payload::from_static(&[0, 159, 146, 150, 255]);
    state
        .put_if_absent(&bin, binary.clone(), long)
        .await
        .unwrap();
    assert_eq!(
        state.put_if_absent(&bin, payload("x"), long).await.unwrap(),
        Some(binary)
    );
}

/// A value stored by [`SharedState::put_if_absent`] lives for its `ttl`:
/// answered until then, gone afterwards; a zero `ttl` keeps nothing.
pub async fn put_if_absent_values_live_for_their_ttl(state: &dyn SharedState) {
    let [short, zero] = ["short", "zero"].map(unique);
    let ttl = Duration::from_millis(50);
    assert_eq!(
        state
            .put_if_absent(&short, payload("a"), ttl)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        state
            .put_if_absent(&short, payload("b"), ttl)
            .await
            .unwrap(),
        Some(payload("a"))
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(
        state
            .put_if_absent(&short, payload("c"), Duration::from_secs(60))
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        state
            .put_if_absent(&zero, payload("a"), Duration::ZERO)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        state
            .put_if_absent(&zero, payload("b"), Duration::ZERO)
            .await
            .unwrap(),
        None,
        "a zero ttl keeps nothing"
    );
}

/// [`SharedState::put_if_absent`] is atomic: of 20 concurrent calls for one
/// key from two processes, exactly one stores, and the others are answered
/// its value.
pub async fn put_if_absent_stores_once_among_concurrent_callers(one: &Bus, other: &Bus) {
    let key = unique("k");
    let outcomes = concurrently(one, other, 20, |state, i| {
        let key = key.clone();
        async move {
            let mine = payload(&i.to_string());
            let answer = state
                .put_if_absent(&key, mine.clone(), Duration::from_secs(60))
                .await
                .unwrap();
            (mine, answer)
        }
    })
    .await;
    let mut stored = Vec::new();
    let mut answers = Vec::new();
    for (mine, answer) in outcomes {
        match answer {
            None => stored.push(mine),
            Some(existing) => answers.push(existing),
        }
    }
    assert_eq!(stored.len(), 1, "exactly one stores");
    assert!(answers.iter().all(|a| *a == stored[0]), "the others see it");
}
