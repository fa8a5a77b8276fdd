//! CORS for the REST API (v1.1), so that a browser app served from another
//! origin can call it: tower-http's [`CorsLayer`], preflight included.
//!
//! The origins are the ones allowed for WebSocket (`realtime.allowed_origins`,
//! `"*"` for any) and the server's own, decided by the same
//! [`origin_allowed`] as the WebSocket handshake, so the two can never
//! disagree. A request from any other origin gets no CORS headers at all
//! (the browser then refuses the answer to the page). No credentials
//! (cookies) are involved: clients send bearer tokens.

use std::time::Duration;

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, RANGE, RETRY_AFTER};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::ws::handshake::origin_allowed;

/// The paths of the REST API.
const API_PREFIX: &str = "/api/";

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `allowed` origins (besides the server's own).
pub fn layer(allowed: Vec<String>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, request| {
            // The layer wraps the whole app; only the REST API takes part.
            if !request.uri.path().starts_with(API_PREFIX) {
                return false;
            }
            let mut headers = HeaderMap::new();
            headers.insert(axum::http::header::ORIGIN, origin.clone());
            if let Some(host) = request.headers.get(axum::http::header::HOST) {
                headers.insert(axum::http::header::HOST, host.clone());
            }
            origin_allowed(&headers, &allowed)
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE, RANGE])
        .expose_headers([
            RETRY_AFTER,
            axum::http::header::CONTENT_DISPOSITION,
            axum::http::header::CONTENT_RANGE,
            HeaderName::from_static("x-content-type-options"),
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Drops every `Access-Control-*` header from an answer that does not allow
/// the origin: the layer adds the allowed methods and headers to every
/// preflight, but an origin that is refused should learn nothing.
pub async fn strip_unless_allowed(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in names {
            headers.remove(name);
        }
    }
    response
}
