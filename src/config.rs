//! The configuration: defaults, then a TOML file, then `CHAT_*` environment
//! variables, then command-line flags.
//!
//! figment does the layering (it is the maintained, well-documented choice
//! for "file + env + defaults" and reports which layer a bad value came
//! from). Unknown keys in the file are errors, so typos do not pass
//! silently; unrelated `CHAT_*` variables (such as test settings) are
//! ignored by only reading the variables of known keys.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chat_persistence::scylla::{self, ScyllaOptions};
use chat_router::writer::WriteStage;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::cli::Cli;

/// Every setting of `chatd`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where HTTP and WebSocket are served.
    pub listen: SocketAddr,
    /// When set, `/healthz`, `/readyz` (with details) and `/metrics` are
    /// served here, and `listen` keeps only `/healthz` and a `/readyz` that
    /// says ready or not ready (no `/metrics`).
    pub ops_listen: Option<SocketAddr>,
    /// Holds the embedded database and the generated JWT secret.
    pub data_dir: PathBuf,
    /// HS256 secret for access tokens. When empty, one is generated and
    /// kept in `<data_dir>/jwt_secret`.
    pub jwt_secret: Option<String>,
    /// When set, tokens are issued with this `iss` and only tokens naming
    /// it are accepted.
    pub jwt_issuer: Option<String>,
    /// When set, tokens are issued with this `aud` and only tokens naming
    /// it are accepted.
    pub jwt_audience: Option<String>,
    /// How long an access token is valid, in seconds.
    pub token_ttl_secs: u64,
    /// Snowflake worker id of this process (0–1023), unique among live
    /// processes that mint ids. In a cluster (with `redis_url`) ids are
    /// leased from Redis instead and this is ignored.
    pub worker_id: u16,
    /// Redis to join a cluster through (`redis://host:port`); without it,
    /// `serve` runs alone on the in-process bus.
    pub redis_url: Option<String>,
    /// Whether `redis_url` points at a Redis Cluster (sharded pub/sub).
    pub redis_cluster: bool,
    /// `auto` (readable on a terminal, JSON otherwise), `pretty` or `json`.
    pub log_format: LogFormat,
    /// Worker threads of the async runtime; 0 means tokio's default (one
    /// per CPU the process may use, or `TOKIO_WORKER_THREADS`). A process
    /// given one core does best with one thread: no work stealing, no
    /// wake-ups across threads (docs/operations.md, "Threads").
    pub runtime_threads: usize,
    pub limits: Limits,
    /// How fast a user may send and type.
    pub rates: chat_router::RateLimits,
    /// How many members a room may have (v1.1 `max_members`).
    pub rooms: chat_router::RoomLimits,
    pub realtime: RealtimeConfig,
    pub sqlite: SqliteConfig,
    pub scylla: ScyllaConfig,
    pub files: FilesConfig,
    /// Usernames of the admins (besides those granted with `chatd admin
    /// grant`): they may send notices, ban and read the audit log.
    pub admins: Vec<String>,
    /// Proxies (addresses or networks, `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client in the audit log; from anyone
    /// else the socket's peer address is recorded.
    pub trusted_proxies: Vec<String>,
    /// How often each gateway reloads the revoked sessions from the store,
    /// in seconds: the longest a revocation whose bus announcement was lost
    /// goes unnoticed.
    pub revocation_refresh_secs: u64,
    pub audit: AuditConfig,
}

/// The audit log of account and moderation events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How long events are kept, in days.
    pub retention_days: u32,
    /// Events waiting to be written per process; beyond it they are
    /// dropped (and counted in `chat_audit_dropped_total`).
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            retention_days: 90,
            queue: 10_000,
        }
    }
}

/// Uploaded files: where their bytes go and the limits on uploads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Directory of the files' bytes when no S3 bucket is set; relative
    /// paths are inside `data_dir`.
    pub dir: PathBuf,
    /// Largest file, in bytes; larger uploads get 413 while streaming.
    pub max_file_bytes: u64,
    /// Most bytes of files one user may have stored.
    pub quota_bytes_per_user: u64,
    /// Sustained uploads per minute per user.
    pub uploads_per_minute: u32,
    /// Uploads a user may make in a burst.
    pub upload_burst: u32,
    /// Uploads streaming at once per gateway; more wait their turn.
    pub concurrent_uploads: usize,
    /// How often each gateway sweeps unused files.
    pub sweep_interval_secs: u64,
    /// How long a file no message carries (never sent, or its message
    /// deleted) is kept before the sweep removes it.
    pub sweep_grace_secs: u64,
    /// An S3-compatible bucket (required in a cluster: gateways keep no
    /// files on their disks). Empty fields fall back to `AWS_*` variables.
    pub s3: chat_files::S3Settings,
}

