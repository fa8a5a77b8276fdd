//! The HTTP edge of the service: the REST API and (next) WebSocket
//! connections.
//!
//! The gateway holds no chat rules of its own: it authenticates, decodes,
//! calls [`chat_router::Chat`] and encodes. Modules:
//! - [`auth`]: JWT issue and verification, the authenticated-user extractor.
//! - [`error`]: the gateway's one error type and its HTTP mapping.
//! - [`extract`]: body, path and query extractors that answer bad input with
//!   the protocol's error body.
//! - [`rest`]: one module per resource.

pub mod auth;
pub mod error;
pub mod extract;
pub mod rest;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use chat_router::Chat;
use tower_http::trace::TraceLayer;

pub use auth::Tokens;
pub use error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub chat: Chat,
    pub tokens: Arc<Tokens>,
}

/// Limits of the HTTP edge.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body; larger ones get 413 `too_large`.
    pub max_body_bytes: usize,
}

/// The complete HTTP application: REST under `/api/v1` and the operational
/// endpoints.
pub fn app(state: AppState, limits: HttpLimits) -> Router {
    Router::new()
        .nest("/api/v1", rest::routes())
        .merge(rest::ops::routes())
        .fallback(rest::ops::not_found)
        .method_not_allowed_fallback(rest::ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
