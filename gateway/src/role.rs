//! The gateway role as a unit: [`start`] serves HTTP and WebSocket on a
//! listener and runs the gateway's background tasks; the [`RoleHandle`] it
//! answers stops them all.
//!
//! Stopping drains in the order that loses nothing: WebSockets are closed
//! with 1012 (restarting) and the listener stops accepting; HTTP requests
//! in flight finish; once every connection's task has ended (each tells the
//! routers it is gone), the bus subscription, the presence refresh and the
//! file sweep stop. Processes without the gateway role serve only the
//! operational endpoints, through [`serve_ops`].

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::frames::close_code;
use chat_protocol::internal::Work;
use chat_router::Chat;
use chat_shutdown::{CancellationToken, RoleHandle, Supervisor};
use tokio::net::TcpListener;

use crate::client_addr::TrustedProxies;
use crate::connections::ConnectionLimits;
use crate::metrics;
use crate::relay::Relay;
use crate::rest::files::FileService;
use crate::rest::ops::{Dependencies, OpsDetail};
use crate::server::serve;
use crate::ws::WsConfig;
use crate::ws::hub::Hub;
use crate::{AppState, HttpLimits, Tokens};

/// What the gateway needs besides the chat logic.
pub struct GatewayOptions {
    /// This process's name: the gateway is `gw-<name>` on the bus.
    pub name: String,
    pub tokens: Arc<Tokens>,
    /// How often the revoked sessions are reloaded from the store (the bound
    /// on staleness if a revocation's bus message is lost).
    pub revocation_refresh: Duration,
    /// How often the gateway looks whether it may have missed events, and
    /// then gives its connections the rooms whose `room_added` was lost.
    pub missed_rooms_check: Duration,
    /// Whose `X-Forwarded-For` names the client.
    pub proxies: TrustedProxies,
    pub ws: WsConfig,
    pub files: Arc<FileService>,
    pub limits: HttpLimits,
    /// How long a request forwarded to the routers waits for its answer.
    pub reply_timeout: Duration,
    /// What the operational endpoints on the public listener tell
    /// (everything, or only ready / not ready when `ops_listen` serves the
    /// rest elsewhere).
    pub public_ops: OpsDetail,
    /// Deliveries the bus subscription buffers.
    pub subscription_buffer: usize,
    /// How often unused files are swept, and how long a file may stay
    /// unused before it is.
    pub file_sweep: FileSweep,
}

/// The file sweep's timings (see `chat_files::sweep`).
#[derive(Clone, Copy, Debug)]
pub struct FileSweep {
    pub every: Duration,
    pub grace: Duration,
}

/// Starts the gateway role on `listener`: subscribes the bus and the reply
/// channel, then serves. Fails only if the bus cannot be subscribed.
pub async fn start(
    supervisor: &Supervisor,
    chat: &Chat,
    listener: TcpListener,
    options: GatewayOptions,
) -> chat_bus::Result<RoleHandle> {
    let role = supervisor.role("gateway");
    let bus = chat.bus();
    let relay = Arc::new(Relay::new(
        format!("gw-{}", options.name),
        bus.clone(),
        options.reply_timeout,
        chat.partitions(),
    ));
    let subscription = bus.pubsub.subscribe(options.subscription_buffer).await?;
    let revocations = options.tokens.revocations().clone();
    let hub = Arc::new(
        Hub::new(subscription.control, relay.clone(), chat.store().clone())
            .with_revocations(revocations.clone()),
    );
    hub.start().await?;
    let state = AppState {
        chat: chat.clone(),
        tokens: options.tokens,
        known_users: Arc::new(crate::known_users::KnownUsers::new()),
        relay: relay.clone(),
        hub: hub.clone(),
        slots: Arc::new(crate::ws::slots::ConnectionSlots::new(
            options.ws.max_connections_per_user,
            options.ws.max_connections,
        )),
        ws: Arc::new(options.ws),
        files: options.files.clone(),
        proxies: Arc::new(options.proxies),
    };
    let connections = options.limits.connections;
    let app = crate::app(state, options.limits, options.public_ops, supervisor);

    // These run until the connections are gone, not just until the role's
    // signal: a closing connection still hears its answers and vouches.
    let connections_gone = CancellationToken::new();
    role.spawn(
        "bus subscription",
        until(connections_gone.clone(), {
            let hub = hub.clone();
            async move { hub.run(subscription.deliveries).await }
        }),
    );
    role.spawn(
        "presence refresh",
        until(
            connections_gone.clone(),
            vouch_for_connections(chat.clone(), hub.clone(), relay),
        ),
    );
    role.spawn_until_stopped(
        "file sweep",
        chat_files::sweep::run(
            chat.store().clone(),
            options.files.objects.clone(),
            options.file_sweep.every,
            options.file_sweep.grace,
        ),
    );
    role.spawn_until_stopped(
        "revocation refresh",
        hub.clone()
            .refresh_revocations(chat.store().clone(), options.revocation_refresh),
    );
    role.spawn_until_stopped(
        "missed rooms",
        hub.clone()
            .follow_missed_rooms(chat.clone(), options.missed_rooms_check),
    );
    let stop = role.stopping();
    role.spawn("http", async move {
        // Cancels when this task ends, even by a panic: the tasks above
        // must not outlive it.
        let _connections_gone = connections_gone.drop_guard();
        let closing = {
            let (hub, stop) = (hub.clone(), stop.clone());
            async move {
                stop.cancelled().await;
                tracing::info!("draining: closing connections with 1012");
                hub.close_all(close_code::RESTARTING, "server restarting")
                    .await;
            }
        };
        serve(listener, connections, app, closing).await;
        // Connections upgraded while the listener was closing.
        hub.close_all(close_code::RESTARTING, "server restarting")
            .await;
        hub.drained().await;
    });
    Ok(role)
}