impl Default for FilesConfig {
    fn default() -> FilesConfig {
        FilesConfig {
            dir: PathBuf::from("files"),
            max_file_bytes: 25 * 1024 * 1024,
            quota_bytes_per_user: 1024 * 1024 * 1024,
            uploads_per_minute: 30,
            upload_burst: 10,
            concurrent_uploads: 16,
            sweep_interval_secs: 600,
            sweep_grace_secs: 24 * 60 * 60,
            s3: chat_files::S3Settings::default(),
        }
    }
}

/// WebSocket connections and the message pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// How often the server pings each connection; a connection silent for
    /// two intervals is closed.
    pub heartbeat_interval_ms: u64,
    /// Frames waiting to be written to one connection; a connection whose
    /// queue overflows is closed with 4003. At least `persist_batch`, since
    /// a batch fans out to a connection back to back.
    pub outbound_queue: usize,
    /// Browser origins allowed to connect besides the server's own; "*"
    /// allows any.
    pub allowed_origins: Vec<String>,
    /// How long a REST post waits for the router and persistence.
    pub reply_timeout_ms: u64,
    /// Most entries waiting in each work stream; senders wait beyond it.
    pub stream_capacity: usize,
    /// Most bus deliveries waiting for this gateway's dispatcher.
    pub subscription_buffer: usize,
    /// Most entries of the persist stream (each a router's batch of
    /// messages) a persistence worker reads from each partition at once;
    /// what one read brings is written in one store call.
    pub persist_batch: usize,
    /// Least time between two reads of a router while entries keep coming.
    /// 0 reads again as soon as a read is handled; a few milliseconds
    /// gather bigger batches (fewer Redis commands, store transactions and
    /// wake-ups per message) for up to that much latency. Unset: see
    /// [`RealtimeConfig::read_interval`]. The persistence workers never
    /// wait: what they read is already a router's batch.
    pub read_interval_ms: Option<u64>,
    /// How many partitions the work streams are split in (rooms are spread
    /// over them by a hash of their id; each is handled by one router and
    /// one persistence worker at a time). Every process must agree.
    pub partitions: u16,
    /// How many partitions the persist stream (routers to persistence
    /// workers) is split in, each written by one worker at a time; rooms
    /// are spread over them by the same hash. Unset: see
    /// [`RealtimeConfig::persist_partitions`]. Every process must agree.
    pub persist_partitions: Option<u16>,
    /// Where accepted messages are written, then published and answered:
    /// by the persistence workers through the persist stream (`persist`),
    /// or by the router that accepted them, in the same read (`router`).
    /// Every process must agree.
    pub write_stage: WriteStage,
    /// How long a router's or persistence worker's hold on a partition
    /// lives unless renewed (every third of it): how long a dead process's
    /// partitions wait before the survivors take them.
    pub partition_lease_ms: u64,
    /// A connection counts as live this long after its gateway last
    /// vouched for it; a crashed gateway's users go offline within it.
    pub presence_ttl_ms: u64,
    /// Presence events go to rooms of at most this many members; larger
    /// rooms get none (their members read `online` from the member list).
    /// Without it, a room of n members costs n² deliveries each time all of
    /// them connect.
    pub presence_max_room_members: u32,
}

/// A router's read interval when `realtime.read_interval_ms` is unset and
/// the bus is Redis: a read there is a round trip and several commands.
/// At 1,000 messages a second, 10 ms cost a cluster about 15 % less CPU
/// and 0.45 fewer Redis commands per message than 5 ms, for about 4 ms
/// more at the median and 6 ms at p99 (still under 20 ms), and 5 ms about
/// 40 % less CPU than reading at once (docs/benchmarks.md). A router with
/// nothing to read is not held back: the wait counts from its previous
/// read, so a message that comes after a quiet spell is read at once.
const REDIS_READ_INTERVAL_MS: u64 = 10;

impl RealtimeConfig {
    /// How many partitions the persist stream has: `persist_partitions` if
    /// set, else as many as the work streams when the store takes parallel
    /// writers (ScyllaDB), and one when it takes one writer at a time
    /// (SQLite: more partitions would only split a router's read into more
    /// appends, reads and answers).
    pub fn persist_partitions(&self, parallel_writers: bool) -> u16 {
        let default = if parallel_writers { self.partitions } else { 1 };
        self.persist_partitions.unwrap_or(default)
    }

    /// The least time between two reads of a router: `read_interval_ms`
    /// if set, else [`REDIS_READ_INTERVAL_MS`] on Redis and none with the
    /// in-process bus, where a read costs next to nothing.
    pub fn read_interval(&self, redis: bool) -> Duration {
        let default = if redis { REDIS_READ_INTERVAL_MS } else { 0 };
        Duration::from_millis(self.read_interval_ms.unwrap_or(default))
    }
}

