//! The bus conformance suite (cargo feature `testing`): the guarantees of
//! [`PubSub`], [`WorkQueue`] and [`SharedState`] as executable cases,
//! written once and run against every implementation (the in-process bus
//! in `tests/local_bus.rs`, Redis in `tests/redis_bus.rs`).
//!
//! An implementation's integration tests run the whole suite with one macro
//! call, giving it a *factory*: an async fn that makes a [`BusUnderTest`]
//! for one case. For the in-process bus:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use chat_bus::Bus;
//! use chat_bus::conformance::{APPEND_TIMEOUT, BusUnderTest, STREAM_CAPACITY};
//! use chat_bus::local::{LocalPubSub, LocalQueue, LocalState};
//!
//! async fn fresh_bus() -> BusUnderTest {
//!     // Streams bounded as the suite expects.
//!     let queue = Arc::new(LocalQueue::new(STREAM_CAPACITY, APPEND_TIMEOUT));
//!     let bus = Bus {
//!         pubsub: Arc::new(LocalPubSub::new()),
//!         queue: queue.clone(),
//!         state: Arc::new(LocalState::new()),
//!     };
//!     // One process: the "other process" is the same bus.
//!     BusUnderTest::new(bus.clone(), bus, queue)
//! }
//!
//! mod conformance {
//!     chat_bus::bus_conformance_tests!(super::fresh_bus);
//! }
//! # fn main() {}
//! ```
//!
//! A server-backed bus connects twice (two processes sharing the server)
//! and keeps its server alive with the buses, with
//! [`BusUnderTest::keeping_alive`].
//!
//! That expands to one `#[tokio::test]` per case (so the calling crate needs
//! `tokio` as a dev-dependency), each calling the `pub async fn` of the same
//! name in this module; a case can also be called directly.
//!
//! The cases make their own channels, streams, keys and users, with random
//! names, and only look at what they made; the few that cannot (the worker
//! id space is one for the whole backend) say so. Every case gets a fresh
//! backend from the factory all the same.
//!
//! The helpers ([`payload`], [`next_delivery`], [`no_delivery`], [`ids`],
//! [`payloads`]) are public for the implementations' own tests.

use std::any::Any;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::timeout;

use crate::local::LocalQueue;
use crate::redis::RedisQueue;
use crate::{
    Admission, Admitted, Bucket, Bus, BusError, Claim, Delivery, Entry, EntryId, MAX_WORKER_ID,
    Payload, PubSub, RateDecision, Result, SharedState, Subscription, WorkQueue,
};

/// Expands to one `#[tokio::test]` per conformance case, each running the
/// case against a bus made by `$factory` (see the [module
/// docs](crate::conformance)). Invoke it inside a module of its own, as the
/// generated tests are named after the cases.
#[macro_export]
macro_rules! bus_conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__bus_conformance_cases! {
            $factory;
            // Adding a case: write its `pub async fn` below and list it
            // here, after what it takes (see `__bus_conformance_call!`).
            // PubSub
            two_buses: pubsub_delivers_to_current_subscribers_only,
            two_buses: publish_all_delivers_each_item_once_in_order_per_channel,
            pubsub: a_slow_subscriber_loses_deliveries_and_counts_them,
            // WorkQueue
            queue: each_entry_goes_to_one_consumer_of_each_group,
            bus_and_lengths: concurrent_consumers_split_the_stream_without_overlap,
            bus_and_lengths: unacknowledged_entries_stay_pending_until_claimed,
            two_buses: a_group_created_after_the_entries_still_sees_them,
            bus: readers_wait_for_appends,
            bus_and_lengths: a_full_stream_pushes_back_until_entries_are_acknowledged,
            bus: read_many_takes_from_every_stream_in_order,
            queue: the_backlog_counts_what_a_group_has_not_acknowledged,
            // SharedState
            state: token_bucket_allows_a_burst_then_the_rate,
            two_buses: token_buckets_are_shared_by_every_process,
            state: several_tokens_are_taken_at_once_or_not_at_all,
            state: a_batch_admission_acts_like_single_calls_in_turn,
            state: lanes_of_one_key_are_independent_buckets,
            state: put_if_absent_keeps_the_first_live_value,
            state: put_if_absent_values_live_for_their_ttl,
            two_buses: put_if_absent_stores_once_among_concurrent_callers,
            state: presence_turns_on_with_the_first_connection_and_off_with_the_last,
            two_buses: presence_transitions_are_answered_once_under_concurrency,
            two_buses: connections_that_are_not_kept_alive_expire_once,
            state: many_connections_are_kept_alive_in_one_call,
            two_buses: worker_ids_are_leased_uniquely_and_renewed_only_by_their_owner,
            state: expired_worker_ids_are_leased_again_until_every_id_is_taken,
            state: ping_answers,
            two_buses: partitions_are_held_by_one_member_each_and_rebalanced,
            state: partitions_of_a_silent_member_are_taken_over,
        }
    };
}

