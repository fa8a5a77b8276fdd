//! Cases: the rate limits of [`SharedState`](crate::SharedState), token
//! buckets and their lanes, alone or admitted in a batch, shared by every
//! process.

use std::time::Duration;

use super::helpers::{concurrently, payload, unique};
use crate::{Admission, Admitted, Bucket, Bus, Claim, RateDecision, SharedState};

/// [`SharedState::admit`]: a batch acts as its actions' single calls one
/// after the other: tokens from each bucket in turn (a refusal keeps the
/// earlier buckets' tokens taken and claims nothing), a claim answered by
/// an earlier claim of the batch (a repeat, which is not charged the
/// buckets taken only for new work, however spent they are), and the
/// buckets left as the single calls would leave them.
pub async fn a_batch_admission_acts_like_single_calls_in_turn(state: &dyn SharedState) {
    let [limits, other, first, second, third] =
        ["limits", "other", "cid-1", "cid-2", "cid-3"].map(unique);
    // A send's budget and send rate are two lanes of one key, as routers
    // keep them; a repeat is charged the budget, not the send rate.
    let budget = Bucket::lane(limits.clone(), "budget", 1.0, 10);
    let send = Bucket::lane(limits.clone(), "send", 1.0, 2);
    let claim = |key: &String, value: &str| Claim {
        key: key.clone(),
        value: payload(value),
        ttl: Duration::from_secs(60),
    };
    let send_of = |key: &String, value: &str| Admission {
        buckets: vec![budget.clone()],
        claim: Some(claim(key, value)),
        unless_repeat: vec![send.clone()],
    };
    let batch = [
        send_of(&first, "a"),
        send_of(&first, "b"),
        send_of(&second, "c"),
        send_of(&third, "d"),
        send_of(&third, "e"),
        send_of(&first, "f"),
        Admission {
            buckets: vec![Bucket::new(other.clone(), 1.0, 1)],
            ..Admission::default()
        },
    ];
    let answers = state.admit(&batch).await.unwrap();
    assert_eq!(answers.len(), 7);
    let repeat_of_a = Admitted::Admitted {
        existing: Some(payload("a")),
    };
    assert_eq!(answers[0], Admitted::Admitted { existing: None });
    assert_eq!(
        answers[1], repeat_of_a,
        "the second claim of a key answers the first"
    );
    assert_eq!(
        answers[2],
        Admitted::Admitted { existing: None },
        "the repeat took no send token, so the second new send has one"
    );
    for refused in &answers[3..5] {
        let Admitted::Limited {
            bucket: 1,
            retry_after,
        } = *refused
        else {
            panic!("a third new send is refused by its send bucket: {answers:?}");
        };
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
    }
    assert_eq!(
        answers[5], repeat_of_a,
        "a repeat is answered, whatever the send rate"
    );
    assert_eq!(answers[6], Admitted::Admitted { existing: None });
    // The budget gave six tokens (the refused sends' and the repeats'
    // too): four left.
    for _ in 0..4 {
        assert_eq!(
            state.take_token(&budget).await.unwrap(),
            RateDecision::Allowed
        );
    }
    assert!(matches!(
        state.take_token(&budget).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    // The send rate's two tokens are taken, whatever the budget's lane did.
    assert!(matches!(
        state.take_token(&send).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    // The refused sends claimed nothing: the claim made for "d" was given
    // back, so "e" was not taken for its repeat, and the key is free.
    assert_eq!(
        state
            .put_if_absent(&third, payload("later"), Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
    assert!(state.admit(&[]).await.unwrap().is_empty());
}

/// [`Bucket`] lanes: the buckets of one key are independent (each its own
/// rate, burst and tokens), whether taken from one at a time or in one
/// [`SharedState::admit`], and taking from one leaves the others as they
/// were; a key's only bucket is not one of its lanes.
pub async fn lanes_of_one_key_are_independent_buckets(state: &dyn SharedState) {
    let key = unique("lanes");
    // Fast: full again 60 ms after it was emptied; slow: never in a test.
    let fast = Bucket::lane(key.clone(), "fast", 50.0, 3);
    let slow = Bucket::lane(key.clone(), "slow", 0.001, 2);
    let only = Bucket::new(key.clone(), 0.001, 1);
    for _ in 0..2 {
        assert_eq!(
            state.take_token(&slow).await.unwrap(),
            RateDecision::Allowed
        );
    }
    assert!(matches!(
        state.take_token(&slow).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    // The fast lane has its own three tokens, and refills at its own rate.
    assert_eq!(
        state.take_tokens(&fast, 3).await.unwrap(),
        RateDecision::Allowed
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        state.take_tokens(&fast, 3).await.unwrap(),
        RateDecision::Allowed
    );
    // Writing the fast lane kept the slow one spent.
    assert!(matches!(
        state.take_token(&slow).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        state.take_token(&only).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(matches!(
        state.take_token(&only).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    // In one batch: each action takes from both lanes, the slow lane refuses.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let both = Admission {
        buckets: vec![fast.clone(), slow.clone()],
        ..Admission::default()
    };
    let answers = state.admit(&[both.clone(), both]).await.unwrap();
    for answer in &answers {
        assert!(
            matches!(answer, Admitted::Limited { bucket: 1, .. }),
            "{answers:?}"
        );
    }
    // The fast lane gave a token to each of the two (refused) actions: one
    // is left (and another comes only 20 ms later).
    assert_eq!(
        state.take_token(&fast).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(matches!(
        state.take_tokens(&fast, 2).await.unwrap(),
        RateDecision::Limited { .. }
    ));
}

/// [`SharedState::take_token`]: a bucket gives `burst` tokens at once, then
/// refuses with the time until the next token, which comes at the rate.
/// Buckets are independent of each other.
pub async fn token_bucket_allows_a_burst_then_the_rate(state: &dyn SharedState) {
    let [key, other] = ["u", "other"].map(|name| Bucket::new(unique(name), 10.0, 20));
    for _ in 0..20 {
        assert_eq!(state.take_token(&key).await.unwrap(), RateDecision::Allowed);
    }
    let RateDecision::Limited { retry_after } = state.take_token(&key).await.unwrap() else {
        panic!("the 21st is limited");
    };
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_millis(100),
        "{retry_after:?}"
    );
    assert_eq!(
        state.take_token(&other).await.unwrap(),
        RateDecision::Allowed
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(state.take_token(&key).await.unwrap(), RateDecision::Allowed);
}

/// [`SharedState::take_tokens`] takes several tokens in one call, all or
/// none: a refusal takes nothing and tells when that many will be there; a
/// count over the burst is never allowed.
pub async fn several_tokens_are_taken_at_once_or_not_at_all(state: &dyn SharedState) {
    let [key, huge] = ["n", "huge"].map(|name| Bucket::new(unique(name), 1.0, 10));
    for _ in 0..2 {
        assert_eq!(
            state.take_tokens(&key, 4).await.unwrap(),
            RateDecision::Allowed
        );
    }
    // Two left (and a few thousandths refilled): four are refused.
    let RateDecision::Limited { retry_after } = state.take_tokens(&key, 4).await.unwrap() else {
        panic!("4 of 2 tokens were allowed");
    };
    assert!(
        retry_after > Duration::from_millis(1_800) && retry_after <= Duration::from_secs(2),
        "{retry_after:?}"
    );
    // The refusal took nothing: the two are still there, then none.
    assert_eq!(
        state.take_tokens(&key, 2).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(matches!(
        state.take_token(&key).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    // More than the bucket holds: refused even when full, and nothing taken.
    assert!(matches!(
        state.take_tokens(&huge, 11).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        state.take_tokens(&huge, 10).await.unwrap(),
        RateDecision::Allowed
    );
}

/// A bucket is atomic across every process sharing the state: 20
/// concurrent takers from two processes of a bucket of 10 get exactly 10
/// tokens.
pub async fn token_buckets_are_shared_by_every_process(one: &Bus, other: &Bus) {
    let bucket = Bucket::new(unique("shared"), 0.001, 10);
    let decisions = concurrently(one, other, 20, |state, _| {
        let bucket = bucket.clone();
        async move { state.take_token(&bucket).await.unwrap() }
    })
    .await;
    let allowed = decisions
        .iter()
        .filter(|d| **d == RateDecision::Allowed)
        .count();
    assert_eq!(allowed, 10);
}
