//! What the bus counts, in the process-wide Prometheus registry: traffic
//! and failures of each seam, Redis command errors, and the backlog of the
//! work streams (sampled by every consumer, see `consumer`).
//!
//! Labels are bounded: a kind of traffic, a stream name and a partition
//! number (at most the configured partition count), never a channel,
//! room or user.

use std::sync::LazyLock;

use prometheus::{
    GaugeVec, IntCounterVec, IntGaugeVec, register_gauge_vec, register_int_counter_vec,
    register_int_gauge_vec,
};

const REGISTERED: &str = "metric names are valid and registered once";

/// Messages put on the bus, by kind: `event` (room and user channels),
/// `reply` (a gateway's channel), `stream` (a work stream append).
pub static PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_bus_published_total",
        "Messages put on the bus, by kind (event, reply, stream)",
        &["kind"]
    )
    .expect(REGISTERED)
});

/// Messages that could not be put on the bus, by kind.
pub static PUBLISH_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_bus_publish_errors_total",
        "Messages that could not be put on the bus, by kind (event, reply, stream)",
        &["kind"]
    )
    .expect(REGISTERED)
});

/// Messages taken from the bus, by kind: `pubsub` (a subscription's
/// deliveries) or `stream` (work stream entries read).
pub static RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_bus_received_total",
        "Messages taken from the bus, by kind (pubsub, stream)",
        &["kind"]
    )
    .expect(REGISTERED)
});

/// Failed reads of a work stream (the consumer pauses and retries).
pub static RECEIVE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_bus_receive_errors_total",
        "Failed reads from the bus, by kind (stream)",
        &["kind"]
    )
    .expect(REGISTERED)
});

/// Redis commands that failed, by whether a retry may cure it
/// (`unavailable`: no connection, timeouts, a loading or failing-over
/// server) or not (`internal`).
pub static REDIS_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_redis_errors_total",
        "Redis commands that failed, by class (unavailable, internal)",
        &["class"]
    )
    .expect(REGISTERED)
});

/// Entries of a work stream partition its group has not acknowledged.
pub static BACKLOG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "chat_stream_backlog_entries",
        "Entries of a work stream partition not yet acknowledged by its consumer group",
        &["stream", "group", "partition"]
    )
    .expect(REGISTERED)
});

/// Age of the oldest unacknowledged entry of a partition (0 when none).
pub static OLDEST_AGE: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "chat_stream_oldest_entry_age_seconds",
        "Age of the oldest entry of a work stream partition not yet acknowledged by its group",
        &["stream", "group", "partition"]
    )
    .expect(REGISTERED)
});

/// Registers these metrics with their known label values at zero.
pub fn register() {
    for kind in ["event", "reply", "stream"] {
        PUBLISHED.with_label_values(&[kind]);
        PUBLISH_ERRORS.with_label_values(&[kind]);
    }
    for kind in ["pubsub", "stream"] {
        RECEIVED.with_label_values(&[kind]);
    }
    RECEIVE_ERRORS.with_label_values(&["stream"]);
    for class in ["unavailable", "internal"] {
        REDIS_ERRORS.with_label_values(&[class]);
    }
}
