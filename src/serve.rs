//! `chatd serve | gateway | router | persist` and `chatd migrate`: wiring
//! the roles together.
//!
//! Every command that runs roles does the same ([`Node::start`]): open the
//! store and the bus, take a Snowflake worker id, start the roles it was
//! asked for, each through its crate's start function and answering a
//! [`RoleHandle`], and serve HTTP (the whole API as part of the gateway
//! role, only the operational endpoints otherwise). [`Node::stop`] stops
//! them in the order that loses nothing: close WebSockets with 1012 and
//! finish the HTTP requests in flight, let the router drain the inbound
//! stream, let the persistence worker drain the persist stream, flush the
//! store. [`run`] does both around SIGTERM, or around the failure of a
//! role (a panicked task): then the process stops and exits non-zero.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_bus::Bus;
use chat_gateway::HttpLimits;
use chat_gateway::Tokens;
use chat_gateway::client_addr::TrustedProxies;
use chat_gateway::connections::ConnectionLimits;
use chat_gateway::rest::files::FileService;
use chat_gateway::rest::ops::{Dependencies, OpsDetail};
use chat_gateway::rest::places::{Places, Traffic};
use chat_gateway::rest::upload_pace::MinPace;
use chat_gateway::revocations::Revocations;
use chat_gateway::role::{FileSweep, GatewayOptions};
use chat_gateway::ws::WsConfig;
use chat_protocol::IdGenerator;
use chat_router::audit::{AuditLog, AuditSettings};
use chat_router::files::UploadPolicy;
use chat_router::writer::WriteStage;
use chat_router::{AccountSettings, Chat, Settings};
use chat_shutdown::{RoleHandle, Supervisor};
use tokio::net::TcpListener;

use crate::cli::Role;
use crate::config::Config;
use crate::data_dir::DataDirLock;
use crate::descriptors;
use crate::secrets;
use crate::store::StoreHandle;

/// How long shutdown waits for each role to drain before going on.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a leased worker id lives without renewal.
const WORKER_LEASE: Duration = Duration::from_secs(30);

/// Runs `roles` in this process until SIGTERM or Ctrl-C, or until one of
/// them fails (then with an error, so that the process exits non-zero).
pub async fn run(config: Config, roles: &[Role]) -> anyhow::Result<()> {
    descriptors::raise_open_file_limit();
    let node = Node::start(config, roles).await?;
    tokio::select! {
        () = shutdown_signal() => {}
        reason = node.supervisor().failed() => {
            tracing::error!(%reason, "stopping: a role failed");
        }
    }
    node.stop().await
}

/// The roles of one process, running. Started by [`Node::start`]; stopped
/// by [`Node::stop`], which waits until they have drained.
pub struct Node {
    address: SocketAddr,
    supervisor: Supervisor,
    /// In the order they stop: the gateway first, the operational endpoints
    /// last (they answer probes while the others drain).
    roles: Vec<RoleHandle>,
    /// Renews the leased worker id; stopped once nothing mints ids.
    lease: Option<RoleHandle>,
    /// Writes the audit events queued by every role; flushed before the
    /// store closes.
    audit: AuditLog,
    store: StoreHandle,
    /// Held while the node runs: alone, this process's ids are only unique
    /// if no other process uses the directory.
    _data_dir_lock: Option<DataDirLock>,
}