impl Default for RealtimeConfig {
    fn default() -> RealtimeConfig {
        RealtimeConfig {
            heartbeat_interval_ms: 25_000,
            outbound_queue: 1024,
            allowed_origins: Vec::new(),
            reply_timeout_ms: 10_000,
            stream_capacity: 10_000,
            subscription_buffer: 65_536,
            persist_batch: 256,
            read_interval_ms: None,
            partitions: chat_bus::partitions::DEFAULT_PARTITIONS,
            persist_partitions: None,
            write_stage: WriteStage::Persist,
            partition_lease_ms: 10_000,
            presence_ttl_ms: 30_000,
            presence_max_room_members: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Auto,
    Pretty,
    Json,
}

/// Bounds on what clients can make the server hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest REST request body, in bytes.
    pub max_body_bytes: usize,
    /// Most WebSocket connections of one user per gateway; more upgrades
    /// are refused with 429.
    pub max_connections_per_user: usize,
    /// Most WebSocket connections per gateway; more upgrades are refused
    /// with 429.
    pub max_connections: usize,
    /// How long a new connection may take to send its request headers,
    /// in milliseconds; slower ones are closed.
    pub header_timeout_ms: u64,
    /// Most connections per gateway still sending their first request's
    /// headers; more are closed at once.
    pub max_pending_requests: usize,
    /// Password hashing jobs (register, login, password change) that may
    /// wait for a hashing thread, per process; more are refused with 503
    /// and `Retry-After`.
    pub hash_queue: usize,
    /// Most rooms listed in a `ready` frame; a user with more gets
    /// `rooms_truncated: true` and pages the rest with `GET /rooms`.
    pub ready_rooms: usize,
    /// Most messages one `resume` replays over all its rooms; rooms cut
    /// short answer `complete: false`.
    pub resume_messages: u32,
}

/// Tuning of the embedded SQLite store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// Database file; relative paths are inside `data_dir`.
    pub path: PathBuf,
    /// Connections that serve reads in parallel.
    pub read_pool_size: u32,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Most writes waiting for the writer; callers wait beyond it.
    pub queue_capacity: usize,
    /// `full` (default: acked messages survive a power loss) or `normal`
    /// (no fsync per commit: a power loss or OS crash can lose acked
    /// messages).
    pub synchronous: chat_persistence::sqlite::Synchronous,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            ops_listen: None,
            data_dir: PathBuf::from("./data"),
            jwt_secret: None,
            jwt_issuer: None,
            jwt_audience: None,
            token_ttl_secs: 24 * 60 * 60,
            worker_id: 0,
            redis_url: None,
            redis_cluster: false,
            log_format: LogFormat::Auto,
            runtime_threads: 0,
            limits: Limits::default(),
            rates: chat_router::RateLimits::default(),
            rooms: chat_router::RoomLimits::default(),
            realtime: RealtimeConfig::default(),
            sqlite: SqliteConfig::default(),
            scylla: ScyllaConfig::default(),
            files: FilesConfig::default(),
            admins: Vec::new(),
            trusted_proxies: Vec::new(),
            revocation_refresh_secs: 30,
            audit: AuditConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 64 * 1024,
            max_connections_per_user: 10,
            max_connections: 100_000,
            header_timeout_ms: 10_000,
            max_pending_requests: 1024,
            hash_queue: chat_router::password::DEFAULT_QUEUE,
            ready_rooms: 1000,
            resume_messages: 5000,
        }
    }
}

impl Default for SqliteConfig {
    fn default() -> SqliteConfig {
        SqliteConfig {
            path: PathBuf::from("chat.db"),
            read_pool_size: 4,
            max_batch: 256,
            queue_capacity: 4096,
            synchronous: chat_persistence::sqlite::Synchronous::Full,
        }
    }
}

/// The ScyllaDB store, used instead of SQLite when `nodes` is not empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`; empty means the embedded SQLite store.
    /// `CHAT_SCYLLA_NODES` takes them comma-separated.
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// `NetworkTopologyStrategy` (default) or `SimpleStrategy`, for
    /// creating the keyspace.
    pub replication_strategy: String,
    /// Copies of every row (per data centre with `NetworkTopologyStrategy`
    /// and no `datacenters`); 3 by default.
    pub replication_factor: u32,
    /// Accept a replication factor of 1 (tests, single-node trials);
    /// refused otherwise, since one copy loses acked messages with a node.
    pub allow_replication_factor_one: bool,
    /// Username for ScyllaDB's PasswordAuthenticator (with `password`).
    pub username: Option<String>,
    /// Password of `username`; never printed or logged.
    pub password: Option<String>,
    /// Connect to every node over TLS (rustls). Node certificates must
    /// name the nodes' IP addresses.
    pub tls: bool,
    /// PEM bundle of the authorities that signed the nodes' certificates;
    /// unset: the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM certificate chain and key of this client, for clusters that
    /// require client certificates (both or neither).
    pub tls_client_cert_file: Option<PathBuf>,
    pub tls_client_key_file: Option<PathBuf>,
    /// Copies per data centre with `NetworkTopologyStrategy` (when empty,
    /// `replication_factor` in every data centre).
    pub datacenters: BTreeMap<String, u32>,
    /// The data centre whose nodes coordinate this process's requests.
    pub local_datacenter: Option<String>,
    /// Whether a new keyspace uses tablets (unset: the server's default).
    /// The store needs lightweight transactions, which some ScyllaDB
    /// versions do not support on tablets: set `false` there.
    pub tablets: Option<bool>,
    /// Hours per message partition of rooms created from now on (each room
    /// keeps the window it was created with). Hours, not days, so that a
    /// deployment with busy rooms can keep their partitions small (at
    /// ~90 msg/s a 1-hour window holds ~100 MB).
    pub bucket_hours: u32,
    /// Of reads and writes: `local_quorum`, `quorum`, `one`, ...
    pub consistency: String,
    /// Of lightweight transactions: `local_serial` or `serial`.
    pub serial_consistency: String,
    /// Whether starting creates missing tables (`chatd migrate` always does).
    pub create_schema: bool,
}

