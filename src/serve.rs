//! `chatd serve | gateway | router | persist` and `chatd migrate`: wiring
//! the roles together.
//!
//! Every command that runs roles does the same: open the store and the bus,
//! take a Snowflake worker id, start the roles it was asked for, serve HTTP
//! (the whole API for a gateway, only the operational endpoints otherwise),
//! and on SIGTERM shut down in the order that loses nothing: close
//! WebSockets with 1012 and finish the HTTP requests in flight, let the
//! router drain the inbound stream, let the persistence worker drain the
//! persist stream, flush the store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use chat_bus::Bus;
use chat_gateway::relay::Relay;
use chat_gateway::rest::files::FileService;
use chat_gateway::rest::ops::Dependencies;
use chat_gateway::ws::WsConfig;
use chat_gateway::ws::hub::Hub;
use chat_gateway::{AppState, HttpLimits, Tokens};
use chat_protocol::IdGenerator;
use chat_protocol::frames::close_code;
use chat_router::files::UploadPolicy;
use chat_router::{Chat, Settings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::Role;
use crate::config::Config;
use crate::data_dir::DataDirLock;
use crate::secrets;
use crate::store::StoreHandle;

/// How long shutdown waits for each stage before going on.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a leased worker id lives without renewal.
const WORKER_LEASE: Duration = Duration::from_secs(30);

/// Runs `roles` in this process until SIGTERM or Ctrl-C.
pub async fn run(config: Config, roles: &[Role]) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.redis_url.is_some() || roles.len() == 3,
        "a single role ({roles:?}) only makes sense in a cluster: set CHAT_REDIS_URL, \
         or run `chatd serve` for everything in one process"
    );
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    // Held until this function returns: alone, this process's ids are only
    // unique if no other process uses the directory.
    let _data_dir_lock = match config.redis_url {
        None => Some(DataDirLock::acquire(&config.data_dir)?),
        Some(_) => None,
    };
    // Checked before the store is opened (and perhaps migrated) for nothing.
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let store = StoreHandle::open(&config).await?;
    let bus = open_bus(&config).await?;
    let name = process_name();
    let (fatal, mut fatal_seen) = watch::channel(false);
    let (worker_id, lease) = worker_id(&config, &bus, &name, fatal).await?;
    tracing::info!(worker_id, process = %name, ?roles, "starting");
    let chat = Chat::new(
        store.store(),
        bus.clone(),
        Arc::new(IdGenerator::new(worker_id)),
        Settings {
            rates: config.rates,
            presence_ttl: Duration::from_millis(config.realtime.presence_ttl_ms),
            partitions: config.realtime.partitions,
            rooms: config.rooms,
        },
    );
    let partition_lease = Duration::from_millis(config.realtime.partition_lease_ms);

    let gateway = match roles.contains(&Role::Gateway) {
        true => Some(Gateway::start(&config, &chat, &name).await?),
        false => None,
    };
    let router = roles.contains(&Role::Router).then(|| {
        Worker::spawn(|stop| {
            let sweeper = tokio::spawn(sweep_presence(chat.clone()));
            let chat = chat.clone();
            let consumer = format!("router-{name}");
            async move {
                chat_router::worker::run(chat, consumer, partition_lease, stop).await;
                sweeper.abort();
            }
        })
    });
    let persistence = roles.contains(&Role::Persistence).then(|| {
        let (store, bus) = (store.store(), bus.clone());
        let options = chat_persistence::worker::WorkerOptions {
            consumer: format!("persist-{name}"),
            partitions: config.realtime.partitions,
            batch: config.realtime.persist_batch,
            lease: partition_lease,
        };
        Worker::spawn(move |stop| chat_persistence::worker::run(store, bus, options, stop))
    });

    let app = match &gateway {
        Some(gateway) => chat_gateway::app(
            gateway.state.clone(),
            HttpLimits {
                max_body_bytes: config.limits.max_body_bytes,
            },
        ),
        None => chat_gateway::ops_app(Dependencies {
            store: store.store(),
            bus: bus.clone(),
        }),
    };
    let address = listener.local_addr()?;
    // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's
    // algorithm and delayed ACKs hold back a frame that follows another by
    // ~40 ms (measured with the load generator, docs/benchmarks.md).
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    tracing::info!(data_dir = %config.data_dir.display(), "listening on http://{address}");
    let (stop_http, mut http_stopped) = watch::channel(false);
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stopped.wait_for(|stop| *stop).await;
            })
            .await
    });

    let lease_lost = tokio::select! {
        () = shutdown_signal() => false,
        // Err means no lease is held (single process): nothing can be lost.
        Ok(_) = fatal_seen.wait_for(|fatal| *fatal) => {
            tracing::error!("lost the worker id lease; stopping before ids could repeat");
            true
        }
    };

    if let Some(gateway) = &gateway {
        tracing::info!("draining: closing connections with 1012");
        gateway
            .hub
            .close_all(close_code::RESTARTING, "server restarting")
            .await;
    }
    let _ = stop_http.send(true);
    wait("HTTP server", http).await;
    if let Some(gateway) = gateway {
        gateway.stop().await;
    }
    if let Some(router) = router {
        router.stop("router").await;
    }
    if let Some(persistence) = persistence {
        persistence.stop("persistence worker").await;
    }
    if let Some(lease) = lease {
        lease.abort();
    }
    tracing::info!("draining: flushing the store");
    store.close().await;
    tracing::info!("stopped");
    // A non-zero exit, so that supervisors (Kubernetes, systemd) restart it.
    anyhow::ensure!(!lease_lost, "stopped after losing the worker id lease");
    Ok(())
}

