//! Operational endpoints, without authentication: `/healthz` (the process
//! is alive), `/readyz` (its dependencies answer and its persistence
//! writer, if any, can write) and `/metrics`, served by
//! every role, plus the answers for unknown routes and methods.
//!
//! With `ops_listen` set, the details (which dependency failed and why,
//! and `/metrics`) are served only there; the public listener's `/readyz`
//! says ready or not ready, nothing more ([`OpsDetail::ReadyOnly`]).

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
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

/// What a listener's operational endpoints tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsDetail {
    /// `/healthz`, `/readyz` naming what is wrong, `/metrics`: on the only
    /// listener, or on `ops_listen`.
    Full,
    /// `/healthz` and a `/readyz` that only says ready or not ready: the
    /// public listener when `ops_listen` serves the rest.
    ReadyOnly,
}

/// The operational routes, with their own state so that processes without
/// a gateway (router, persistence) serve them too.
pub fn routes(dependencies: Dependencies, detail: OpsDetail) -> Router {
    metrics::register();
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let routes = match detail {
        OpsDetail::Full => routes.route("/metrics", get(metrics::render)),
        OpsDetail::ReadyOnly => routes,
    };
    routes.with_state(dependencies)
}

/// For [`OpsDetail::ReadyOnly`]: `/readyz` answers without its details
/// (they stay in the log and on `ops_listen`).
pub async fn ready_only(request: Request, next: Next) -> Response {
    if request.uri().path() != "/readyz" {
        return next.run(request).await;
    }
    let answer = next.run(request).await;
    if answer.status().is_success() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        let body = ErrorBody::new(ErrorCode::Unavailable, "not ready");
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
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
    // The answer names the dependency, never its error text (addresses,
    // driver messages): that goes to the log only.
    let problem = match (&store, &bus) {
        (Err(error), _) => Some(("store unreachable", error.to_string())),
        (_, Err(error)) => Some(("bus unreachable", error.to_string())),
        _ if chat_router::writer::writer_blocked() => {
            Some(("persistence writer cannot write", String::new()))
        }
        _ => None,
    };
    match problem {
        None => Json(json!({"status": "ready", "store": "ok", "bus": "ok"})).into_response(),
        Some((problem, error)) => {
            tracing::warn!(%problem, %error, "not ready");
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
