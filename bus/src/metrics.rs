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

/// The `kind` values of the bus's traffic counters, named once for the
/// counting sites and for [`register`].
pub mod kind {
    /// An event on a room or user channel.
    pub const EVENT: &str = "event";
    /// A reply on a gateway's channel.
    pub const REPLY: &str = "reply";
    /// A work stream entry, appended or read.
    pub const STREAM: &str = "stream";
    /// A subscription's delivery.
    pub const PUBSUB: &str = "pubsub";
}

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

/// The `class` values of [`REDIS_ERRORS`], named once for the counting
/// site and for [`register`].
pub mod error_class {
    /// A retry may cure it.
    pub const UNAVAILABLE: &str = "unavailable";
    /// A retry will not.
    pub const INTERNAL: &str = "internal";
    /// Every class, registered at zero at start.
    pub const ALL: [&str; 2] = [UNAVAILABLE, INTERNAL];
}

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
    for published in [kind::EVENT, kind::REPLY, kind::STREAM] {
        PUBLISHED.with_label_values(&[published]);
        PUBLISH_ERRORS.with_label_values(&[published]);
    }
    for received in [kind::PUBSUB, kind::STREAM] {
        RECEIVED.with_label_values(&[received]);
    }
    RECEIVE_ERRORS.with_label_values(&[kind::STREAM]);
    for class in error_class::ALL {
        REDIS_ERRORS.with_label_values(&[class]);
    }
}
