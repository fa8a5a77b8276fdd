//! The HTTP edge of the service: the REST API and WebSocket connections.
//!
//! The gateway holds no chat rules of its own: it authenticates, decodes,
//! calls [`chat_router::Chat`] and encodes. Modules:
//! - [`auth`]: JWT issue and verification, the authenticated-user extractor.
//! - [`cors`]: which browser origins may call the REST API.
//! - [`revocations`]: the revoked sessions this node refuses, in memory.
//! - [`known_users`]: whether a token's user exists (401, not 500).
//! - [`client_addr`]: the client's address (socket peer or trusted proxy).
//! - [`error`]: the gateway's one error type and its HTTP mapping.
//! - [`connections`]: the caps on open connections and on unfinished
//!   requests, and the request-header timeout.
//! - [`server`]: the HTTP server loop (hyper per connection, the keep-alive
//!   deadline, draining).
//! - [`extract`]: body, path and query extractors that answer bad input with
//!   the protocol's error body.
//! - [`rest`]: one module per resource.
//! - [`ws`]: WebSocket connections, the local room index and fan-out.
//! - [`relay`]: forwarding actions to the routers and their answers back.
//! - [`role`]: starting and stopping the gateway role (and the operational
//!   endpoints of processes without it).
//! - [`web`]: the web app and the JavaScript client library, embedded and
//!   served at `/`.

pub mod auth;
pub mod client_addr;
pub mod connections;
pub mod cors;
pub mod error;
pub mod extract;
pub mod known_users;
pub mod metrics;
pub mod observe;
pub mod relay;
pub mod rest;
pub mod revocations;
pub mod role;
pub mod server;
pub mod web;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chat_router::Chat;
use chat_shutdown::Supervisor;
use tower_http::timeout::TimeoutBody;

pub use auth::Tokens;
pub use error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub chat: Chat,
    pub tokens: Arc<Tokens>,
    /// The token users found in the store (see [`known_users`]).
    pub known_users: Arc<known_users::KnownUsers>,
    pub relay: Arc<relay::Relay>,
    pub hub: Arc<ws::hub::Hub>,
    pub ws: Arc<ws::WsConfig>,
    /// The connection caps and the connections holding them.
    pub slots: Arc<ws::slots::ConnectionSlots>,
    pub files: Arc<rest::files::FileService>,
    /// Whose `X-Forwarded-For` names the client.
    pub proxies: Arc<client_addr::TrustedProxies>,
}

/// Limits of the HTTP edge.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body; larger ones get 413 `too_large`.
    pub max_body_bytes: usize,
    /// Longest wait for the next bytes of a request body: a client that
    /// stalls half-way cannot hold its connection forever.
    pub body_idle_timeout: Duration,
    /// Longest time a JSON body may take to arrive whole, from its request's
    /// headers: a client that trickles one byte at a time, never idle for
    /// long, cannot hold its connection for days. (Uploads, which may be
    /// large, have a floor under their pace instead: `rest::upload_pace`.)
    pub body_timeout: Duration,
    /// The caps on connections, their request-header and send deadlines.
    pub connections: connections::ConnectionLimits,
}

/// The complete HTTP application: REST under `/api/v1`, the web app at `/`
/// and the operational endpoints.
pub fn app(
    state: AppState,
    limits: HttpLimits,
    ops: rest::ops::OpsDetail,
    supervisor: &Supervisor,
) -> Router {
    let dependencies = rest::ops::Dependencies {
        store: state.chat.store().clone(),
        bus: state.chat.bus().clone(),
    };
    // Outside the edge layers, so that a preflight is answered before the
    // router would refuse its OPTIONS method.
    let cors = cors::layer(state.ws.allowed_origins.clone());
    let api = Router::new()
        .nest(
            "/api/v1",
            rest::routes()
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    rest::throttle::charge_budget,
                ))
                .merge(rest::routes_beyond_budget()),
        )
        .route("/ws", axum::routing::get(ws::handshake::upgrade))
        .merge(web::routes())
        .with_state(state);
    with_edge_layers(
        api.merge(rest::ops::routes(dependencies, ops)),
        ops,
        supervisor,
    )
    .layer(DefaultBodyLimit::max(limits.max_body_bytes))
    .layer(axum::middleware::map_request(
        move |mut request: Request| {
            let idle = limits.body_idle_timeout;
            let deadline = extract::BodyDeadline(tokio::time::Instant::now() + limits.body_timeout);
            request.extensions_mut().insert(deadline);
            async move { request.map(|body| Body::new(TimeoutBody::new(idle, body))) }
        },
    ))
    .layer(cors)
    .layer(axum::middleware::map_response(cors::strip_unless_allowed))
}

/// The operational endpoints alone, for processes without a gateway.
pub fn ops_app(
    dependencies: rest::ops::Dependencies,
    ops: rest::ops::OpsDetail,
    supervisor: &Supervisor,
) -> Router {
    with_edge_layers(rest::ops::routes(dependencies, ops), ops, supervisor)
}

/// The answers for unknown routes, request counting and tracing, the same
/// for every process.
fn with_edge_layers(router: Router, ops: rest::ops::OpsDetail, supervisor: &Supervisor) -> Router {
    let router = router.layer(axum::middleware::from_fn_with_state(
        supervisor.clone(),
        not_ready_once_failed,
    ));
    // Outside the failure check above, so that its reason is withheld too.
    let router = match ops {
        rest::ops::OpsDetail::Full => router,
        rest::ops::OpsDetail::ReadyOnly => {
            router.layer(axum::middleware::from_fn(rest::ops::ready_only))
        }
    };
    router
        .fallback(rest::ops::not_found)
        .method_not_allowed_fallback(rest::ops::method_not_allowed)
        .layer(axum::middleware::map_response(end_json_with_newline))
        .layer(axum::middleware::from_fn(observe::request))
}

/// Answers `/readyz` with 503 once a role of this process has failed
/// (`chat_shutdown::Supervisor`): the process is on its way out, whatever
/// its dependencies say.
async fn not_ready_once_failed(
    axum::extract::State(supervisor): axum::extract::State<Supervisor>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match supervisor.failure() {
        Some(failure) if request.uri().path() == "/readyz" => {
            let body = chat_protocol::ErrorBody::new(
                chat_protocol::ErrorCode::Unavailable,
                format!("not ready: {failure}"),
            );
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
        _ => next.run(request).await,
    }
}

/// Ends every JSON answer with a newline, as text tools expect (a shell
/// prompt after `curl` then starts on a line of its own). JSON answers are
/// small and already whole in memory.
async fn end_json_with_newline(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(json) => {
            let mut text = Vec::with_capacity(json.len() + 1);
            text.extend_from_slice(&json);
            text.push(b'\n');
            parts.headers.remove(CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
        Err(error) => {
            tracing::error!(%error, "cannot read a JSON answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
