//! Operational endpoints, without authentication: `/healthz` (the process
//! is alive), `/readyz` (its dependencies answer and its persistence
//! writer, if any, can write) and `/metrics`, served by
//! every role, plus the answers for unknown routes and methods.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chat_protocol::{ErrorBody, ErrorCode};
use serde_json::json;

use crate::{ApiError, metrics};

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Dependencies {
    pub store: std::sync::Arc<dyn chat_persistence::Store>,
    pub bus: chat_bus::Bus,
}

/// The operational routes, with their own state so that processes without
/// a gateway (router, persistence) serve them too.
pub fn routes(dependencies: Dependencies) -> Router {
    metrics::register();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .with_state(dependencies)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(dependencies): State<Dependencies>) -> Response {
    let (store, bus) = tokio::join!(dependencies.store.ping(), dependencies.bus.state.ping());
    for (dependency, answer) in [("store", store.is_ok()), ("bus", bus.is_ok())] {
        metrics::DEPENDENCY_UP
            .with_label_values(&[dependency])
            .set(i64::from(answer));
    }
    metrics::READY.set(i64::from(store.is_ok() && bus.is_ok()));
    let problem = match (&store, &bus) {
        (Err(error), _) => Some(format!("store unreachable: {error}")),
        (_, Err(error)) => Some(format!("bus unreachable: {error}")),
        _ if chat_router::writer::writer_blocked() => {
            Some("persistence writer cannot write".to_owned())
        }
        _ => None,
    };
    match problem {
        None => Json(json!({"status": "ready", "store": "ok", "bus": "ok"})).into_response(),
        Some(problem) => {
            tracing::warn!(%problem, "not ready");
            let body = ErrorBody::new(ErrorCode::Unavailable, problem);
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
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
