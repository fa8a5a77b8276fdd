//! `chatd serve` and `chatd migrate`: wiring the roles together.
//!
//! `serve` runs the gateway, a router and a persistence worker in one
//! process over the in-process bus and the embedded store. Shutdown runs in
//! the order that loses nothing: close WebSockets with 1012 and finish the
//! HTTP requests in flight, then stop the router, then let the persistence
//! worker drain its stream, then flush the store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_bus::Bus;
use chat_gateway::relay::Relay;
use chat_gateway::ws::WsConfig;
use chat_gateway::ws::hub::Hub;
use chat_gateway::{AppState, HttpLimits, Tokens};
use chat_persistence::Store;
use chat_persistence::sqlite::{SqliteOptions, SqliteStore};
use chat_protocol::IdGenerator;
use chat_protocol::frames::close_code;
use chat_router::Chat;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::secrets;

/// How long shutdown waits for each stage before going on.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Entries pending this long with a consumer are presumed abandoned.
const CLAIM_IDLE: Duration = Duration::from_secs(30);

/// Runs every role in this process until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let secret = secrets::jwt_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
    let sqlite = Arc::new(open_store(&config)?);
    let store: Arc<dyn Store> = sqlite.clone();
    let realtime = &config.realtime;
    let bus = Bus::local(realtime.stream_capacity);
    let chat = Chat::new(
        store.clone(),
        bus.clone(),
        Arc::new(IdGenerator::new(config.worker_id)),
        config.rates,
    );

    let name = process_name();
    let relay = Arc::new(Relay::new(
        format!("gw-{name}"),
        bus.clone(),
        Duration::from_millis(realtime.reply_timeout_ms),
    ));
    let subscription = bus
        .pubsub
        .subscribe(realtime.subscription_buffer)
        .await
        .context("cannot subscribe to the bus")?;
    let hub = Arc::new(Hub::new(subscription.control, relay.clone()));
    hub.start()
        .await
        .context("cannot subscribe the reply channel")?;
    let dispatcher = tokio::spawn({
        let hub = hub.clone();
        async move { hub.run(subscription.deliveries).await }
    });

    let (stop_router, router_stopped) = watch::channel(false);
    let router = tokio::spawn(chat_router::worker::run(
        chat.clone(),
        format!("router-{name}"),
        CLAIM_IDLE,
        router_stopped,
    ));
    let (stop_persistence, persistence_stopped) = watch::channel(false);
    let persistence = tokio::spawn(chat_persistence::worker::run(
        store,
        bus,
        format!("persist-{name}"),
        realtime.persist_batch,
        CLAIM_IDLE,
        persistence_stopped,
    ));

    let state = AppState {
        chat,
        tokens: Arc::new(Tokens::hs256(&secret, config.token_ttl_secs)),
        relay,
        hub: hub.clone(),
        ws: Arc::new(WsConfig {
            heartbeat_interval: Duration::from_millis(realtime.heartbeat_interval_ms),
            outbound_queue: realtime.outbound_queue,
            allowed_origins: realtime.allowed_origins.clone(),
        }),
    };
    let app = chat_gateway::app(
        state,
        HttpLimits {
            max_body_bytes: config.limits.max_body_bytes,
        },
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(data_dir = %config.data_dir.display(), "listening on http://{address}");

    let (shutting_down, mut shutdown_seen) = watch::channel(false);
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown_seen.wait_for(|stop| *stop).await;
            })
            .await
    });
    shutdown_signal().await;

    tracing::info!("draining: closing connections with 1012");
    hub.close_all(close_code::RESTARTING, "server restarting")
        .await;
    let _ = shutting_down.send(true);
    wait("HTTP server", http).await;
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while hub.connections().await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_router.send(true);
    wait("router", router).await;
    let _ = stop_persistence.send(true);
    wait("persistence worker", persistence).await;
    dispatcher.abort();
    tracing::info!("draining: flushing the store");
    if tokio::time::timeout(DRAIN_TIMEOUT, sqlite.close())
        .await
        .is_err()
    {
        tracing::error!("the store did not flush in time");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Waits for a task of the shutdown sequence, but not forever.
async fn wait<T>(what: &str, task: tokio::task::JoinHandle<T>) {
    match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
        Ok(Ok(_)) => tracing::info!("{what} stopped"),
        Ok(Err(error)) => tracing::error!(%error, "{what} failed"),
        Err(_) => tracing::error!("{what} did not stop in time"),
    }
}

/// A random name for this process's consumers and reply channel.
fn process_name() -> String {
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Applies the schema and exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    open_store(config)?.close().await;
    tracing::info!(path = %config.sqlite_path().display(), "schema is up to date");
    Ok(())
}

fn open_store(config: &Config) -> anyhow::Result<SqliteStore> {
    let options = SqliteOptions {
        read_pool_size: config.sqlite.read_pool_size,
        max_batch: config.sqlite.max_batch,
        queue_capacity: config.sqlite.queue_capacity,
        ..SqliteOptions::default()
    };
    let path = config.sqlite_path();
    SqliteStore::open(&path, options).with_context(|| format!("cannot open {}", path.display()))
}

/// Resolves on SIGTERM (Kubernetes, systemd) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
