//! What the router and the persistence writer count, for Prometheus.

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, register_histogram,
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
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

/// The `result` of an action that succeeded, in [`ACTIONS`] and
/// [`ACTION_SECONDS`]; a refused one has its error code.
pub const RESULT_OK: &str = "ok";

/// Room creations and member adds refused by a cap
/// ([`crate::caps`]), by cap.
pub static CAPS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_caps_refused_total",
        "Room creations and member adds refused by a cap, by cap",
        &["cap"]
    )
    .expect("metric names are valid and registered once")
});

/// Password hashing jobs (register, login, password change) waiting for a
/// hashing thread ([`crate::password`]).
pub static HASH_QUEUE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_password_hash_queue",
        "Password hashing jobs waiting for a hashing thread"
    )
    .expect("metric names are valid and registered once")
});

/// Password hashing jobs refused because the hashing queue was full.
pub static HASH_REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_password_hash_refused_total",
        "Password hashing jobs (register, login, password change) refused because the hashing queue was full"
    )
    .expect("metric names are valid and registered once")
});

/// Presence changes not published to a room because it has more than
/// `presence_max_room_members` members (one per change and room).
pub static PRESENCE_WITHHELD: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_presence_withheld_total",
        "Presence changes not published to a room larger than presence_max_room_members"
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

/// The `action` values the router counts under a name of its own, for
/// [`RATE_LIMITED`] and [`BUDGET_REFUSED`]; named once for the counting
/// sites and for [`register`]. Other actions are counted under their
/// frame type, as the protocol names it.
pub mod action {
    use chat_protocol::frames::frame_type;

    /// A message `send`, WebSocket or REST.
    pub const SEND: &str = frame_type::SEND;
    /// A `typing` frame, dropped when too frequent.
    pub const TYPING: &str = frame_type::TYPING;
    /// A file upload.
    pub const UPLOAD: &str = "upload";
    /// Any authenticated REST call, charged to the action budget.
    pub const REST: &str = "rest";
    /// A WebSocket connection (its upgrade), charged to the action budget.
    pub const CONNECT: &str = "connect";
}

/// Joins and adds refused because the room was full (v1.1 room size).
pub static ROOM_FULL: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_room_full_total",
        "Joins and member adds refused because the room had max_members members"
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

/// The `by` values of [`LOGIN_LIMITED`], named once for the counting
/// site and for [`register`].
pub mod login_limited_by {
    /// Too many attempts from one client address.
    pub const ADDRESS: &str = "address";
    /// Too many attempts on one username.
    pub const USERNAME: &str = "username";
    /// Every value, registered at zero at start.
    pub const ALL: [&str; 2] = [ADDRESS, USERNAME];
}

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

/// Batch writes that failed and were retried.
pub static RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_persist_retries_total",
        "Persistence batch writes retried after an error"
    )
    .expect("metric names are valid and registered once")
});

/// Messages the store refused for good (refused to their senders).
pub static REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_persist_refused_total",
        "Messages the store refused for a reason retrying cannot cure"
    )
    .expect("metric names are valid and registered once")
});

/// 1 while this process's persistence writer cannot write.
pub static WRITER_BLOCKED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_persist_writer_blocked",
        "1 while the persistence writer's last store write failed"
    )
    .expect("metric names are valid and registered once")
});

/// Registers these metrics with their known label values at zero.
pub fn register() {
    for limited in [action::SEND, action::TYPING, action::UPLOAD] {
        RATE_LIMITED.with_label_values(&[limited]);
    }
    // Actions and results are many; the dashboard's main series is there
    // from the start, the others appear when first counted.
    ACTIONS.with_label_values(&[action::SEND, RESULT_OK]);
    ACTION_SECONDS.with_label_values(&[action::SEND, RESULT_OK]);
    LazyLock::force(&MESSAGES);
    LazyLock::force(&BATCH_SIZE);
    LazyLock::force(&BATCH_SECONDS);
    LazyLock::force(&RETRIES);
    LazyLock::force(&REFUSED);
    LazyLock::force(&WRITER_BLOCKED);
    LazyLock::force(&HASH_QUEUE);
    LazyLock::force(&HASH_REFUSED);
    LazyLock::force(&PRESENCE_WITHHELD);
    LazyLock::force(&ROOM_FULL);
    for cap in crate::caps::CAPS {
        CAPS_REFUSED.with_label_values(&[cap]);
    }
    // Every frame type is charged to the budget; these two carry the
    // floods an alert is for.
    for charged in [action::SEND, action::REST] {
        BUDGET_REFUSED.with_label_values(&[charged]);
    }
    for by in login_limited_by::ALL {
        LOGIN_LIMITED.with_label_values(&[by]);
    }
    crate::audit::register();
}
