//! The configuration: defaults, then a TOML file, then `CHAT_*` environment
//! variables, then command-line flags.
//!
//! figment does the layering (it is the maintained, well-documented choice
//! for "file + env + defaults" and reports which layer a bad value came
//! from). Unknown keys in the file are errors, so typos do not pass
//! silently; unrelated `CHAT_*` variables (such as test settings) are
//! ignored by only reading the variables of known keys.

#[cfg(test)]
mod documented;
mod scylla;
mod sections;
mod validate;
mod variables;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use self::scylla::ScyllaConfig;
pub use self::sections::{
    AuditConfig, FilesConfig, Limits, LogFormat, RealtimeConfig, SqliteConfig,
};
use self::variables::{KEYS, explain, warn_about_unknown_variables};
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
    /// How often each gateway looks whether it may have missed events (its
    /// Redis subscription dropped deliveries or reconnected), and if so
    /// reads its users' rooms again to give its connections the rooms
    /// whose `room_added` was lost, in seconds.
    pub missed_rooms_check_secs: u64,
    pub audit: AuditConfig,
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
            missed_rooms_check_secs: 5,
            audit: AuditConfig::default(),
        }
    }
}

/// Most runtime worker threads `runtime_threads` may ask for: far more than
/// any core count, few enough that a typo does not exhaust the process.
pub const MAX_RUNTIME_THREADS: usize = 1024;

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
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chat_persistence::scylla;

    use super::sections::REDIS_READ_INTERVAL_MS;
    use super::variables::{SECRET_KEYS, closest_setting, unknown_variables};
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
        let broken: [fn(&mut Config); 26] = [
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
            |c| c.missed_rooms_check_secs = 0,
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