/// The per-case half of [`bus_conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __bus_conformance_cases {
    ($factory:expr; $($takes:ident: $case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let under: $crate::conformance::BusUnderTest = $factory().await;
                $crate::__bus_conformance_call!($takes, under, $case).await;
            }
        )+
    };
}

/// Calls a case with what it takes from a [`BusUnderTest`].
#[doc(hidden)]
#[macro_export]
macro_rules! __bus_conformance_call {
    (pubsub, $under:ident, $case:ident) => {
        $crate::conformance::$case(&*$under.bus().pubsub)
    };
    (queue, $under:ident, $case:ident) => {
        $crate::conformance::$case(&*$under.bus().queue)
    };
    (state, $under:ident, $case:ident) => {
        $crate::conformance::$case(&*$under.bus().state)
    };
    (bus, $under:ident, $case:ident) => {
        $crate::conformance::$case($under.bus())
    };
    (two_buses, $under:ident, $case:ident) => {
        $crate::conformance::$case($under.bus(), $under.peer())
    };
    (bus_and_lengths, $under:ident, $case:ident) => {
        $crate::conformance::$case($under.bus(), $under.lengths())
    };
}

/// The most entries a stream of a bus under test may hold: its factory
/// must bound streams so (and, on Redis, trim them exactly).
pub const STREAM_CAPACITY: usize = 256;

/// How long an append to a full stream of a bus under test waits for room:
/// its factory must set this.
pub const APPEND_TIMEOUT: Duration = Duration::from_millis(200);

/// How many entries a stream holds: not part of [`WorkQueue`], but every
/// implementation can tell, and the cases check with it that acknowledged
/// entries leave their stream.
#[async_trait]
pub trait StreamLengths: Send + Sync + 'static {
    /// How many entries `stream` holds now.
    async fn stream_len(&self, stream: &str) -> Result<u64>;
}

#[async_trait]
impl StreamLengths for LocalQueue {
    async fn stream_len(&self, stream: &str) -> Result<u64> {
        Ok(self.len(stream) as u64)
    }
}

#[async_trait]
impl StreamLengths for RedisQueue {
    async fn stream_len(&self, stream: &str) -> Result<u64> {
        self.len(stream).await
    }
}

/// A bus handed to the suite by a factory: two handles on one backend (as
/// two processes sharing it hold them; in-process, the same bus twice), how
/// to tell its streams' lengths, and whatever must live exactly as long as
/// they do (a server process). The guard is dropped last.
pub struct BusUnderTest {
    bus: Bus,
    peer: Bus,
    lengths: Arc<dyn StreamLengths>,
    _keep_alive: Option<Box<dyn Any + Send>>,
}

impl BusUnderTest {
    /// `bus` and `peer` share one backend; `lengths` tells the lengths of
    /// its streams. Their streams hold at most [`STREAM_CAPACITY`] entries,
    /// and appends wait at most [`APPEND_TIMEOUT`] for room.
    pub fn new(bus: Bus, peer: Bus, lengths: Arc<dyn StreamLengths>) -> BusUnderTest {
        BusUnderTest {
            bus,
            peer,
            lengths,
            _keep_alive: None,
        }
    }

    /// Keeps `guard` until the case is done with the bus.
    pub fn keeping_alive(mut self, guard: impl Any + Send) -> BusUnderTest {
        self._keep_alive = Some(Box::new(guard));
        self
    }

    /// The bus under test.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Another process on the same backend.
    pub fn peer(&self) -> &Bus {
        &self.peer
    }

    /// The lengths of the backend's streams.
    pub fn lengths(&self) -> &dyn StreamLengths {
        &*self.lengths
    }
}

// ----- helpers -------------------------------------------------------------

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
fn unique(tag: &str) -> String {
    format!("{tag}-{:016x}", rand::random::<u64>())
}

