//! What the router and the persistence writer count, for Prometheus.

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounter, IntCounterVec, register_histogram, register_int_counter,
    register_int_counter_vec,
};

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

/// Actions refused because their user's action budget was spent, by
/// action.
pub static BUDGET_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_budget_refused_total",
        "Actions refused because the user's action budget was spent, by action",
        &["action"]
    )
    .expect("metric names are valid and registered once")
});

/// Login and register attempts refused by a login limit, by what was
/// limited (`address` or `username`).
pub static LOGIN_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_login_limited_total",
        "Login and register attempts refused by a login limit, by address or username",
        &["by"]
    )
    .expect("metric names are valid and registered once")
});

/// Messages written (first writes and idempotent re-writes alike).
pub static MESSAGES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_messages_persisted_total",
        "Messages written by persistence writers"
    )
    .expect("metric names are valid and registered once")
});

/// Messages per batch write.
pub static BATCH_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "chat_persist_batch_size",
        "Messages per persistence batch",
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]
    )
    .expect("metric names are valid and registered once")
});

/// How long a batch write took, retries included.
pub static BATCH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "chat_persist_batch_seconds",
        "Time to write one persistence batch, retries included",
        prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets")
    )
    .expect("metric names are valid and registered once")
});

/// Batch writes that failed and were retried.
pub static RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_persist_retries_total",
        "Persistence batch writes retried after an error"
    )
    .expect("metric names are valid and registered once")
});
