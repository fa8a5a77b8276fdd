//! The bus conformance suite (`chat_bus::conformance`) against the
//! in-process bus, each case on a fresh one. Within one process, the "other
//! process" of the cases that take two buses is the same bus.

use std::sync::Arc;

use chat_bus::Bus;
use chat_bus::conformance::{APPEND_TIMEOUT, BusUnderTest, STREAM_CAPACITY};
use chat_bus::local::{LocalPubSub, LocalQueue, LocalState};

/// A fresh in-process bus, its streams bounded as the suite expects.
async fn fresh_bus() -> BusUnderTest {
    let queue = Arc::new(LocalQueue::new(STREAM_CAPACITY, APPEND_TIMEOUT));
    let bus = Bus {
        pubsub: Arc::new(LocalPubSub::new()),
        queue: queue.clone(),
        state: Arc::new(LocalState::new()),
    };
    BusUnderTest::new(bus.clone(), bus, queue)
}

mod conformance {
    chat_bus::bus_conformance_tests!(super::fresh_bus);
}
