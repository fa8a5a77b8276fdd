//! What the persistence worker counts, for Prometheus.

use std::sync::LazyLock;

use prometheus::{Histogram, IntCounter, register_histogram, register_int_counter};

/// Messages written (first writes and idempotent re-writes alike).
pub static MESSAGES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_messages_persisted_total",
        "Messages written by persistence workers"
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

/// ScyllaDB member-count counter updates that failed or timed out after
/// their membership change applied: each may leave a room's displayed
/// count off by one (docs/scylla.md, "Member counts").
pub static MEMBER_COUNT_DRIFT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_scylla_member_count_drift_total",
        "Member count updates that failed after their membership change applied"
    )
    .expect("metric names are valid and registered once")
});

/// Registers these metrics (all without labels) at zero.
pub fn register() {
    LazyLock::force(&MESSAGES);
    LazyLock::force(&BATCH_SIZE);
    LazyLock::force(&BATCH_SECONDS);
    LazyLock::force(&RETRIES);
    LazyLock::force(&crate::metered::OPERATION_SECONDS);
}
