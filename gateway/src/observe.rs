//! Every HTTP request in a span and in the request metrics.
//!
//! The span names the route template (`/api/v1/rooms/{room_id}/messages`),
//! never the raw path or query, which may hold ids or an access token
//! (`/ws?token=`); a client's W3C `traceparent` header makes it part of the
//! caller's trace. Actions the request forwards carry the span on over the
//! bus (see `Relay::origin`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::metrics;

/// The route label of requests no route matched (bounded, unlike paths).
const UNMATCHED: &str = "unmatched";

/// Middleware: spans, counts and times one request.
pub async fn request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED.to_string(), |path| path.as_str().to_string());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http.request",
        http.method = %method,
        http.route = %route,
        http.status = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok());
    chat_bus::trace::follow(&span, traceparent);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.status", status.as_u16());
    metrics::HTTP_REQUESTS
        .with_label_values(&[status.as_str()])
        .inc();
    metrics::HTTP_SECONDS
        .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if status.is_server_error() {
        span.in_scope(|| tracing::warn!(status = status.as_u16(), "request failed"));
    }
    response
}
