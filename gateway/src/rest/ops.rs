//! Operational endpoints, without authentication: `/healthz` (the process
//! is alive) and `/readyz` (its dependencies answer), plus the answers for
//! unknown routes and methods.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chat_protocol::{ErrorBody, ErrorCode};
use serde_json::json;

use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.chat.store().ping().await {
        Ok(()) => Json(json!({"status": "ready", "store": "ok"})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ErrorBody::new(ErrorCode::Unavailable, "store unreachable")),
            )
                .into_response()
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody::new(
            ErrorCode::BadRequest,
            "method not allowed on this endpoint",
        )),
    )
        .into_response()
}
