//! `GET /ws`: everything checked before the upgrade.
//!
//! The token comes in `Authorization: Bearer …` or, for browsers (which
//! cannot set headers on a WebSocket), in `access_token`. A browser's
//! `Origin` must be the server's own or in the allow-list, so that another
//! site cannot open connections with a user's token (cross-site WebSocket
//! hijacking). Native clients send no `Origin` and are not affected.

use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::response::{IntoResponse, Response};
use chat_protocol::codec::{JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL};
use chat_protocol::{Codec, ErrorCode};
use serde::Deserialize;

use super::slots::Refusal;
use crate::auth::TokenError;
use crate::extract::QueryParams;
use crate::{ApiError, AppState};

/// The largest message a client may send; larger ones close with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// What the WebSocket library will buffer before giving up; frames between
/// this and [`MAX_FRAME_BYTES`] are read whole so that they can be refused
/// with the protocol's close code.
const READ_LIMIT_BYTES: usize = 1024 * 1024;
/// The socket read buffer, allocated for every connection for its whole
/// life (the library's default is 128 KiB, most of an idle connection's
/// memory). Chat frames are small; a larger frame grows the buffer for
/// the time it is read.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Frames are gathered up to this size before a write (the session flushes
/// each burst anyway); the buffer only grows when something is written.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

/// When a client refused by a connection cap should try again.
const RETRY_CONNECT_MS: u64 = 5_000;

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    access_token: Option<String>,
}

/// The upgrade handler.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let verified = match authenticate(&state, &headers, query.access_token.as_deref()) {
        Ok(verified) => verified,
        Err(error) => return ApiError::from(error).into_response(),
    };
    if !origin_allowed(&headers, &state.ws.allowed_origins) {
        return ApiError::Forbidden("origin not allowed").into_response();
    }
    // A connection costs more than most actions (its rooms are read, its
    // channels subscribed, its presence announced): it counts against the
    // user's action budget like one, so that reconnecting in a loop is cut
    // off like any other flood. A budget that cannot be read (the bus is
    // out of reach) refuses nothing here: the connection is upgraded and
    // closed with 1013, as every connection in an outage is.
    match state
        .chat
        .charge_budget(verified.user, chat_router::metrics::action::CONNECT)
        .await
    {
        Err(error @ chat_router::Error::RateLimited { .. }) => {
            return ApiError::from(error).into_response();
        }
        Err(error) => tracing::debug!(%error, "connection budget not charged"),
        Ok(()) => {}
    }
    let slot = match state.slots.take(verified.user) {
        Ok(slot) => slot,
        Err(refusal) => {
            crate::metrics::CONNECTIONS_REFUSED
                .with_label_values(&[refusal.label()])
                .inc();
            let message = match refusal {
                Refusal::PerUser => "too many connections for this user",
                Refusal::Total => "too many connections on this server",
            };
            return ApiError::Refused {
                code: ErrorCode::RateLimited,
                message: message.into(),
                retry_after_ms: Some(RETRY_CONNECT_MS),
            }
            .into_response();
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::bad_request(format!("not a WebSocket upgrade: {rejection}"))
                .into_response();
        }
    };
    let upgrade = upgrade
        .protocols([JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL])
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(READ_LIMIT_BYTES)
        .max_frame_size(READ_LIMIT_BYTES);
    let codec = upgrade
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Codec::from_subprotocol)
        .unwrap_or(Codec::Json);
    upgrade
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| {
            let hub = state.hub.clone();
            hub.track(async move {
                super::session::run(socket, state, verified, codec).await;
                // The slot is held for the connection's whole life.
                drop(slot);
            })
        })
}

fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<crate::auth::Verified, TokenError> {
    match query_token {
        Some(token) if !headers.contains_key(AUTHORIZATION) => state.tokens.verify(token),
        _ => state.tokens.verify_bearer(headers),
    }
}

/// No `Origin` (native client), the server's own origin, or an allowed one.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example.com".to_string()];
        assert!(
            origin_allowed(&headers(None, "chat:8080"), &allowed),
            "native clients"
        );
        assert!(
            origin_allowed(&headers(Some("http://chat:8080"), "chat:8080"), &allowed),
            "same origin"
        );
        assert!(origin_allowed(
            &headers(Some("https://app.example.com"), "chat:8080"),
            &allowed
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "chat:8080"),
            &allowed
        ));
        assert!(origin_allowed(
            &headers(Some("https://evil.example"), "chat:8080"),
            &["*".into()]
        ));
    }
}
