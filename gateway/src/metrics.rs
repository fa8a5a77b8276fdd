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
use prometheus::{
    Encoder, Histogram, IntCounter, IntCounterVec, IntGauge, TextEncoder, register_histogram,
    register_int_counter, register_int_counter_vec, register_int_gauge,
};

const REGISTERED: &str = "metric names are valid and registered once";

/// Revoked sessions this gateway refuses (outstanding, not yet expired).
pub static REVOCATIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "chat_revoked_sessions",
        "Revoked sessions whose tokens this gateway refuses until they expire"
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

/// Connections closed before their first request's headers were read, by
/// reason (`timeout`: not in time; `cap`: too many unfinished already).
pub static HANDSHAKES_CLOSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_handshakes_closed_total",
        "Connections closed before their request headers were read, by reason",
        &["reason"]
    )
    .expect(REGISTERED)
});

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

/// Connections cut off because their outbound queue overflowed (4003).
pub static SLOW_CONSUMERS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_slow_consumer_disconnects_total",
        "Connections closed with 4003 because they did not read fast enough"
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

/// HTTP requests answered, by status class.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_http_requests_total",
        "HTTP requests answered, by status",
        &["status"]
    )
    .expect(REGISTERED)
});

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

/// Counts every HTTP answer by status.
pub async fn count_requests(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    HTTP_REQUESTS
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}
