//! The HTTP server loop: accepts connections through the
//! [`GuardedListener`], serves each with hyper's HTTP/1 and, when told to
//! stop, stops accepting and lets the requests in flight finish.
//!
//! This is what `axum::serve` does, plus the one bound it cannot be given:
//! a deadline for a kept-alive connection's next request. Without it, a
//! client can open connections, make one request on each and then hold
//! them idle for as long as it likes, a file descriptor apiece. hyper's
//! header read timeout is that deadline: it is armed whenever hyper waits
//! for a request's headers (from the end of the previous response) and
//! disarmed once they are all in, so it never runs while a request is being
//! answered (a long download to a slow client), while its body is read
//! (bounded by `body_idle_timeout`) or once the connection is upgraded
//! (WebSockets have their heartbeat). It also bounds a later request's
//! headers trickled a byte at a time, which the listener's first-request
//! deadline does not see.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::connections::{ConnectionLimits, GuardedListener, GuardedStream};
use crate::metrics::{HANDSHAKES_CLOSED, handshake_reason};

/// Serves `app` on `listener` until `shutdown` resolves and every
/// connection has finished its request in flight (upgraded connections
/// are their handlers' to close).
pub async fn serve(
    listener: TcpListener,
    limits: ConnectionLimits,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut listener = GuardedListener::new(listener, limits);
    let connections = TaskTracker::new();
    let draining = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Accept errors (out of file descriptors) are retried inside.
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            limits.keep_alive_timeout,
            draining.clone(),
        ));
    }
    drop(listener);
    draining.cancel();
    connections.close();
    connections.wait().await;
}

/// Serves one connection's requests until it closes, its next request is
/// late or, once `draining`, its request in flight is answered.
async fn serve_connection(
    stream: GuardedStream,
    peer: SocketAddr,
    app: Router,
    keep_alive_timeout: Duration,
    draining: CancellationToken,
) {
    // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's
    // algorithm and delayed ACKs hold back a frame that follows another by
    // ~40 ms (measured with the load generator, docs/benchmarks.md).
    if let Err(error) = stream.tcp().set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    // The peer address is what the audit log records for a client (unless
    // a trusted proxy names another).
    let app = app.map_request(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.map(Body::new)
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(keep_alive_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = draining.cancelled() => {
            // Answers the request in flight, if any, then closes.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    match served {
        Ok(()) => {}
        Err(error) if error.is_timeout() => {
            HANDSHAKES_CLOSED
                .with_label_values(&[handshake_reason::IDLE])
                .inc();
        }
        Err(error) => tracing::trace!(%error, %peer, "connection ended with an error"),
    }
}