/// Runs `call(state, i)` for every `i` in `0..callers` at once, alternately
/// on the state of `one` and of `other` (two processes sharing the
/// backend), and answers the results in the order of `i`.
async fn concurrently<T, Call, Running>(
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
fn only_mine(answer: Vec<String>, mine: &[&String]) -> Vec<String> {
    answer
        .into_iter()
        .filter(|user| mine.contains(&user))
        .collect()
}

// ----- PubSub ------------------------------------------------------------

/// [`PubSub::publish`] reaches every subscription of the channel existing
/// when it is processed, at most once (a channel added twice is delivered
/// once), in publish order, and no other: neither a subscription to another
/// channel nor one that removed the channel. `add` and `remove` are
/// idempotent. The publisher is another process on the same backend.
pub async fn pubsub_delivers_to_current_subscribers_only(bus: &Bus, publisher: &Bus) {
    let [first, second, unheard] = ["room", "room", "room"].map(unique);
    let mut a = bus.pubsub.subscribe(16).await.unwrap();
    let mut b = bus.pubsub.subscribe(64).await.unwrap();
    a.control.add(&first).await.unwrap();
    a.control.add(&first).await.unwrap();
    b.control.add(&second).await.unwrap();
    let pubsub = &publisher.pubsub;
    pubsub.publish(&first, payload("x")).await.unwrap();
    pubsub.publish(&unheard, payload("nobody")).await.unwrap();
    let got = next_delivery(&mut a).await;
    assert_eq!(
        (&*got.channel, &got.payload[..]),
        (first.as_str(), &b"x"[..])
    );
    no_delivery(&mut a, "added twice, delivered once").await;
    no_delivery(&mut b, "another channel").await;

    // In publish order.
    for i in 0..50 {
        pubsub
            .publish(&second, payload(&i.to_string()))
            .await
            .unwrap();
    }
    for i in 0..50 {
        assert_eq!(next_delivery(&mut b).await.payload, payload(&i.to_string()));
    }

    a.control.remove(&first).await.unwrap();
    a.control.remove(&first).await.unwrap();
    pubsub.publish(&first, payload("y")).await.unwrap();
    no_delivery(&mut a, "removed").await;
    assert_eq!(a.control.dropped(), 0);
}

/// [`PubSub::publish_all`] is as many [`PubSub::publish`] calls: each
/// item reaches the subscriptions of its channel once, and the items of
/// one channel arrive in list order, whatever other channels are
/// interleaved with them. An empty batch is a no-op.
pub async fn publish_all_delivers_each_item_once_in_order_per_channel(bus: &Bus, publisher: &Bus) {
    let [rooms, users, unheard] = ["room", "user", "room"].map(unique);
    let mut subscription = bus.pubsub.subscribe(256).await.unwrap();
    subscription.control.add(&rooms).await.unwrap();
    subscription.control.add(&users).await.unwrap();
    let channel_of = |i: usize| match i % 5 {
        0 => users.clone(),
        4 => unheard.clone(),
        _ => rooms.clone(),
    };
    let items: Vec<(String, Payload)> = (0..60)
        .map(|i| (channel_of(i), payload(&i.to_string())))
        .collect();
    publisher.pubsub.publish_all(items).await.unwrap();
    let mut heard: Vec<(String, Payload)> = Vec::new();
    let expected = (0..60).filter(|i| i % 5 != 4).count();
    for _ in 0..expected {
        let delivery = next_delivery(&mut subscription).await;
        heard.push((delivery.channel.to_string(), delivery.payload));
    }
    no_delivery(&mut subscription, "each item once, none of another channel").await;
    for channel in [&rooms, &users] {
        let wanted: Vec<Payload> = (0..60)
            .filter(|&i| channel_of(i) == *channel)
            .map(|i| payload(&i.to_string()))
            .collect();
        let got: Vec<Payload> = heard
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(got, wanted, "in list order on {channel}");
    }
    publisher.pubsub.publish_all(Vec::new()).await.unwrap();
    no_delivery(&mut subscription, "an empty batch publishes nothing").await;
}

/// A subscriber that falls behind loses the deliveries beyond its
/// capacity, and counts them (`Subscriptions::dropped`), rather than
/// slowing the publisher; what it kept arrives in order.
pub async fn a_slow_subscriber_loses_deliveries_and_counts_them(pubsub: &dyn PubSub) {
    let channel = unique("c");
    let mut slow = pubsub.subscribe(2).await.unwrap();
    slow.control.add(&channel).await.unwrap();
    for i in 0..5 {
        pubsub
            .publish(&channel, payload(&i.to_string()))
            .await
            .unwrap();
    }
    // Deliveries may travel through a server; wait until all were counted.
    let counted = async {
        while slow.control.dropped() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if timeout(Duration::from_secs(2), counted).await.is_err() {
        panic!("3 drops counted within 2 s, not {}", slow.control.dropped());
    }
    assert_eq!(slow.control.dropped(), 3);
    assert_eq!(next_delivery(&mut slow).await.payload, payload("0"));
    assert_eq!(next_delivery(&mut slow).await.payload, payload("1"));
    no_delivery(&mut slow, "the rest was dropped").await;
}

// ----- WorkQueue -------------------------------------------------------------

/// [`WorkQueue::read`] hands each entry to one consumer of each group, in
/// append order, at most `max` at a time, as a first delivery; entry ids
/// increase in append order.
pub async fn each_entry_goes_to_one_consumer_of_each_group(queue: &dyn WorkQueue) {
    let stream = unique("s");
    for p in ["a", "b", "c"] {
        queue.append(&stream, payload(p)).await.unwrap();
    }
    let read = |group: &'static str, consumer: &'static str, max: usize| {
        queue.read(&stream, group, consumer, max, Duration::ZERO)
    };
    let one = read("g", "c1", 2).await.unwrap();
    let two = read("g", "c2", 10).await.unwrap();
    let none = read("g", "c3", 10).await.unwrap();
    let other_group = read("h", "c1", 10).await.unwrap();
    assert_eq!(payloads(&one), ["a", "b"]);
    assert_eq!(payloads(&two), ["c"]);
    assert!(none.is_empty());
    assert_eq!(payloads(&other_group), ["a", "b", "c"]);
    assert!(one.iter().all(|e| e.deliveries == 1));
    assert!(one[0].id < one[1].id);
}

/// A group's backlog is what it has not acknowledged, handed out or not,
/// aged by its oldest entry.
pub async fn the_backlog_counts_what_a_group_has_not_acknowledged(queue: &dyn WorkQueue) {
    let stream = unique("s");
    assert_eq!(
        queue.backlog(&stream, "g").await.unwrap(),
        crate::Backlog::default()
    );
    for p in ["a", "b", "c"] {
        queue.append(&stream, payload(p)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before_reading = queue.backlog(&stream, "g").await.unwrap();
    assert_eq!(before_reading.entries, 3);
    assert!(before_reading.oldest_age >= Some(Duration::from_millis(20)));
    let read = queue
        .read(&stream, "g", "c1", 2, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(queue.backlog(&stream, "g").await.unwrap().entries, 3);
    queue.ack(&stream, "g", &ids(&read)).await.unwrap();
    let after_ack = queue.backlog(&stream, "g").await.unwrap();
    assert_eq!(after_ack.entries, 1);
    assert!(after_ack.oldest_age.is_some());
    let rest = queue
        .read(&stream, "g", "c1", 10, Duration::ZERO)
        .await
        .unwrap();
    queue.ack(&stream, "g", &ids(&rest)).await.unwrap();
    assert_eq!(
        queue.backlog(&stream, "g").await.unwrap(),
        crate::Backlog::default()
    );
}

/// Consumers of one group reading concurrently share the stream without
/// overlap: every entry goes to exactly one of them. Once all are
/// acknowledged, the stream is empty.
pub async fn concurrent_consumers_split_the_stream_without_overlap(
    bus: &Bus,
    lengths: &dyn StreamLengths,
) {
    let stream = unique("s");
    for i in 0..200 {
        bus.queue
            .append(&stream, payload(&i.to_string()))
            .await
            .unwrap();
    }
    let mut readers = Vec::new();
    for c in 0..4 {
        let (q, stream) = (bus.queue.clone(), stream.clone());
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = q
                    .read(&stream, "g", &format!("c{c}"), 7, Duration::from_millis(50))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                q.ack(&stream, "g", &ids(&batch)).await.unwrap();
                got.extend(payloads(&batch));
            }
        }));
    }
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(unique.len(), 200);
    bus.queue.trim(&stream, "g").await.unwrap();
    assert_eq!(lengths.stream_len(&stream).await.unwrap(), 0, "all trimmed");
}

/// An entry stays pending with its consumer until acknowledged: it is not
/// handed out again as new, and [`WorkQueue::claim_stale`] hands it (at
/// most `max`, only once idle for `min_idle`) to another consumer, counting
/// the deliveries. Acknowledging twice is harmless; acknowledged entries
/// are not claimed again and leave the stream. Claiming from a stream or
/// group that does not exist answers nothing.
pub async fn unacknowledged_entries_stay_pending_until_claimed(
    bus: &Bus,
    lengths: &dyn StreamLengths,
) {
    let q = &*bus.queue;
    let s = &unique("s");
    assert!(
        q.claim_stale(s, "g", "alive", Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty(),
        "no stream, no group: nothing to claim"
    );
    q.append(s, payload("a")).await.unwrap();
    q.append(s, payload("b")).await.unwrap();
    let taken = q.read(s, "g", "dead", 10, Duration::ZERO).await.unwrap();
    assert_eq!(taken.len(), 2);
    // Pending with "dead": not handed out again as new.
    assert!(
        q.read(s, "g", "alive", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        q.claim_stale(s, "g", "alive", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "not idle long enough"
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    let claimed = q
        .claim_stale(s, "g", "alive", Duration::from_millis(100), 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "at most max");
    assert_eq!(claimed[0].id, taken[0].id);
    assert_eq!(claimed[0].payload, payload("a"));
    assert_eq!(claimed[0].deliveries, 2);
    let again = q
        .claim_stale(s, "g", "third", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(payloads(&again), ["a", "b"]);
    assert_eq!(again[0].deliveries, 3);
    assert_eq!(again[1].deliveries, 2);
    q.ack(s, "g", &ids(&again)).await.unwrap();
    q.ack(s, "g", &ids(&again)).await.unwrap(); // twice is harmless
    assert!(
        q.claim_stale(s, "g", "alive", Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
    q.trim(s, "g").await.unwrap();
    assert_eq!(
        lengths.stream_len(s).await.unwrap(),
        0,
        "acknowledged entries are dropped"
    );
}

/// A group is created on first use and starts at the oldest entry still in
/// the stream, even when that use is by another process than the appender.
pub async fn a_group_created_after_the_entries_still_sees_them(bus: &Bus, late: &Bus) {
    let stream = unique("s");
    bus.queue.append(&stream, payload("early")).await.unwrap();
    let got = late
        .queue
        .read(&stream, "new-group", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(payloads(&got), ["early"]);
}

/// A reader waits up to `wait` for an entry and gets one appended
/// meanwhile at once; with none, it answers empty after about `wait`.
pub async fn readers_wait_for_appends(bus: &Bus) {
    let stream = unique("s");
    // Create the group first so the reader blocks on an existing stream.
    assert!(
        bus.queue
            .read(&stream, "g", "c", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    let reader = {
        let (q, stream) = (bus.queue.clone(), stream.clone());
        tokio::spawn(async move { q.read(&stream, "g", "c", 10, Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    bus.queue.append(&stream, payload("late")).await.unwrap();
    let got = reader.await.unwrap().unwrap();
    assert_eq!(payloads(&got), ["late"]);
    assert!(started.elapsed() < Duration::from_secs(1));
    // An empty wait answers empty after about the wait.
    let started = std::time::Instant::now();
    let none = bus
        .queue
        .read(&stream, "g", "c", 10, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(190));
}

/// Streams are bounded: [`WorkQueue::append`] to a full stream waits for
/// room and fails with `Unavailable` when none frees up in time, and takes
/// room that acknowledgements free while it waits.
pub async fn a_full_stream_pushes_back_until_entries_are_acknowledged(
    bus: &Bus,
    lengths: &dyn StreamLengths,
) {
    let q = &bus.queue;
    let s = &unique("s");
    let _ = q.read(s, "g", "c", 1, Duration::ZERO).await.unwrap();
    for i in 0..STREAM_CAPACITY {
        q.append(s, payload(&i.to_string())).await.unwrap();
    }
    let started = std::time::Instant::now();
    assert!(matches!(
        q.append(s, payload("x")).await,
        Err(BusError::Unavailable(_))
    ));
    assert!(
        started.elapsed() >= APPEND_TIMEOUT - Duration::from_millis(10),
        "it waited"
    );

    // Room that frees up while waiting is taken.
    let waiting = {
        let (q, s) = (q.clone(), s.clone());
        tokio::spawn(async move { q.append(&s, payload("waited")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let taken = q.read(s, "g", "c", 2, Duration::ZERO).await.unwrap();
    q.ack(s, "g", &ids(&taken)).await.unwrap();
    waiting.await.unwrap().unwrap();
    q.append(s, payload("fits")).await.unwrap();
    assert_eq!(lengths.stream_len(s).await.unwrap(), STREAM_CAPACITY as u64);
}

// ----- SharedState -------------------------------------------------------------

/// [`SharedState::admit`]: a batch acts as its actions' single calls one
/// after the other: tokens from each bucket in turn (a refusal keeps the
/// earlier buckets' tokens taken and claims nothing), a claim answered by
/// an earlier claim of the batch, and the buckets left as the single calls
/// would leave them.
pub async fn a_batch_admission_acts_like_single_calls_in_turn(state: &dyn SharedState) {
    let [limits, other, first, second] = ["limits", "other", "cid-1", "cid-2"].map(unique);
    // A send's budget and send rate are two lanes of one key, as routers
    // keep them.
    let budget = Bucket::lane(limits.clone(), "budget", 1.0, 10);
    let send = Bucket::lane(limits.clone(), "send", 1.0, 2);
    let claim = |key: &String, value: &str| Claim {
        key: key.clone(),
        value: payload(value),
        ttl: Duration::from_secs(60),
    };
    let send_of = |key: &String, value: &str| Admission {
        buckets: vec![budget.clone(), send.clone()],
        claim: Some(claim(key, value)),
    };
    let batch = [
        send_of(&first, "a"),
        send_of(&first, "b"),
        send_of(&second, "c"),
        Admission {
            buckets: vec![Bucket::new(other.clone(), 1.0, 1)],
            claim: None,
        },
    ];
    let answers = state.admit(&batch).await.unwrap();
    assert_eq!(answers.len(), 4);
    assert_eq!(answers[0], Admitted::Admitted { existing: None });
    assert_eq!(
        answers[1],
        Admitted::Admitted {
            existing: Some(payload("a"))
        },
        "the second claim of a key answers the first"
    );
    let Admitted::Limited {
        bucket: 1,
        retry_after,
    } = answers[2]
    else {
        panic!(
            "the third send is refused by its send bucket: {:?}",
            answers[2]
        );
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
    assert_eq!(answers[3], Admitted::Admitted { existing: None });
    // The budget gave three tokens (the refused send's too): seven left.
    for _ in 0..7 {
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
    // The refused send claimed nothing.
    assert_eq!(
        state
            .put_if_absent(&second, payload("later"), Duration::from_secs(60))
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
        claim: None,
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

/// Presence: a user is online while they have a live connection;
/// [`SharedState::connection_opened`] answers `true` only for the first
/// one (opening one again does not), and
/// [`SharedState::connection_closed`] only for the last one (closing twice
/// does not).
pub async fn presence_turns_on_with_the_first_connection_and_off_with_the_last(
    state: &dyn SharedState,
) {
    let [u, v] = ["u", "v"].map(unique);
    let ttl = Duration::from_secs(60);
    assert!(state.connection_opened(&u, "c1", ttl).await.unwrap());
    assert!(!state.connection_opened(&u, "c2", ttl).await.unwrap());
    assert!(!state.connection_opened(&u, "c2", ttl).await.unwrap());
    assert_eq!(
        state.online(&[u.clone(), v.clone()]).await.unwrap(),
        [true, false]
    );
    assert!(!state.connection_closed(&u, "c1").await.unwrap());
    assert!(
        !state.connection_closed(&u, "c1").await.unwrap(),
        "closing twice"
    );
    assert!(state.connection_closed(&u, "c2").await.unwrap());
    assert!(!state.connection_closed(&u, "c2").await.unwrap());
    assert_eq!(
        state.online(std::slice::from_ref(&u)).await.unwrap(),
        [false]
    );
    assert!(state.online(&[]).await.unwrap().is_empty());
}

/// Each presence transition is answered once, to one caller, however many
/// processes open and close a user's connections concurrently; closed
/// connections are never reported by an expiry sweep.
pub async fn presence_transitions_are_answered_once_under_concurrency(one: &Bus, other: &Bus) {
    let ttl = Duration::from_secs(60);
    let users: Vec<String> = (0..5).map(|_| unique("user")).collect();
    for user in &users {
        let opened = concurrently(one, other, 20, |state, c| {
            let user = user.clone();
            async move {
                let connection = format!("conn{c}");
                state
                    .connection_opened(&user, &connection, ttl)
                    .await
                    .unwrap()
            }
        })
        .await;
        let online = opened.iter().filter(|made_online| **made_online).count();
        assert_eq!(online, 1, "one online transition");
        let closed = concurrently(one, other, 20, |state, c| {
            let user = user.clone();
            async move {
                let connection = format!("conn{c}");
                state.connection_closed(&user, &connection).await.unwrap()
            }
        })
        .await;
        let offline = closed.iter().filter(|made_offline| **made_offline).count();
        assert_eq!(offline, 1, "one offline transition");
    }
    let mine: Vec<&String> = users.iter().collect();
    assert!(
        only_mine(one.state.expired_connections(100).await.unwrap(), &mine).is_empty(),
        "closed connections never expire"
    );
}

/// One [`SharedState::connections_alive`] call keeps alive every live
/// connection it names, of many users and of one user with hundreds of
/// connections (more than one Redis script takes), and neither revives an
/// expired connection nor creates one that was never opened.
pub async fn many_connections_are_kept_alive_in_one_call(state: &dyn SharedState) {
    let [busy, gone, never] = ["busy", "gone", "never"].map(unique);
    let others: Vec<String> = (0..40).map(|i| unique(&format!("other{i}"))).collect();
    let short = Duration::from_millis(100);
    let brief = Duration::from_secs(2);
    let long = Duration::from_secs(60);
    assert!(state.connection_opened(&gone, "g1-1", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut batch = vec![(gone.clone(), "g1-1".to_string())];
    for i in 0..600 {
        let connection = format!("g1-{i}");
        state
            .connection_opened(&busy, &connection, brief)
            .await
            .unwrap();
        batch.push((busy.clone(), connection));
    }
    for user in &others {
        assert!(state.connection_opened(user, "g2-1", brief).await.unwrap());
        batch.push((user.clone(), "g2-1".to_string()));
    }
    batch.push((never.clone(), "g3-1".to_string()));
    state.connections_alive(&batch, long).await.unwrap();
    tokio::time::sleep(brief + Duration::from_millis(200)).await;

    let mut users = vec![busy.clone(), gone.clone(), never.clone()];
    users.extend(others.iter().cloned());
    let online = state.online(&users).await.unwrap();
    assert_eq!(
        &online[..3],
        [true, false, false],
        "busy kept alive; gone not revived; never not created"
    );
    assert!(
        online[3..].iter().all(|live| *live),
        "every other user kept alive: {online:?}"
    );
    // The sweep reports only the expired connection's user, and the busy
    // user's connections all outlived their first life.
    let mut mine = vec![&busy, &gone, &never];
    mine.extend(others.iter());
    let mut expired = Vec::new();
    for _ in 0..20 {
        expired.extend(only_mine(
            state.expired_connections(1000).await.unwrap(),
            &mine,
        ));
    }
    assert_eq!(expired, std::slice::from_ref(&gone));
    for i in 0..600 {
        state
            .connection_closed(&busy, &format!("g1-{i}"))
            .await
            .unwrap();
    }
    assert_eq!(
        state.online(std::slice::from_ref(&busy)).await.unwrap(),
        [false]
    );
}

/// Connections that are not kept alive expire: they stop counting at once
/// (even before a sweep), a late [`SharedState::connections_alive`] does not
/// revive them, and [`SharedState::expired_connections`] answers each user
/// this made offline once, to one of the processes sweeping concurrently,
/// never a user with a live connection left. Closing an expired connection
/// before any sweep answers the transition instead of the sweep; opening a
/// new one does too, and the old one's expiry is not reported afterwards.
pub async fn connections_that_are_not_kept_alive_expire_once(one: &Bus, other: &Bus) {
    let state = &*one.state;
    let [crashed, kept, stayed, late, back] =
        ["crashed", "kept", "stayed", "late", "back"].map(unique);
    let mine = [&crashed, &kept, &stayed, &late, &back];
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(60);
    // "crashed": two connections on a dead gateway.
    assert!(
        state
            .connection_opened(&crashed, "g1-1", short)
            .await
            .unwrap()
    );
    assert!(
        !state
            .connection_opened(&crashed, "g1-2", short)
            .await
            .unwrap()
    );
    // "kept": one connection kept alive, one dead.
    assert!(state.connection_opened(&kept, "g2-1", short).await.unwrap());
    assert!(!state.connection_opened(&kept, "g1-3", short).await.unwrap());
    // "stayed": a long-lived connection.
    assert!(
        state
            .connection_opened(&stayed, "g2-2", long)
            .await
            .unwrap()
    );
    let alive = |user: &str, connection: &str| (user.to_string(), connection.to_string());
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        state
            .connections_alive(&[alive(&kept, "g2-1")], short)
            .await
            .unwrap();
    }
    state
        .connections_alive(&[alive(&kept, "g2-1")], long)
        .await
        .unwrap();
    assert_eq!(
        state
            .online(&[crashed.clone(), kept.clone(), stayed.clone()])
            .await
            .unwrap(),
        [false, true, true],
        "expired connections do not count, even before a sweep"
    );
    // An expired connection is not revived by a late heartbeat.
    state
        .connections_alive(&[alive(&crashed, "g1-1")], long)
        .await
        .unwrap();
    assert_eq!(
        state.online(std::slice::from_ref(&crashed)).await.unwrap(),
        [false]
    );

    // Two processes sweep at once; "crashed" is answered once, by one.
    let sweeps = [one.state.clone(), other.state.clone()].map(|state| {
        tokio::spawn(async move {
            // One connection per call, more calls than connections.
            let mut users = Vec::new();
            for _ in 0..10 {
                users.extend(state.expired_connections(1).await.unwrap());
            }
            users
        })
    });
    let mut offline = Vec::new();
    for s in sweeps {
        offline.extend(s.await.unwrap());
    }
    assert_eq!(only_mine(offline, &mine), std::slice::from_ref(&crashed));
    assert!(only_mine(state.expired_connections(100).await.unwrap(), &mine).is_empty());
    // Closing what was swept answers nothing more.
    assert!(!state.connection_closed(&crashed, "g1-1").await.unwrap());
    assert_eq!(
        state
            .online(&[crashed.clone(), kept.clone()])
            .await
            .unwrap(),
        [false, true]
    );

    // A connection that expired but was closed before any sweep: the close
    // answers the transition, the sweep does not.
    assert!(state.connection_opened(&late, "x", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(state.connection_closed(&late, "x").await.unwrap());
    assert!(only_mine(state.expired_connections(100).await.unwrap(), &mine).is_empty());

    // Re-opening after an unswept expiry answers online again, and the old
    // connection's expiry is not reported afterwards.
    assert!(state.connection_opened(&back, "old", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(state.connection_opened(&back, "new", long).await.unwrap());
    assert!(only_mine(state.expired_connections(100).await.unwrap(), &mine).is_empty());
    assert_eq!(
        state.online(std::slice::from_ref(&back)).await.unwrap(),
        [true]
    );
}

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

/// [`SharedState::ping`] answers `Ok` while the backend is reachable.
pub async fn ping_answers(state: &dyn SharedState) {
    state.ping().await.unwrap();
}

/// [`WorkQueue::read_many`] answers entries of every stream asked for, each
/// stream's in append order and tagged with its index, at most `max` per
/// stream, and wakes for an append to any of them.
pub async fn read_many_takes_from_every_stream_in_order(bus: &Bus) {
    let base = unique("parts");
    let streams: Vec<String> = (0..3).map(|p| format!("{base}.{p}")).collect();
    for (index, stream) in streams.iter().enumerate() {
        for n in 0..4 {
            bus.queue
                .append(stream, payload(&format!("{index}-{n}")))
                .await
                .unwrap();
        }
    }
    let got = bus
        .queue
        .read_many(&streams, "g", "c", 3, Duration::ZERO)
        .await
        .unwrap();
    for index in 0..3 {
        let of_stream: Vec<String> = got
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, e)| String::from_utf8_lossy(&e.payload).into_owned())
            .collect();
        let expected: Vec<String> = (0..3).map(|n| format!("{index}-{n}")).collect();
        assert_eq!(of_stream, expected, "stream {index}: the first 3, in order");
    }
    let rest = bus
        .queue
        .read_many(&streams, "g", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(rest.len(), 3, "one more in each");
    let reader = {
        let (q, streams) = (bus.queue.clone(), streams.clone());
        tokio::spawn(async move {
            q.read_many(&streams, "g", "c", 10, Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.queue
        .append(&streams[2], payload("late"))
        .await
        .unwrap();
    let late = reader.await.unwrap().unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, 2, "tagged with its stream");
    assert_eq!(&late[0].1.payload[..], b"late");
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
