//! Helpers for the cases and for the implementations' own tests:
//! payloads, waiting for a delivery or for none, entry ids and payloads,
//! unique names, and running calls concurrently.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;

use crate::{Bus, Delivery, Entry, EntryId, Payload, SharedState, Subscription};

/// A payload holding `text`.
pub fn payload(text: &str) -> Payload {
    Payload::copy_from_slice(text.as_bytes())
}

/// The next delivery of `subscription`, within a second.
pub async fn next_delivery(subscription: &mut Subscription) -> Delivery {
    timeout(Duration::from_secs(1), subscription.deliveries.recv())
        .await
        .expect("a delivery within a second")
        .expect("subscription open")
}

/// Asserts that nothing arrives on `subscription` within a short while;
/// `why` says why nothing should.
pub async fn no_delivery(subscription: &mut Subscription, why: &str) {
    let waited = timeout(Duration::from_millis(150), subscription.deliveries.recv()).await;
    if let Ok(Some(delivery)) = waited {
        panic!(
            "unexpected delivery on {} ({why}): {:?}",
            delivery.channel, delivery.payload
        );
    }
}

/// The ids of `entries`.
pub fn ids(entries: &[Entry]) -> Vec<EntryId> {
    entries.iter().map(|e| e.id.clone()).collect()
}

/// The payloads of `entries`, as text.
pub fn payloads(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect()
}

/// `tag` and a random suffix: a name no other case uses.
pub(super) fn unique(tag: &str) -> String {
    format!("{tag}-{:016x}", rand::random::<u64>())
}

/// Runs `call(state, i)` for every `i` in `0..callers` at once, alternately
/// on the state of `one` and of `other` (two processes sharing the
/// backend), and answers the results in the order of `i`.
pub(super) async fn concurrently<T, Call, Running>(
    one: &Bus,
    other: &Bus,
    callers: usize,
    call: Call,
) -> Vec<T>
where
    Call: Fn(Arc<dyn SharedState>, usize) -> Running,
    Running: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    // All spawned before any is awaited, so that they really run together.
    let running: Vec<_> = (0..callers)
        .map(|i| {
            let state = if i % 2 == 0 { &one.state } else { &other.state };
            tokio::spawn(call(state.clone(), i))
        })
        .collect();
    let mut results = Vec::with_capacity(callers);
    for task in running {
        results.push(task.await.expect("a caller panicked"));
    }
    results
}

/// The users of `answer` that are in `mine`: what a sweep answered about
/// this case's users (another case's may expire on a shared backend).
pub(super) fn only_mine(answer: Vec<String>, mine: &[&String]) -> Vec<String> {
    answer
        .into_iter()
        .filter(|user| mine.contains(&user))
        .collect()
}