/// Runs `task` until `stop` fires.
async fn until(stop: CancellationToken, task: impl std::future::Future<Output = ()>) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = task => {}
    }
}

/// Serves only the operational endpoints on `listener` (`/healthz`,
/// `/readyz` and, with [`OpsDetail::Full`], `/metrics`): for a process
/// without the gateway role, and on `ops_listen`; stops (last) with its
/// handle.
pub fn serve_ops(
    supervisor: &Supervisor,
    listener: TcpListener,
    connections: ConnectionLimits,
    dependencies: Dependencies,
    detail: OpsDetail,
) -> RoleHandle {
    let role = supervisor.role("ops http");
    let app = crate::ops_app(dependencies, detail, supervisor);
    let stop = role.stopping();
    role.spawn(
        "http",
        serve(listener, connections, app, stop.cancelled_owned()),
    );
    role
}

/// Keeps this gateway's connections live in the shared presence state, so
/// that if this process dies they expire and their users go offline.
///
/// Every third of the time to live, it vouches for all of them in a few
/// calls of [`VOUCH_AT_ONCE`] connections each (on Redis, one script per
/// presence shard and call), so the cost in round trips grows with the
/// gateways, not with their connections. A connection the state no longer
/// holds as live (its presence ran out while Redis was out of reach for
/// longer than the time to live, or its opening was lost on its way) is
/// opened again, as a new connection would be, so that its user comes back
/// online instead of staying offline for as long as it stays open.
async fn vouch_for_connections(chat: Chat, hub: Arc<Hub>, relay: Arc<Relay>) {
    let mut every = tokio::time::interval(chat.presence_ttl() / 3);
    loop {
        every.tick().await;
        let open = hub.connections_snapshot().await;
        for open in open.chunks(VOUCH_AT_ONCE) {
            let batch: Vec<(String, String)> = open
                .iter()
                .map(|(user, connection)| (user.to_string(), relay.connection_key(*connection)))
                .collect();
            let not_live = match chat.connections_alive(&batch).await {
                Ok(not_live) => not_live,
                Err(error) => {
                    tracing::warn!(%error, connections = batch.len(), "presence not refreshed");
                    continue;
                }
            };
            for (&(user, connection), (_, key)) in not_live
                .into_iter()
                .filter_map(|at| Some((open.get(at)?, batch.get(at)?)))
            {
                // Closed meanwhile: its closing is forwarded already, and
                // must not be overtaken by an opening.
                if !hub.is_open(connection) {
                    continue;
                }
                metrics::PRESENCE_REOPENED.inc();
                let opened = Work::Connected {
                    connection: key.clone(),
                };
                let origin = relay.origin(Some(connection), None);
                if let Err(error) = relay.forward(user, opened, origin).await {
                    tracing::warn!(%error, "presence of a connection not opened again");
                }
            }
        }
    }
}

/// Most connections vouched for in one call: large enough that a call's
/// fixed costs vanish, small enough that one call holds Redis (or the
/// in-process state's lock) for well under a millisecond.
const VOUCH_AT_ONCE: usize = 1000;