impl Default for ScyllaConfig {
    fn default() -> ScyllaConfig {
        ScyllaConfig {
            nodes: Vec::new(),
            keyspace: "chat".into(),
            replication_strategy: "NetworkTopologyStrategy".into(),
            replication_factor: scylla::DEFAULT_REPLICATION_FACTOR,
            allow_replication_factor_one: false,
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
            datacenters: BTreeMap::new(),
            local_datacenter: None,
            tablets: None,
            bucket_hours: 240,
            consistency: "local_quorum".into(),
            serial_consistency: "local_serial".into(),
            create_schema: true,
        }
    }
}

impl ScyllaConfig {
    /// The store's options, or `None` when no node is configured.
    pub fn options(&self) -> anyhow::Result<Option<ScyllaOptions>> {
        if self.nodes.is_empty() {
            return Ok(None);
        }
        let consistency =
            scylla::parse_consistency(&self.consistency).map_err(anyhow::Error::msg)?;
        let options = ScyllaOptions {
            nodes: self.nodes.clone(),
            keyspace: self.keyspace.clone(),
            replication: scylla::Replication::from_settings(
                &self.replication_strategy,
                self.replication_factor,
                &self.datacenters,
            )
            .map_err(anyhow::Error::msg)?,
            bucket_window: Duration::from_secs(u64::from(self.bucket_hours) * 60 * 60),
            read_consistency: consistency,
            write_consistency: consistency,
            serial_consistency: scylla::parse_serial_consistency(&self.serial_consistency)
                .map_err(anyhow::Error::msg)?,
            allow_replication_factor_one: self.allow_replication_factor_one,
            credentials: self.credentials()?,
            tls: self.tls.then(|| scylla::TlsOptions {
                ca_file: self.tls_ca_file.clone(),
                client_cert_file: self.tls_client_cert_file.clone(),
                client_key_file: self.tls_client_key_file.clone(),
            }),
            local_datacenter: self.local_datacenter.clone(),
            tablets: self.tablets,
            ..ScyllaOptions::default()
        };
        options.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(options))
    }

    /// The username and password, both or neither.
    fn credentials(&self) -> anyhow::Result<Option<scylla::ScyllaCredentials>> {
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => {
                Ok(Some(scylla::ScyllaCredentials::new(username, password)))
            }
            (None, None) => Ok(None),
            _ => anyhow::bail!("scylla.username and scylla.password go together"),
        }
    }
}

/// Most runtime worker threads `runtime_threads` may ask for: far more than
/// any core count, few enough that a typo does not exhaust the process.
pub const MAX_RUNTIME_THREADS: usize = 1024;

/// The top-level keys, which are the only `CHAT_*` variables read.
const KEYS: &[&str] = &[
    "listen",
    "ops_listen",
    "data_dir",
    "jwt_secret",
    "jwt_issuer",
    "jwt_audience",
    "token_ttl_secs",
    "worker_id",
    "redis_url",
    "redis_cluster",
    "log_format",
    "runtime_threads",
    "limits",
    "rates",
    "rooms",
    "realtime",
    "sqlite",
    "scylla",
    "files",
    "admins",
    "trusted_proxies",
    "revocation_refresh_secs",
    "audit",
];

/// `CHAT_*` variables that are not settings of the server but are read
/// elsewhere: the config file's path, the ScyllaDB shorthands, the terminal
/// client's password, and the test suites' own.
const OTHER_VARIABLES: &[&str] = &[
    "CHAT_CONFIG",
    "CHAT_SCYLLA_NODES",
    "CHAT_SCYLLA_KEYSPACE",
    "CHAT_SCYLLA_CONSISTENCY",
    "CHAT_PASSWORD",
];

/// Settings whose values are never repeated in an error message.
const SECRET_KEYS: &[&str] = &["jwt_secret", "redis_url", "scylla.password"];

