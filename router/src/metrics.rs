//! What the router counts, for Prometheus.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, register_int_counter, register_int_counter_vec};

/// Client actions handled, by action and result (`ok` or an error code).
pub static ACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_router_actions_total",
        "Client actions handled by the router, by action and result",
        &["action", "result"]
    )
    .expect("metric names are valid and registered once")
});

/// Actions refused by a rate limit, by action.
pub static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_rate_limited_total",
        "Actions refused or dropped by a rate limit, by action",
        &["action"]
    )
    .expect("metric names are valid and registered once")
});

/// Joins and adds refused because the room was full (v1.1 room size).
pub static ROOM_FULL: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_room_full_total",
        "Joins and member adds refused because the room had max_members members"
    )
    .expect("metric names are valid and registered once")
});