impl Node {
    /// Opens the store and the bus and starts `roles`, serving HTTP on
    /// `config.listen` (port 0 picks a free one: see [`Node::address`]).
    pub async fn start(config: Config, roles: &[Role]) -> anyhow::Result<Node> {
        anyhow::ensure!(
            config.redis_url.is_some() || roles.len() == 3,
            "a single role ({roles:?}) only makes sense in a cluster: set CHAT_REDIS_URL, \
             or run `chatd serve` for everything in one process"
        );
        secrets::require_for_cluster(config.redis_url.as_deref(), config.jwt_secret.as_deref())?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let data_dir_lock = match config.redis_url {
            None => Some(DataDirLock::acquire(&config.data_dir)?),
            Some(_) => None,
        };
        // Checked before the store is opened (and perhaps migrated) for nothing.
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let ops_listener = match config.ops_listen {
            Some(ops) => Some(
                TcpListener::bind(ops)
                    .await
                    .with_context(|| format!("cannot listen on {ops} (ops_listen)"))?,
            ),
            None => None,
        };
        let ops_address = ops_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let store = StoreHandle::open(&config).await?;
        let bus = open_bus(&config).await?;
        let name = process_name();
        // Everything that can fail before the lease is taken, so that a
        // failed start leaves nothing running.
        let public_ops = match ops_listener {
            Some(_) => OpsDetail::ReadyOnly,
            None => OpsDetail::Full,
        };
        // Read once (the default cap asks the kernel for the open-file
        // limit): every listener of the process gets the same bounds.
        let connections = connection_limits(&config);
        let gateway_options = match roles.contains(&Role::Gateway) {
            true => Some(gateway_options(&config, &name, public_ops, connections)?),
            false => None,
        };
        if let Some(options) = &gateway_options {
            // Loaded before the first request: a restarted gateway refuses
            // every outstanding revocation from the start.
            options
                .tokens
                .revocations()
                .reload(&*store.store())
                .await
                .context("cannot load the revoked sessions")?;
        }
        let supervisor = Supervisor::new();
        let (ids, lease) = worker_id(&config, &bus, &name, &supervisor).await?;
        tracing::info!(worker_id = ids.worker(), process = %name, ?roles, "starting");
        let persist_partitions = config
            .realtime
            .persist_partitions(store.takes_parallel_writers());
        let chat = Chat::new(
            store.store(),
            bus.clone(),
            ids,
            Settings {
                rates: config.rates,
                presence_ttl: Duration::from_millis(config.realtime.presence_ttl_ms),
                presence_max_room_members: config.realtime.presence_max_room_members,
                partitions: config.realtime.partitions,
                persist_partitions,
                write_stage: config.realtime.write_stage,
                rooms: config.rooms,
                hash_queue: config.limits.hash_queue,
            },
        );
        let chat = with_accounts(chat, &config, store.store());
        let partition_lease = Duration::from_millis(config.realtime.partition_lease_ms);
        let read_interval = config.realtime.read_interval(config.redis_url.is_some());

        let mut started = Vec::new();
        let mut listener = Some(listener);
        if let Some(options) = gateway_options {
            let listener = listener.take().context("one listener")?;
            match chat_gateway::role::start(&supervisor, &chat, listener, options).await {
                Ok(gateway) => started.push(gateway),
                Err(error) => {
                    if let Some(lease) = lease {
                        stop(lease).await;
                    }
                    chat.audit_writer().shutdown().await;
                    store.close().await;
                    return Err(anyhow::Error::new(error).context("cannot subscribe to the bus"));
                }
            }
        }
        if roles.contains(&Role::Router) {
            let options = chat_router::worker::RouterOptions {
                consumer: format!("router-{name}"),
                lease: partition_lease,
                read_interval,
            };
            started.push(chat_router::role::start(&supervisor, chat.clone(), options));
        }
        if roles.contains(&Role::Persistence) {
            if config.realtime.write_stage == WriteStage::Router && roles.len() == 1 {
                tracing::info!(
                    "realtime.write_stage is router: the routers write messages; this worker only writes what is left in the persist stream"
                );
            }
            let options = chat_router::writer::WorkerOptions {
                consumer: format!("persist-{name}"),
                partitions: persist_partitions,
                batch: config.realtime.persist_batch,
                lease: partition_lease,
            };
            started.push(chat_router::role::start_writer(
                &supervisor,
                store.store(),
                bus.clone(),
                options,
            ));
        }
        // Served last and stopped last: probes are answered while the
        // other roles drain.
        let dependencies = Dependencies {
            store: store.store(),
            bus: bus.clone(),
        };
        if let Some(listener) = listener {
            started.push(chat_gateway::role::serve_ops(
                &supervisor,
                listener,
                connections,
                dependencies.clone(),
                public_ops,
            ));
        }
        if let Some(ops_listener) = ops_listener {
            started.push(chat_gateway::role::serve_ops(
                &supervisor,
                ops_listener,
                connections,
                dependencies,
                OpsDetail::Full,
            ));
        }
        if let Some(ops) = ops_address {
            tracing::info!("operational endpoints on http://{ops}");
        }
        tracing::info!(
            data_dir = %config.data_dir.display(),
            max_open_connections = connections.max_open,
            "listening on http://{address}"
        );
        Ok(Node {
            address,
            supervisor,
            roles: started,
            lease,
            audit: chat.audit_writer().clone(),
            store,
            _data_dir_lock: data_dir_lock,
        })
    }