/// A configuration error as the user would look for it: the variable and
/// its value (`CHAT_LISTEN="notanaddress"`), or the key and the file,
/// without figment's profile name in front.
fn explain(errors: figment::Error) -> anyhow::Error {
    let explained: Vec<String> = errors
        .into_iter()
        .map(|error| {
            let key = error.path.join(".").to_lowercase();
            let what = match &error.kind {
                figment::error::Kind::UnknownField(field, expected) => format!(
                    "unknown key `{field}`; the keys here are {}",
                    expected.join(", ")
                ),
                kind => kind.to_string(),
            };
            let metadata = error.metadata.as_ref();
            if metadata.is_some_and(|metadata| metadata.name.contains("environment")) {
                let variable = format!("CHAT_{}", key.replace('.', "__").to_uppercase());
                let secret = SECRET_KEYS.iter().any(|secret| key.starts_with(secret));
                match std::env::var(&variable) {
                    Ok(value) if !secret => format!("{variable}={value:?}: {what}"),
                    _ => format!("{variable}: {what}"),
                }
            } else if let Some(figment::Source::File(path)) =
                metadata.and_then(|metadata| metadata.source.as_ref())
            {
                format!("`{key}` in {}: {what}", path.display())
            } else {
                format!("`{key}`: {what}")
            }
        })
        .collect();
    anyhow::anyhow!("{}", explained.join("; "))
}

/// Says which `CHAT_*` variables are neither a setting nor read elsewhere:
/// most likely a typo, which would otherwise pass silently. Only a warning,
/// since the same shell may hold variables of other tools.
fn warn_about_unknown_variables(variables: impl Iterator<Item = (String, String)>) {
    for name in unknown_variables(variables.map(|(name, _)| name)) {
        let hint = closest_setting(&name)
            .map(|known| format!("; did you mean CHAT_{}?", known.to_uppercase()))
            .unwrap_or_default();
        eprintln!("chatd: warning: {name} is not a setting and is ignored{hint}");
    }
}

/// The `CHAT_*` names among `names` that nothing reads.
fn unknown_variables(names: impl Iterator<Item = String>) -> Vec<String> {
    names
        .filter(|name| {
            let Some(key) = name.strip_prefix("CHAT_") else {
                return false;
            };
            let top = key.split("__").next().unwrap_or_default();
            !KEYS.iter().any(|known| known.eq_ignore_ascii_case(top))
                && !OTHER_VARIABLES.contains(&name.as_str())
                && !name.starts_with("CHAT_TEST_")
        })
        .collect()
}

