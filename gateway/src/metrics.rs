//! What the gateway counts, and `GET /metrics` for Prometheus.
//!
//! Every crate registers its metrics in the process-wide registry (see the
//! `metrics` modules of the router and persistence crates), so this
//! endpoint serves them all, with the process's own CPU, memory and file
//! descriptor figures (registered by the `prometheus` crate's `process`
//! feature).

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_protocol::frames::{close_code, frame_type};
use prometheus::{
    Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    TextEncoder, register_histogram, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
};

use crate::ws::slots::Refusal;

const REGISTERED: &str = "metric names are valid and registered once";

/// Revoked sessions this gateway refuses (outstanding, not yet expired).
pub static REVOCATIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_revoked_sessions",
        "Revoked sessions whose tokens this gateway refuses until they expire"
    )
    .expect(REGISTERED)
});

/// Connections opened again in the shared presence state: their presence
/// had run out (a Redis outage longer than its time to live) or their
/// opening was lost on its way.
pub static PRESENCE_REOPENED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_presence_reopened_total",
        "Live connections whose presence was found expired or missing and opened again"
    )
    .expect(REGISTERED)
});

/// Reads of a room's members to confirm connections whose membership
/// view was older than a room event's version.
pub static MEMBERSHIP_READS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_gateway_membership_reads_total",
        "Store reads of a room's members to confirm connections before an event"
    )
    .expect(REGISTERED)
});

/// Confirmations that failed (the event was withheld from the unconfirmed
/// connections).
pub static MEMBERSHIP_READ_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_gateway_membership_read_failures_total",
        "Room member reads that failed; the event was withheld from unconfirmed connections"
    )
    .expect(REGISTERED)
});

/// Connections found no longer members of a room whose events they were
/// receiving (their `room_removed` was lost or raced with their opening).
pub static MEMBERSHIP_CORRECTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_gateway_membership_corrections_total",
        "Users removed from a room's local index by a membership re-check"
    )
    .expect(REGISTERED)
});

/// Rooms given to live connections that lacked them, found when the
/// gateway re-read its users' rooms after it may have missed events
/// (their `room_added` was lost).
pub static MISSED_ROOMS_FOUND: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_gateway_missed_rooms_found_total",
        "Rooms found missing from local connections after the gateway may have missed events"
    )
    .expect(REGISTERED)
});

/// Open WebSocket connections.
pub static CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("chat_connections", "Open WebSocket connections").expect(REGISTERED)
});

/// WebSocket upgrades refused by a connection cap, by cap (`per_user`,
/// `total`).
pub static CONNECTIONS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_connections_refused_total",
        "WebSocket upgrades refused by a connection cap, by cap",
        &["cap"]
    )
    .expect(REGISTERED)
});

/// The `cap` values of [`CAP_REFUSALS`], named once for the counting
/// sites and for [`register`].
pub mod fixed_cap {
    /// REST calls waiting for an answer from a router.
    pub const REQUESTS_IN_FLIGHT: &str = "requests_in_flight";
    /// Undecodable frames on one connection.
    pub const BAD_FRAMES: &str = "bad_frames";
    /// Every cap, registered at zero at start.
    pub const ALL: [&str; 2] = [REQUESTS_IN_FLIGHT, BAD_FRAMES];
}

/// Connections closed before a request's headers were read, by reason
/// (`timeout`: a new connection's not in time; `cap`: too many unfinished
/// already; `idle`: a kept-alive connection's next request not in time).
pub static HANDSHAKES_CLOSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_handshakes_closed_total",
        "Connections closed before their request headers were read, by reason",
        &["reason"]
    )
    .expect(REGISTERED)
});

/// The `reason` values of [`HANDSHAKES_CLOSED`], named once for the
/// counting sites and for [`register`].
pub mod handshake_reason {
    /// The request headers did not arrive within `header_timeout`.
    pub const TIMEOUT: &str = "timeout";
    /// Too many connections were unfinished already.
    pub const CAP: &str = "cap";
    /// Too many connections were open already (`max_open`).
    pub const FULL: &str = "full";
    /// A kept-alive connection's next request headers did not arrive
    /// within `keep_alive_timeout`.
    pub const IDLE: &str = "idle";
    /// Every reason, registered at zero at start.
    pub const ALL: [&str; 4] = [TIMEOUT, CAP, IDLE, FULL];
}

/// Uploads streaming now (holding a place; `files.concurrent_uploads`).
pub static UPLOADS_STREAMING: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_file_uploads_streaming",
        "Uploads streaming now (holding one of the process's places)"
    )
    .expect(REGISTERED)
});

/// Uploads refused after waiting too long for a place to stream, by whose
/// uploads held the places (`user`: the uploader's own,
/// `files.concurrent_uploads_per_user`; `server`: everyone's,
/// `files.concurrent_uploads`).
pub static UPLOADS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_file_uploads_refused_total",
        "Uploads refused after waiting too long for a place to stream, by whose uploads held the places",
        &["by"]
    )
    .expect(REGISTERED)
});

