//! What the stores count, for Prometheus. (What the persistence writer
//! counts is in `chat_router::metrics`.)

use std::sync::LazyLock;

use prometheus::{IntCounter, register_int_counter};

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