    /// Where HTTP is served.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The process's view of its roles' health.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Stops the roles one after the other, each drained before the next
    /// (or given up on after 30 s), then flushes the store. Fails if a role
    /// had failed, so that supervisors (Kubernetes, systemd) restart it.
    pub async fn stop(self) -> anyhow::Result<()> {
        for role in self.roles {
            stop(role).await;
        }
        if let Some(lease) = self.lease {
            stop(lease).await;
        }
        self.audit.shutdown().await;
        tracing::info!("draining: flushing the store");
        self.store.close().await;
        tracing::info!("stopped");
        match self.supervisor.failure() {
            Some(failure) => Err(anyhow::anyhow!("stopped after a failure: {failure}")),
            None => Ok(()),
        }
    }
}

/// Stops one role and waits for it to drain, but not forever.
async fn stop(role: RoleHandle) {
    let name = role.role();
    tracing::info!("draining: stopping the {name} role");
    role.shutdown();
    match tokio::time::timeout(DRAIN_TIMEOUT, role.join()).await {
        Ok(()) => tracing::info!("{name} stopped"),
        Err(_) => tracing::error!("{name} did not stop in time"),
    }
}

/// The bounds on every listener's connections: its caps and deadlines.
fn connection_limits(config: &Config) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_millis(config.limits.header_timeout_ms),
        max_pending: config.limits.max_pending_requests,
        max_open: descriptors::connection_cap(config.limits.max_open_connections),
        send_timeout: Duration::from_millis(config.limits.send_timeout_ms),
        keep_alive_timeout: Duration::from_millis(config.limits.keep_alive_timeout_ms),
    }
}

/// The gateway's settings, its token secret and its file storage;
/// `connections` bounds its listener's connections.
fn gateway_options(
    config: &Config,
    name: &str,
    public_ops: OpsDetail,
    connections: ConnectionLimits,
) -> anyhow::Result<GatewayOptions> {
    let realtime = &config.realtime;
    let secret = secrets::jwt_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
    Ok(GatewayOptions {
        name: name.to_owned(),
        tokens: Arc::new(
            Tokens::hs256(&secret, Arc::new(Revocations::new())).with_issuer_and_audience(
                config.jwt_issuer.as_deref(),
                config.jwt_audience.as_deref(),
            ),
        ),
        revocation_refresh: Duration::from_secs(config.revocation_refresh_secs),
        missed_rooms_check: Duration::from_secs(config.missed_rooms_check_secs),
        proxies: TrustedProxies::parse(&config.trusted_proxies).map_err(anyhow::Error::msg)?,
        ws: WsConfig {
            heartbeat_interval: Duration::from_millis(realtime.heartbeat_interval_ms),
            outbound_queue: realtime.outbound_queue,
            allowed_origins: realtime.allowed_origins.clone(),
            max_connections_per_user: config.limits.max_connections_per_user,
            max_connections: config.limits.max_connections,
            ready_rooms: config.limits.ready_rooms,
            resume_messages: config.limits.resume_messages,
        },
        files: open_files(config)?,
        limits: HttpLimits {
            max_body_bytes: config.limits.max_body_bytes,
            body_idle_timeout: Duration::from_millis(config.limits.body_idle_timeout_ms),
            body_timeout: Duration::from_millis(config.limits.body_timeout_ms),
            connections,
        },
        reply_timeout: Duration::from_millis(realtime.reply_timeout_ms),
        public_ops,
        subscription_buffer: realtime.subscription_buffer,
        file_sweep: FileSweep {
            every: Duration::from_secs(config.files.sweep_interval_secs),
            grace: Duration::from_secs(config.files.sweep_grace_secs),
        },
    })
}