/// Downloads from a bucket streaming now (holding a place;
/// `files.concurrent_downloads`).
pub static DOWNLOADS_STREAMING: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_file_downloads_streaming",
        "Downloads from a bucket streaming now (holding one of the process's places)"
    )
    .expect(REGISTERED)
});

/// Downloads from a bucket refused after waiting too long for a place to
/// stream, by whose downloads held the places (as [`UPLOADS_REFUSED`];
/// `files.concurrent_downloads_per_user`, `files.concurrent_downloads`).
pub static DOWNLOADS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_file_downloads_refused_total",
        "Downloads from a bucket refused after waiting too long for a place to stream, by whose downloads held the places",
        &["by"]
    )
    .expect(REGISTERED)
});

/// The `by` values of [`UPLOADS_REFUSED`] and [`DOWNLOADS_REFUSED`], named
/// once for the counting sites and for [`register`].
pub mod transfer_refusal {
    /// The user's own transfers held all of their places.
    pub const USER: &str = "user";
    /// Everyone's transfers held all of the process's places.
    pub const SERVER: &str = "server";
    /// Every value, registered at zero at start.
    pub const ALL: [&str; 2] = [USER, SERVER];
}

/// Frames received from clients, by type (`invalid` for undecodable ones).
pub static FRAMES_IN: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_frames_received_total",
        "Frames received from clients, by type",
        &["type"]
    )
    .expect(REGISTERED)
});

/// Frames queued to clients, by type.
pub static FRAMES_OUT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_frames_sent_total",
        "Frames queued to clients, by type",
        &["type"]
    )
    .expect(REGISTERED)
});

/// Connections closed, by close code.
pub static DISCONNECTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_disconnects_total",
        "WebSocket connections closed, by close code",
        &["code"]
    )
    .expect(REGISTERED)
});

/// `ready` frames that listed fewer rooms than the user has
/// (`limits.ready_rooms`).
pub static READY_TRUNCATED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_ready_truncated_total",
        "ready frames that listed only limits.ready_rooms of the user's rooms"
    )
    .expect(REGISTERED)
});

/// `resume` calls cut short by their message budget
/// (`limits.resume_messages`).
pub static RESUME_TRUNCATED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_resume_truncated_total",
        "resume calls that spent limits.resume_messages and left rooms incomplete"
    )
    .expect(REGISTERED)
});

/// Connections cut off because their outbound queue overflowed (4003).
pub static SLOW_CONSUMERS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_slow_consumer_disconnects_total",
        "Connections closed with 4003 because they did not read fast enough"
    )
    .expect(REGISTERED)
});

/// Connections failed because the client took no bytes for
/// `limits.send_timeout_ms` while the server had some for it.
pub static SEND_STALLS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_send_stalls_total",
        "Connections closed because the client took no bytes for limits.send_timeout_ms"
    )
    .expect(REGISTERED)
});

/// From a message's creation (its id, minted at ingress) to its fan-out to
/// local connections.
pub static DELIVERY_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "chat_delivery_latency_seconds",
        "Time from a message's ingress to its fan-out by a gateway",
        prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")
    )
    .expect(REGISTERED)
});

/// Bus deliveries this gateway's subscription dropped because its
/// dispatcher fell behind (live delivery is at most once; `resume` closes
/// the gap for clients).
pub static BUS_DROPPED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_bus_dropped_deliveries",
        "Deliveries dropped by this gateway's bus subscription since start"
    )
    .expect(REGISTERED)
});

/// Room and user channels this gateway is subscribed to (one per room or
/// user with a local connection).
pub static SUBSCRIBED_CHANNELS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_subscribed_channels",
        "Room and user channels this gateway's hub is subscribed to"
    )
    .expect(REGISTERED)
});

/// HTTP requests answered, by status.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_http_requests_total",
        "HTTP requests answered, by status",
        &["status"]
    )
    .expect(REGISTERED)
});

/// How long HTTP requests took, by route template (never the raw path,
/// which holds ids), method and status.
pub static HTTP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "chat_http_request_duration_seconds",
        "Time to answer an HTTP request, by route template, method and status",
        &["route", "method", "status"],
        prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")
    )
    .expect(REGISTERED)
});

/// WebSocket connections opened (after authentication).
pub static CONNECTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_connections_opened_total",
        "WebSocket connections opened after authentication"
    )
    .expect(REGISTERED)
});

/// From a message's creation to its `ack` reaching the sender's gateway.
pub static ACK_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "chat_ack_latency_seconds",
        "Time from a message's ingress to its ack reaching the sender's gateway",
        prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")
    )
    .expect(REGISTERED)
});

