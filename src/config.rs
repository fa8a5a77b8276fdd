//! The configuration: defaults, then a TOML file, then `CHAT_*` environment
//! variables, then command-line flags.
//!
//! figment does the layering (it is the maintained, well-documented choice
//! for "file + env + defaults" and reports which layer a bad value came
//! from). Unknown keys in the file are errors, so typos do not pass
//! silently; unrelated `CHAT_*` variables (such as test settings) are
//! ignored by only reading the variables of known keys.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
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
    /// Holds the embedded database and the generated JWT secret.
    pub data_dir: PathBuf,
    /// HS256 secret for access tokens. When empty, one is generated and
    /// kept in `<data_dir>/jwt_secret`.
    pub jwt_secret: Option<String>,
    /// How long an access token is valid, in seconds.
    pub token_ttl_secs: u64,
    /// Snowflake worker id of this process (0–1023), unique among live
    /// processes that mint ids.
    pub worker_id: u16,
    /// `auto` (readable on a terminal, JSON otherwise), `pretty` or `json`.
    pub log_format: LogFormat,
    pub limits: Limits,
    /// How fast a user may send and type.
    pub rates: chat_router::RateLimits,
    pub realtime: RealtimeConfig,
    pub sqlite: SqliteConfig,
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
    /// Most messages a persistence worker writes in one batch.
    pub persist_batch: usize,
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
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            data_dir: PathBuf::from("./data"),
            jwt_secret: None,
            token_ttl_secs: 24 * 60 * 60,
            worker_id: 0,
            log_format: LogFormat::Auto,
            limits: Limits::default(),
            rates: chat_router::RateLimits::default(),
            realtime: RealtimeConfig::default(),
            sqlite: SqliteConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 64 * 1024,
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
        }
    }
}

/// The top-level keys, which are the only `CHAT_*` variables read.
const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "jwt_secret",
    "token_ttl_secs",
    "worker_id",
    "log_format",
    "limits",
    "rates",
    "realtime",
    "sqlite",
];

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
        if let Some(args) = cli.serve_args() {
            if let Some(listen) = args.listen {
                figment = figment.merge(("listen", listen));
            }
            if let Some(dir) = &args.data_dir {
                figment = figment.merge(("data_dir", dir));
            }
        }
        let mut config: Config = figment.extract().context("cannot read the configuration")?;
        if let Ok(secret) = std::env::var("CHAT_JWT_SECRET") {
            config.jwt_secret = Some(secret);
        }
        if config.jwt_secret.as_deref() == Some("") {
            config.jwt_secret = None;
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
        Ok(())
    }

    /// The SQLite database file.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join(&self.sqlite.path)
    }

    /// Prints the configuration as TOML, with the secret redacted.
    pub fn print(&self) -> anyhow::Result<()> {
        let mut shown = self.clone();
        if shown.jwt_secret.is_some() {
            shown.jwt_secret = Some("<redacted>".into());
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
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn values_that_would_break_the_service_are_refused() {
        let broken: [fn(&mut Config); 7] = [
            |c| c.realtime.heartbeat_interval_ms = 0,
            |c| c.realtime.persist_batch = 0,
            |c| c.realtime.outbound_queue = c.realtime.persist_batch - 1,
            |c| c.realtime.reply_timeout_ms = 0,
            |c| c.rates.send_per_second = 0.0,
            |c| c.rates.send_burst = 0,
            |c| c.worker_id = 1024,
        ];
        for (i, breaks) in broken.iter().enumerate() {
            let mut config = Config::default();
            breaks(&mut config);
            assert!(config.validate().is_err(), "case {i} was accepted");
        }
    }
}
