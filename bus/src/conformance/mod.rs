//! The bus conformance suite (cargo feature `testing`): the guarantees of
//! [`PubSub`](crate::PubSub), [`WorkQueue`](crate::WorkQueue) and
//! [`SharedState`](crate::SharedState) as executable cases,
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
//! The cases stand in a module per seam and concept (`pubsub`, `queue`,
//! `limits`, `claims`, `presence`, `leases`), all re-exported here under
//! their own names.
//!
//! The helpers ([`payload`], [`next_delivery`], [`no_delivery`], [`ids`],
//! [`payloads`]) are public for the implementations' own tests.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::local::LocalQueue;
use crate::redis::RedisQueue;
use crate::{Bus, Result};

mod claims;
mod helpers;
mod leases;
mod limits;
mod presence;
mod pubsub;
mod queue;

pub use claims::*;
pub use helpers::{ids, next_delivery, no_delivery, payload, payloads};
pub use leases::*;
pub use limits::*;
pub use presence::*;
pub use pubsub::*;
pub use queue::*;

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

/// How many entries a stream holds: not part of [`WorkQueue`](crate::WorkQueue), but every
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
