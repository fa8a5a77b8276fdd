//! What the router counts, for Prometheus.

use std::sync::LazyLock;

use prometheus::{HistogramVec, IntCounterVec, register_histogram_vec, register_int_counter_vec};

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

/// How long the router took over a client action, by action and result.
pub static ACTION_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "chat_router_action_duration_seconds",
        "Time the router took to handle a client action, by action and result",
        &["action", "result"],
        prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets")
    )
    .expect("metric names are valid and registered once")
});

/// Registers these metrics with their known label values at zero.
pub fn register() {
    for action in ["send", "typing", "upload"] {
        RATE_LIMITED.with_label_values(&[action]);
    }
    LazyLock::force(&ACTIONS);
    LazyLock::force(&ACTION_SECONDS);
}