/// Applies the schema and exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    StoreHandle::migrate(config).await?.close().await;
    tracing::info!("schema is up to date");
    Ok(())
}

/// The in-process bus, or Redis when configured.
async fn open_bus(config: &Config) -> anyhow::Result<Bus> {
    let Some(url) = &config.redis_url else {
        return Ok(Bus::local(config.realtime.stream_capacity));
    };
    let redis = chat_bus::redis::RedisConfig {
        url: url.clone(),
        cluster: config.redis_cluster,
        stream_capacity: config.realtime.stream_capacity,
        ..chat_bus::redis::RedisConfig::default()
    };
    let bus = chat_bus::redis::connect(redis)
        .await
        .context("cannot connect to Redis")?;
    tracing::info!(
        cluster = config.redis_cluster || url.starts_with("redis-cluster://"),
        partitions = config.realtime.partitions,
        "joined the cluster through Redis"
    );
    Ok(bus)
}

/// This process's Snowflake worker id: configured when alone, leased from
/// the cluster otherwise (and renewed; losing the lease sets `fatal`, since
/// another process may then mint the same ids).
async fn worker_id(
    config: &Config,
    bus: &Bus,
    owner: &str,
    fatal: watch::Sender<bool>,
) -> anyhow::Result<(u16, Option<JoinHandle<()>>)> {
    if config.redis_url.is_none() {
        return Ok((config.worker_id, None));
    }
    let id = bus
        .state
        .lease_worker_id(owner, WORKER_LEASE)
        .await
        .context("cannot lease a worker id")?;
    let (state, owner) = (bus.state.clone(), owner.to_owned());
    let renewal = tokio::spawn(async move {
        let mut every = tokio::time::interval(WORKER_LEASE / 3);
        loop {
            every.tick().await;
            match state.renew_worker_id(id, &owner, WORKER_LEASE).await {
                Ok(true) => {}
                Ok(false) => {
                    let _ = fatal.send(true);
                    return;
                }
                Err(error) => tracing::warn!(%error, "worker id lease not renewed; retrying"),
            }
        }
    });
    Ok((id, Some(renewal)))
}