/// The account rules from the configuration and the audit writer.
fn with_accounts(chat: Chat, config: &Config, store: Arc<dyn chat_persistence::Store>) -> Chat {
    let retention = Duration::from_secs(u64::from(config.audit.retention_days) * 24 * 3600);
    let settings = AccountSettings {
        admins: config
            .admins
            .iter()
            .map(|name| name.to_ascii_lowercase())
            .collect(),
        session_ttl: Duration::from_secs(config.token_ttl_secs),
        audit_retention: retention,
    };
    let audit = AuditLog::spawn(
        store,
        AuditSettings {
            queue: config.audit.queue,
            retention,
        },
    );
    chat.with_accounts(settings, audit)
}

/// `chatd admin grant|revoke <username>`: sets the stored admin flag.
pub async fn admin(config: &Config, action: &crate::cli::AdminAction) -> anyhow::Result<()> {
    use crate::cli::AdminAction;
    let (username, admin) = match action {
        AdminAction::Grant { username } => (username, true),
        AdminAction::Revoke { username } => (username, false),
    };
    let store = StoreHandle::open(config).await?;
    let outcome = async {
        let users = store
            .store()
            .users_by_username(std::slice::from_ref(username))
            .await?;
        let user = users
            .first()
            .with_context(|| format!("no user is named {username:?}"))?;
        store.store().set_admin(user.id, admin).await?;
        anyhow::Ok(user.id)
    }
    .await;
    store.close().await;
    let id = outcome?;
    let done = if admin {
        "is now an admin"
    } else {
        "is no longer a stored admin"
    };
    println!("{username} ({id}) {done}");
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
        let mut bus = Bus::local(config.realtime.stream_capacity);
        if !config.scylla.nodes.is_empty() {
            // Other embedded servers may share the keyspace (no lock spans
            // it), each with its own claims: a `client_id` unknown here
            // must still be looked up in the store.
            bus.state = Arc::new(chat_bus::local::LocalState::beside_others());
        }
        return Ok(bus);
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
/// the cluster otherwise, and renewed by a task of its own; losing the
/// lease fails the process, since another process may then mint the same
/// ids: minting stops at once (sends are refused `unavailable`), before the
/// drain, not when the process exits.
async fn worker_id(
    config: &Config,
    bus: &Bus,
    owner: &str,
    supervisor: &Supervisor,
) -> anyhow::Result<(Arc<IdGenerator>, Option<RoleHandle>)> {
    if config.redis_url.is_none() {
        return Ok((Arc::new(IdGenerator::new(config.worker_id)), None));
    }
    let id = bus
        .state
        .lease_worker_id(owner, WORKER_LEASE)
        .await
        .context("cannot lease a worker id")?;
    let ids = Arc::new(IdGenerator::new(id));
    let (state, owner) = (bus.state.clone(), owner.to_owned());
    let renewer = supervisor.role("worker id lease");
    let minting = ids.clone();
    let on_loss = supervisor.clone();
    renewer.spawn_until_stopped("renewal", async move {
        let mut every = tokio::time::interval(WORKER_LEASE / 3);
        loop {
            every.tick().await;
            match state.renew_worker_id(id, &owner, WORKER_LEASE).await {
                Ok(true) => {}
                Ok(false) => {
                    minting.revoke();
                    on_loss.fail("lost the worker id lease; stopping before ids could repeat");
                    return;
                }
                Err(error) => tracing::warn!(%error, "worker id lease not renewed; retrying"),
            }
        }
    });
    Ok((ids, Some(renewer)))
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
    let objects = storage.open().context("cannot open the file storage")?;
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
        Places::new(
            Traffic::Uploads,
            files.concurrent_uploads,
            files.concurrent_uploads_per_user,
            // A waiting upload's body is not read: it waits no longer
            // than a stalled body would.
            Duration::from_millis(config.limits.body_idle_timeout_ms),
        ),
        MinPace {
            // As long as a whole JSON body gets.
            head_start: Duration::from_millis(config.limits.body_timeout_ms),
            bytes_per_second: files.min_upload_bytes_per_second,
        },
        Places::new(
            Traffic::Downloads,
            files.concurrent_downloads,
            files.concurrent_downloads_per_user,
            // As long as an upload waits.
            Duration::from_millis(config.limits.body_idle_timeout_ms),
        ),
    )))
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