/// The top-level key within two edits of `variable`'s, if any.
fn closest_setting(variable: &str) -> Option<&'static str> {
    let typed = variable
        .strip_prefix("CHAT_")?
        .split("__")
        .next()?
        .to_lowercase();
    KEYS.iter()
        .map(|known| (edit_distance(&typed, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance, for the typo hint.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

impl Config {
    /// The configuration for this command line.
    pub fn load(cli: &Cli) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &cli.config {
            anyhow::ensure!(
                path.exists(),
                "config file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("CHAT_").split("__").filter(|key| {
            // Keys arrive with the prefix stripped and `__` turned
            // into `.`, but in their original case.
            // The secret is read verbatim below: parsed as a TOML value, an
            // all-digit secret would become a number.
            let top = key.as_str().split('.').next().unwrap_or_default();
            KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
                && !top.eq_ignore_ascii_case("jwt_secret")
        }));
        if let Some(listen) = cli.listen() {
            figment = figment.merge(("listen", listen));
        }
        if let Some(dir) = cli.data_dir() {
            figment = figment.merge(("data_dir", dir));
        }
        let mut config: Config = figment.extract().map_err(explain)?;
        warn_about_unknown_variables(std::env::vars());
        if let Ok(secret) = std::env::var("CHAT_JWT_SECRET") {
            config.jwt_secret = Some(secret);
        }
        if config.jwt_secret.as_deref() == Some("") {
            config.jwt_secret = None;
        }
        // The Scylla switches by their plain names too (CHAT_SCYLLA__NODES
        // wants a TOML array; this one takes a comma-separated list).
        if let Ok(nodes) = std::env::var("CHAT_SCYLLA_NODES") {
            config.scylla.nodes = nodes
                .split(',')
                .map(str::trim)
                .filter(|node| !node.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Ok(keyspace) = std::env::var("CHAT_SCYLLA_KEYSPACE") {
            config.scylla.keyspace = keyspace;
        }
        if let Ok(consistency) = std::env::var("CHAT_SCYLLA_CONSISTENCY") {
            config.scylla.consistency = consistency;
        }
        config.validate()?;
        Ok(config)
    }

    /// Refuses values that would break the service at run time.
    fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(
            self.worker_id <= chat_protocol::id::MAX_WORKER_ID,
            "worker_id must be 0 to {}",
            chat_protocol::id::MAX_WORKER_ID
        );
        ensure!(self.token_ttl_secs > 0, "token_ttl_secs must be positive");
        ensure!(
            self.runtime_threads <= MAX_RUNTIME_THREADS,
            "runtime_threads must be 0 (one per CPU) to {MAX_RUNTIME_THREADS}"
        );
        // The ScyllaDB store finds outstanding revocations by expiry day, up
        // to this many days ahead.
        let max_days = chat_persistence::scylla::REVOCATION_DAYS;
        ensure!(
            self.token_ttl_secs <= max_days * 24 * 3600,
            "token_ttl_secs must be at most {max_days} days"
        );
        ensure!(
            self.revocation_refresh_secs >= 1,
            "revocation_refresh_secs must be at least 1"
        );
        ensure!(
            self.audit.retention_days >= 1,
            "audit.retention_days must be at least 1"
        );
        ensure!(self.audit.queue >= 1, "audit.queue must be at least 1");
        chat_gateway::client_addr::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(anyhow::Error::msg)?;
        ensure!(
            self.limits.max_body_bytes >= 1024,
            "limits.max_body_bytes must be at least 1024"
        );
        ensure!(
            self.sqlite.read_pool_size >= 1,
            "sqlite.read_pool_size must be at least 1"
        );
        ensure!(
            self.sqlite.max_batch >= 1,
            "sqlite.max_batch must be at least 1"
        );
        ensure!(
            self.sqlite.queue_capacity >= 1,
            "sqlite.queue_capacity must be at least 1"
        );
        ensure!(
            self.limits.max_connections_per_user >= 1 && self.limits.max_connections >= 1,
            "limits.max_connections_per_user and limits.max_connections must be at least 1"
        );
        ensure!(
            self.limits.header_timeout_ms >= 100 && self.limits.max_pending_requests >= 1,
            "limits.header_timeout_ms must be at least 100 and limits.max_pending_requests at least 1"
        );
        ensure!(
            self.limits.hash_queue >= 1
                && self.limits.ready_rooms >= 1
                && self.limits.resume_messages >= 1,
            "limits.hash_queue, limits.ready_rooms and limits.resume_messages must be at least 1"
        );
        ensure!(
            self.ops_listen
                .is_none_or(|ops| ops != self.listen || ops.port() == 0),
            "ops_listen must differ from listen"
        );
        let rates = &self.rates;
        ensure!(
            rates.send_per_second > 0.0 && rates.send_per_second.is_finite(),
            "rates.send_per_second must be a positive number"
        );
        ensure!(rates.send_burst >= 1, "rates.send_burst must be at least 1");
        ensure!(
            rates.typing_interval_ms >= 1,
            "rates.typing_interval_ms must be at least 1"
        );
        let rooms = &self.rooms;
        ensure!(
            rooms.max_members_cap >= chat_router::room_size::MIN_MAX_MEMBERS,
            "rooms.max_members_cap must be at least {}",
            chat_router::room_size::MIN_MAX_MEMBERS
        );
        ensure!(
            (chat_router::room_size::MIN_MAX_MEMBERS..=rooms.max_members_cap)
                .contains(&rooms.default_max_members),
            "rooms.default_max_members must be {} to rooms.max_members_cap",
            chat_router::room_size::MIN_MAX_MEMBERS
        );
        ensure!(
            rates.actions_per_second > 0.0 && rates.actions_per_second.is_finite(),
            "rates.actions_per_second must be a positive number"
        );
        ensure!(
            rates.action_burst >= 1,
            "rates.action_burst must be at least 1"
        );
        ensure!(
            rates.login_per_address_per_minute >= 1 && rates.login_per_username_per_minute >= 1,
            "rates.login_per_address_per_minute and rates.login_per_username_per_minute \
             must be at least 1"
        );
        ensure!(
            rates.rooms_created_per_hour >= 1 && rates.members_added_per_minute >= 1,
            "rates.rooms_created_per_hour and rates.members_added_per_minute must be at least 1"
        );
        ensure!(
            (1..=chat_protocol::limits::MAX_INITIAL_MEMBERS as u32)
                .contains(&rooms.members_per_call),
            "rooms.members_per_call must be 1 to {}",
            chat_protocol::limits::MAX_INITIAL_MEMBERS
        );
        // One call's members are charged at once, all or none: a call
        // bigger than the bucket could never pass.
        ensure!(
            rooms.members_per_call <= rates.members_added_per_minute,
            "rooms.members_per_call must not exceed rates.members_added_per_minute"
        );
        let realtime = &self.realtime;
        ensure!(
            realtime.heartbeat_interval_ms >= 100,
            "realtime.heartbeat_interval_ms must be at least 100"
        );
        ensure!(
            realtime.persist_batch >= 1,
            "realtime.persist_batch must be at least 1"
        );
        ensure!(
            realtime.read_interval_ms.unwrap_or(0) <= 1000,
            "realtime.read_interval_ms must be at most 1000: it is added to every message's latency"
        );
        ensure!(
            realtime.outbound_queue >= realtime.persist_batch,
            "realtime.outbound_queue must be at least realtime.persist_batch: a batch fans out to \
             a connection back to back, and a smaller queue would cut off healthy clients"
        );
        ensure!(
            realtime.reply_timeout_ms >= 100,
            "realtime.reply_timeout_ms must be at least 100"
        );
        ensure!(
            realtime.stream_capacity >= 1,
            "realtime.stream_capacity must be at least 1"
        );
        ensure!(
            realtime.subscription_buffer >= 1,
            "realtime.subscription_buffer must be at least 1"
        );
        ensure!(
            (1..=chat_bus::partitions::MAX_PARTITIONS).contains(&realtime.partitions),
            "realtime.partitions must be 1 to {}",
            chat_bus::partitions::MAX_PARTITIONS
        );
        ensure!(
            realtime
                .persist_partitions
                .is_none_or(|n| (1..=chat_bus::partitions::MAX_PARTITIONS).contains(&n)),
            "realtime.persist_partitions must be 1 to {}",
            chat_bus::partitions::MAX_PARTITIONS
        );
        ensure!(
            realtime.partition_lease_ms >= 300,
            "realtime.partition_lease_ms must be at least 300"
        );
        ensure!(
            realtime.presence_ttl_ms >= 300,
            "realtime.presence_ttl_ms must be at least 300"
        );
        self.scylla
            .options()
            .context("invalid scylla configuration")?;
        let files = &self.files;
        ensure!(
            files.max_file_bytes >= 1,
            "files.max_file_bytes must be at least 1"
        );
        ensure!(
            files.uploads_per_minute >= 1 && files.upload_burst >= 1,
            "files.uploads_per_minute and files.upload_burst must be at least 1"
        );
        ensure!(
            files.concurrent_uploads >= 1,
            "files.concurrent_uploads must be at least 1"
        );
        ensure!(
            files.sweep_interval_secs >= 1,
            "files.sweep_interval_secs must be at least 1"
        );
        ensure!(
            [&self.jwt_issuer, &self.jwt_audience]
                .iter()
                .all(|value| value.as_deref().is_none_or(|v| !v.trim().is_empty())),
            "jwt_issuer and jwt_audience may not be empty; leave them out to check neither"
        );
        ensure!(
            self.redis_url
                .as_deref()
                .is_none_or(|url| !url.trim().is_empty()),
            "redis_url is empty; leave it out to run without Redis"
        );
        Ok(())
    }

    /// The SQLite database file.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join(&self.sqlite.path)
    }

    /// Where the bytes of uploaded files are kept.
    pub fn file_storage(&self) -> chat_files::Storage {
        if self.files.s3.bucket.is_empty() {
            chat_files::Storage::Directory(self.data_dir.join(&self.files.dir))
        } else {
            chat_files::Storage::S3(self.files.s3.clone())
        }
    }

    /// Prints the configuration as TOML, with the secrets redacted.
    pub fn print(&self) -> anyhow::Result<()> {
        let mut shown = self.clone();
        if shown.jwt_secret.is_some() {
            shown.jwt_secret = Some("<redacted>".into());
        }
        shown.redis_url = shown.redis_url.as_deref().map(crate::secrets::redact_url);
        if !shown.files.s3.secret_access_key.is_empty() {
            shown.files.s3.secret_access_key = "<redacted>".into();
        }
        if shown.scylla.password.is_some() {
            shown.scylla.password = Some("<redacted>".into());
        }
        print!(
            "{}",
            toml::to_string(&shown).context("cannot print the configuration")?
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistyped_variables_are_found_with_a_hint() {
        let names = [
            "CHAT_LISTEN",
            "CHAT_LISTN",
            "CHAT_REALTIME__OUTBOUND_QUEUE",
            "CHAT_CONFIG",
            "CHAT_PASSWORD",
            "CHAT_TEST_SCYLLA_NODES",
            "CHAT_DATADIR",
            "PATH",
        ];
        let unknown = unknown_variables(names.iter().map(|name| name.to_string()));
        assert_eq!(unknown, ["CHAT_LISTN", "CHAT_DATADIR"]);
        assert_eq!(closest_setting("CHAT_LISTN"), Some("listen"));
        assert_eq!(closest_setting("CHAT_DATADIR"), Some("data_dir"));
        assert_eq!(closest_setting("CHAT_SOMETHING_ELSE"), None);
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn routers_wait_between_reads_on_redis_unless_told_otherwise() {
        let mut realtime = RealtimeConfig::default();
        assert_eq!(realtime.read_interval(false), Duration::ZERO);
        assert_eq!(
            realtime.read_interval(true),
            Duration::from_millis(REDIS_READ_INTERVAL_MS)
        );
        realtime.read_interval_ms = Some(0);
        assert_eq!(realtime.read_interval(true), Duration::ZERO);
        realtime.read_interval_ms = Some(12);
        assert_eq!(realtime.read_interval(false), Duration::from_millis(12));
    }

    #[test]
    fn sqlite_takes_one_persist_partition_and_scylla_one_per_work_partition() {
        let mut realtime = RealtimeConfig {
            partitions: 32,
            ..RealtimeConfig::default()
        };
        assert_eq!(realtime.persist_partitions(false), 1);
        assert_eq!(realtime.persist_partitions(true), 32);
        realtime.persist_partitions = Some(4);
        assert_eq!(realtime.persist_partitions(false), 4);
        assert_eq!(realtime.persist_partitions(true), 4);
    }

    #[test]
    fn values_that_would_break_the_service_are_refused() {
        let broken: [fn(&mut Config); 25] = [
            |c| c.realtime.partitions = 0,
            |c| c.realtime.persist_partitions = Some(0),
            |c| c.realtime.persist_partitions = Some(1025),
            |c| c.realtime.partition_lease_ms = 10,
            |c| c.realtime.heartbeat_interval_ms = 0,
            |c| c.realtime.persist_batch = 0,
            |c| c.realtime.read_interval_ms = Some(1001),
            |c| c.realtime.outbound_queue = c.realtime.persist_batch - 1,
            |c| c.realtime.reply_timeout_ms = 0,
            |c| c.rates.send_per_second = 0.0,
            |c| c.rates.send_burst = 0,
            |c| c.rates.actions_per_second = f64::NAN,
            |c| c.rates.action_burst = 0,
            |c| c.rates.login_per_address_per_minute = 0,
            |c| c.rates.login_per_username_per_minute = 0,
            |c| c.rates.rooms_created_per_hour = 0,
            |c| c.rates.members_added_per_minute = 0,
            |c| c.rooms.members_per_call = 1001,
            |c| c.rates.members_added_per_minute = c.rooms.members_per_call - 1,
            |c| c.limits.hash_queue = 0,
            |c| c.limits.ready_rooms = 0,
            |c| c.limits.resume_messages = 0,
            |c| {
                c.listen = "127.0.0.1:8080".parse().unwrap();
                c.ops_listen = Some(c.listen);
            },
            |c| c.worker_id = 1024,
            |c| c.runtime_threads = MAX_RUNTIME_THREADS + 1,
        ];
        for (i, breaks) in broken.iter().enumerate() {
            let mut config = Config::default();
            breaks(&mut config);
            assert!(config.validate().is_err(), "case {i} was accepted");
        }
    }

    #[test]
    fn scylla_settings_become_store_options() {
        let mut config = Config::default();
        assert!(
            config.scylla.options().unwrap().is_none(),
            "no nodes: SQLite"
        );
        config.scylla.nodes = vec!["10.0.0.1:9042".into()];
        config.scylla.consistency = "QUORUM".into();
        let options = config.scylla.options().unwrap().expect("the Scylla store");
        assert_eq!(options.keyspace, "chat");
        assert_eq!(options.read_consistency, scylla::Consistency::Quorum);
        assert_eq!(options.write_consistency, scylla::Consistency::Quorum);
        assert_eq!(
            options.bucket_window,
            Duration::from_secs(10 * 24 * 60 * 60)
        );
        for breaks in [
            |c: &mut Config| c.scylla.consistency = "most".into(),
            |c: &mut Config| c.scylla.bucket_hours = 0,
            |c: &mut Config| c.scylla.keyspace = "chat; DROP".into(),
            |c: &mut Config| c.scylla.replication_strategy = "LocalStrategy".into(),
            |c: &mut Config| c.scylla.replication_factor = 1,
            |c: &mut Config| c.scylla.username = Some("chat".into()),
            |c: &mut Config| c.scylla.password = Some("secret".into()),
            |c: &mut Config| {
                c.scylla.tls = true;
                c.scylla.tls_client_cert_file = Some("client.pem".into());
            },
        ] {
            let mut broken = config.clone();
            breaks(&mut broken);
            assert!(broken.validate().is_err());
        }
    }

    #[test]
    fn scylla_defaults_replicate_three_times_and_take_credentials_and_tls() {
        let mut config = Config::default();
        config.scylla.nodes = vec!["10.0.0.1:9042".into()];
        let options = config.scylla.options().unwrap().expect("the Scylla store");
        assert_eq!(
            options.replication,
            scylla::Replication::from_settings("NetworkTopologyStrategy", 3, &BTreeMap::new())
                .unwrap()
        );
        assert!(options.credentials.is_none() && options.tls.is_none());

        config.scylla.replication_factor = 1;
        config.scylla.allow_replication_factor_one = true;
        config.scylla.username = Some("chat".into());
        config.scylla.password = Some("hunter2-secret".into());
        config.scylla.tls = true;
        config.scylla.tls_ca_file = Some("/etc/chat/scylla-ca.pem".into());
        let options = config.scylla.options().unwrap().expect("the Scylla store");
        let credentials = options.credentials.as_ref().expect("credentials");
        assert_eq!(
            (credentials.username.as_str(), credentials.password()),
            ("chat", "hunter2-secret")
        );
        assert_eq!(
            options.tls.as_ref().expect("tls").ca_file,
            Some(PathBuf::from("/etc/chat/scylla-ca.pem"))
        );
        // The password is redacted wherever the configuration is shown.
        assert!(!format!("{options:?}").contains("hunter2"));
        assert!(
            SECRET_KEYS
                .iter()
                .any(|key| "scylla.password".starts_with(key))
        );
    }
}