/// The gateway role: WebSocket connections, REST, the reply channel.
struct Gateway {
    state: AppState,
    hub: Arc<Hub>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    async fn start(config: &Config, chat: &Chat, name: &str) -> anyhow::Result<Gateway> {
        let realtime = &config.realtime;
        let bus = chat.bus();
        let secret = secrets::jwt_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
        let relay = Arc::new(Relay::new(
            format!("gw-{name}"),
            bus.clone(),
            Duration::from_millis(realtime.reply_timeout_ms),
            realtime.partitions,
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
        let vouching = tokio::spawn(vouch_for_connections(
            chat.clone(),
            hub.clone(),
            relay.clone(),
        ));
        let files = open_files(config)?;
        let state = AppState {
            chat: chat.clone(),
            tokens: Arc::new(Tokens::hs256(&secret, config.token_ttl_secs)),
            relay,
            hub: hub.clone(),
            ws: Arc::new(WsConfig {
                heartbeat_interval: Duration::from_millis(realtime.heartbeat_interval_ms),
                outbound_queue: realtime.outbound_queue,
                allowed_origins: realtime.allowed_origins.clone(),
            }),
            files: files.clone(),
        };
        let sweeper = tokio::spawn(sweep_files(config, chat, files.objects.clone()));
        Ok(Gateway {
            state,
            hub,
            tasks: vec![dispatcher, vouching, sweeper],
        })
    }

    /// Waits for the connections to be gone, then stops listening.
    async fn stop(self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while self.hub.connections().await > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The object store of uploaded files and the limits on uploads.
fn open_files(config: &Config) -> anyhow::Result<Arc<FileService>> {
    let storage = config.file_storage();
    if config.redis_url.is_some() && matches!(storage, chat_files::Storage::Directory(_)) {
        tracing::warn!(
            "files are stored on this process's disk; in a cluster set files.s3.bucket so that \
             every gateway sees every file"
        );
    }
    let objects = chat_files::Objects::new(storage.open().context("cannot open the file storage")?);
    tracing::info!(storage = %storage.describe(), "file storage ready");
    let files = &config.files;
    Ok(Arc::new(FileService::new(
        objects,
        UploadPolicy {
            max_file_bytes: files.max_file_bytes,
            quota_bytes: files.quota_bytes_per_user,
            uploads_per_minute: files.uploads_per_minute,
            upload_burst: files.upload_burst,
        },
        files.concurrent_uploads,
    )))
}

/// Removes, now and then, the files no message has carried for the grace
/// period. Runs until the gateway stops (each sweep is safe to cut short).
fn sweep_files(
    config: &Config,
    chat: &Chat,
    objects: chat_files::Objects,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    chat_files::sweep::run(
        chat.store().clone(),
        objects,
        Duration::from_secs(config.files.sweep_interval_secs),
        Duration::from_secs(config.files.sweep_grace_secs),
    )
}

/// Keeps this gateway's connections live in the shared presence state, so
/// that if this process dies they expire and their users go offline.
///
/// Refreshes run a bounded number at a time, so that the round trips of
/// many connections fit well within the time to live.
async fn vouch_for_connections(chat: Chat, hub: Arc<Hub>, relay: Arc<Relay>) {
    use futures_util::StreamExt;
    const AT_ONCE: usize = 64;
    let mut every = tokio::time::interval(chat.presence_ttl() / 3);
    loop {
        every.tick().await;
        let connections = hub.connections_snapshot().await;
        futures_util::stream::iter(connections)
            .for_each_concurrent(AT_ONCE, |(user, connection)| {
                let (chat, key) = (&chat, relay.connection_key(connection));
                async move {
                    if let Err(error) = chat.connection_alive(user, &key).await {
                        tracing::warn!(%error, "presence not refreshed");
                    }
                }
            })
            .await;
    }
}

/// Announces offline the users of connections that expired (their gateway
/// died). Every router sweeps; the shared state answers each user once.
async fn sweep_presence(chat: Chat) {
    let mut every = tokio::time::interval(chat.presence_ttl() / 4);
    loop {
        every.tick().await;
        if let Err(error) = chat.expire_presence().await {
            tracing::warn!(%error, "presence sweep failed");
        }
    }
}

/// A background role with a stop signal.
struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    fn spawn<F, Fut>(start: F) -> Worker
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        Worker {
            stop,
            task: tokio::spawn(start(stopped)),
        }
    }

    /// Asks the role to stop (it drains its stream) and waits for it.
    async fn stop(self, what: &str) {
        let _ = self.stop.send(true);
        wait(what, self.task).await;
    }
}

/// Waits for a task of the shutdown sequence, but not forever.
async fn wait<T>(what: &str, task: JoinHandle<T>) {
    match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
        Ok(Ok(_)) => tracing::info!("{what} stopped"),
        Ok(Err(error)) => tracing::error!(%error, "{what} failed"),
        Err(_) => tracing::error!("{what} did not stop in time"),
    }
}

/// A random name for this process's consumers, reply channel and lease.
fn process_name() -> String {
    secrets::random_hex(6)
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