/// Observes the time since `created_at_ms` (a message id's clock).
pub fn observe_since(histogram: &Histogram, created_at_ms: u64) {
    let age_ms = chat_protocol::id::now_ms().saturating_sub(created_at_ms);
    histogram.observe(age_ms as f64 / 1000.0);
}

/// Requests and connections refused because a fixed cap was reached, by
/// cap: `requests_in_flight` (REST calls waiting for an answer) or
/// `bad_frames` (a connection closed after too many undecodable frames).
pub static CAP_REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_cap_refusals_total",
        "Requests or connections refused because a fixed cap was reached, by cap",
        &["cap"]
    )
    .expect(REGISTERED)
});

/// Worker threads of the async runtime (`runtime_threads`, or one per
/// CPU the process may use).
pub static RUNTIME_THREADS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_runtime_threads",
        "Worker threads of the async runtime"
    )
    .expect(REGISTERED)
});

/// 1 when the last `/readyz` found the process ready, else 0 (updated
/// on each probe).
pub static READY: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_ready",
        "1 when the last /readyz probe found every dependency answering, else 0"
    )
    .expect(REGISTERED)
});

/// Per dependency (`store`, `bus`), 1 when it answered the last `/readyz`.
pub static DEPENDENCY_UP: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "chat_dependency_up",
        "1 when the dependency (store, bus) answered the last /readyz probe, else 0",
        &["dependency"]
    )
    .expect(REGISTERED)
});

/// Always 1; its labels say which build runs (`commit` is `unknown` when
/// the build had no git checkout).
pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let info = register_int_gauge_vec!(
        "chat_build_info",
        "Always 1: the version and git commit of the running build",
        &["version", "commit"]
    )
    .expect(REGISTERED);
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), env!("CHAT_BUILD_COMMIT")])
        .set(1);
    info
});

/// Registers every metric of the process (each crate's), with the label
/// values known in advance at zero, so that a scrape shows every series
/// from the start: a counter that appears only on its first increment
/// defeats `rate()` and `increase()` in alert rules. `chat_ready` and
/// `chat_dependency_up` are the exception: they appear with the first
/// `/readyz` probe, since a 0 before any probe would read as "down".
pub fn register() {
    LazyLock::force(&BUILD_INFO);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        RUNTIME_THREADS.set(runtime.metrics().num_workers() as i64);
    }
    LazyLock::force(&CONNECTIONS);
    LazyLock::force(&CONNECTS);
    LazyLock::force(&SLOW_CONSUMERS);
    LazyLock::force(&SEND_STALLS);
    LazyLock::force(&READY_TRUNCATED);
    LazyLock::force(&RESUME_TRUNCATED);
    LazyLock::force(&DELIVERY_SECONDS);
    LazyLock::force(&ACK_SECONDS);
    LazyLock::force(&BUS_DROPPED);
    LazyLock::force(&SUBSCRIBED_CHANNELS);
    LazyLock::force(&REVOCATIONS);
    LazyLock::force(&PRESENCE_REOPENED);
    LazyLock::force(&MEMBERSHIP_READS);
    LazyLock::force(&MEMBERSHIP_READ_FAILURES);
    LazyLock::force(&MEMBERSHIP_CORRECTIONS);
    LazyLock::force(&MISSED_ROOMS_FOUND);
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_SECONDS);
    // Frame types and close codes are many; the dashboard's main series
    // are there from the start, the others appear when first counted.
    FRAMES_IN.with_label_values(&[frame_type::SEND]);
    for kind in [frame_type::MESSAGE, frame_type::ACK] {
        FRAMES_OUT.with_label_values(&[kind]);
    }
    for code in [
        close_code::NORMAL,
        close_code::RESTARTING,
        close_code::TOO_SLOW,
    ] {
        DISCONNECTS.with_label_values(&[&code.to_string()]);
    }
    for cap in fixed_cap::ALL {
        CAP_REFUSALS.with_label_values(&[cap]);
    }
    for refusal in Refusal::ALL {
        CONNECTIONS_REFUSED.with_label_values(&[refusal.label()]);
    }
    for reason in handshake_reason::ALL {
        HANDSHAKES_CLOSED.with_label_values(&[reason]);
    }
    LazyLock::force(&UPLOADS_STREAMING);
    LazyLock::force(&DOWNLOADS_STREAMING);
    for by in transfer_refusal::ALL {
        UPLOADS_REFUSED.with_label_values(&[by]);
        DOWNLOADS_REFUSED.with_label_values(&[by]);
    }
    chat_bus::metrics::register();
    chat_router::metrics::register();
    chat_persistence::metrics::register();
    chat_files::metrics::register();
}

/// `GET /metrics`: every registered metric in the Prometheus text format.
pub async fn render() -> Response {
    let families = prometheus::gather();
    let mut body = Vec::new();
    match TextEncoder::new().encode(&families, &mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics not encodable");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
