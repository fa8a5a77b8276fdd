//! Charges every authenticated REST call to its user's action budget
//! (`Chat::charge_budget`, the same one WebSocket frames are charged to),
//! before the handler runs: a user over budget gets 429 `rate_limited`
//! with `Retry-After` and costs the store and the routers nothing.
//!
//! Calls without a valid token pass through untouched: the handler refuses
//! them with 401 (and login and register have their own limits). Logout is
//! not charged at all (`rest::routes_beyond_budget`).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// The middleware (see the module doc).
pub async fn charge_budget(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Ok(verified) = state.tokens.verify_bearer(request.headers())
        && let Err(error) = state
            .chat
            .charge_budget(verified.user, chat_router::metrics::action::REST)
            .await
    {
        return ApiError::from(error).into_response();
    }
    next.run(request).await
}
