//! The Redis bus: every seam of [`Bus`] on Redis 7 (one server or a Redis
//! Cluster) through `fred`, for cluster mode, where gateways, routers and
//! persistence workers are separate processes.
//!
//! [`connect`] answers the same [`Bus`] the in-process implementation does,
//! so no role knows which one it runs on. The traits' guarantees hold
//! across every process sharing the Redis:
//!
//! - pub/sub ([`RedisPubSub`]): PUBLISH/SUBSCRIBE, or SPUBLISH/SSUBSCRIBE
//!   (sharded pub/sub) on a cluster so that a publish goes to the one shard
//!   owning the channel instead of being broadcast to every node. Each
//!   subscription has its own connection and restores its channels after
//!   every reconnect.
//! - work queues ([`RedisQueue`]): Redis Streams with consumer groups,
//!   XAUTOCLAIM for entries a dead consumer left pending, and trimming of
//!   only what every group has acknowledged.
//! - shared state ([`RedisState`]): each operation is one command or one
//!   Lua script, hence atomic.
//!
//! # Keys and channels
//!
//! Every name starts with [`RedisConfig::key_prefix`] (`chat:` by default);
//! `{…}` is the hash tag that decides a key's cluster slot.
//!
//! | name | type | what for |
//! | --- | --- | --- |
//! | `chat:room:R`, `chat:user:U`, `chat:gateway:G` | channel | [`crate::names`]' channels |
//! | `chat:{inbound.P}`, `chat:{persist.P}` | stream | partition P of a work stream ([`crate::partitions`]) |
//! | `chat:rate:K` | string | a token bucket (its lanes, space-separated); expires once full again |
//! | `chat:kv:K` | string | [`put_if_absent`](crate::SharedState::put_if_absent) keys, with their TTL |
//! | `chat:{presence:S}:user:U` | sorted set | connections of user U → end of life (ms) |
//! | `chat:{presence:S}:expiry` | sorted set | `U\0connection` → end of life, for the sweep |
//! | `chat:{workers}:N` | string | the owner of worker id N, with the lease as TTL |
//! | `chat:{parts:G}:members` | sorted set | live members of consumer group G → end of life (ms) |
//! | `chat:{parts:G}:leases` | hash | partition → `<end of lease, ms>:<holder>` |
//!
//! # Failures
//!
//! Commands are sent at most once: a command in flight when a connection
//! drops fails instead of being resent, since resending a publish or a
//! script could apply it twice (a second token taken, a stored idempotency
//! key answered back to the caller that stored it). They fail with
//! [`BusError::Unavailable`] when Redis cannot be reached: at once while a
//! connection is being made again, else after
//! [`RedisConfig::command_timeout`]; the roles retry at their level.
//! Clients reconnect by themselves, with exponential back-off up to 2 s,
//! for as long as the process lives.
//!
//! Requires Redis 7.0 or later (`SET … NX GET`, XAUTOCLAIM's answer, sharded
//! pub/sub).

mod pubsub;
mod queue;
mod scripts;
mod state;

use std::sync::Arc;
use std::time::Duration;

use fred::clients::{ExclusivePool, Pool};
use fred::prelude::{
    ClientLike, Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy, TcpConfig,
};
use fred::types::config::UnresponsiveConfig;

pub use pubsub::RedisPubSub;
pub use queue::RedisQueue;
pub use state::RedisState;

use crate::{Bus, BusError, Result};

/// How to reach Redis and how to use it. Every process of a cluster must
/// agree on `key_prefix` and `presence_shards`.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; for a cluster, any node's
    /// address, or `redis-cluster://host:port?node=host2:port2&…`.
    pub url: String,
    /// The URL points at a Redis Cluster: route by slot and use sharded
    /// pub/sub. Implied by a `redis-cluster://` URL.
    pub cluster: bool,
    /// Put before every key and channel name, so that several deployments
    /// can share one Redis. Must not contain `{` or `}`.
    pub key_prefix: String,
    /// Connections for publishing, appending, acknowledging and shared
    /// state (commands are pipelined on each).
    pub pool_size: usize,
    /// Connections for blocking stream reads (XREADGROUP BLOCK holds its
    /// connection): at least the number of consumers reading at once in
    /// this process; more readers wait for one.
    pub blocking_pool_size: usize,
    /// Longest wait for a command's answer, and for a connection.
    pub command_timeout: Duration,
    /// Most entries one stream (one partition) may hold. Entries
    /// leave once every group has acknowledged them; a full stream pushes
    /// back on `append`.
    pub stream_capacity: usize,
    /// How long `append` waits for room in a full stream before failing.
    pub append_timeout: Duration,
    /// Trim acknowledged entries exactly (`MINID =`). Off, trimming is
    /// `MINID ~`: cheaper, but removes only whole stream nodes (by default
    /// 100 entries), so up to that many acknowledged entries still count
    /// against `stream_capacity`.
    pub exact_trim: bool,
    /// On a Redis Cluster, how long a consumer reading several partition
    /// streams (which live in different slots, so one XREADGROUP cannot
    /// cover them) blocks on one of them before looking at the others when
    /// all are empty: the idle latency of the others. Unused on one server.
    pub shard_poll_interval: Duration,
    /// Presence is kept in this many hash slots (users are spread by a
    /// hash of their id), so that presence traffic spreads over a cluster.
    pub presence_shards: u16,
}

impl Default for RedisConfig {
    fn default() -> RedisConfig {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            cluster: false,
            key_prefix: "chat:".into(),
            pool_size: 4,
            blocking_pool_size: 4,
            command_timeout: Duration::from_secs(5),
            stream_capacity: 10_000,
            append_timeout: Duration::from_secs(5),
            exact_trim: false,
            shard_poll_interval: Duration::from_millis(50),
            presence_shards: 16,
        }
    }
}

/// The three seams on one Redis, with their Redis-specific extras.
#[derive(Clone)]
pub struct RedisBus {
    pub pubsub: Arc<RedisPubSub>,
    pub queue: Arc<RedisQueue>,
    pub state: Arc<RedisState>,
    shared: Arc<Shared>,
}

/// What the seams share: connections, names and settings.
pub(crate) struct Shared {
    pub(crate) config: RedisConfig,
    pub(crate) clustered: bool,
    pub(crate) keys: Keys,
    pub(crate) pool: Pool,
    pub(crate) blocking: ExclusivePool,
    /// For the subscription clients, made one per subscription.
    pub(crate) client_config: ClientConfig,
}

/// Everything needed to make one more fred client like the others.
#[derive(Clone)]
pub(crate) struct ClientConfig {
    pub(crate) config: Config,
    pub(crate) performance: PerformanceConfig,
    pub(crate) connection: ConnectionConfig,
    pub(crate) policy: ReconnectPolicy,
}

impl RedisBus {
    /// Connects to Redis; fails with `Unavailable` if it cannot be reached
    /// within the command timeout.
    pub async fn connect(config: RedisConfig) -> Result<RedisBus> {
        if config.key_prefix.contains(['{', '}']) {
            return Err(BusError::Internal(
                "the Redis key prefix must not contain braces (they are hash tags)".into(),
            ));
        }
        let client_config = ClientConfig::new(&config)?;
        let clustered = client_config.config.server.is_clustered();
        let pool = Pool::new(
            client_config.config.clone(),
            Some(client_config.performance.clone()),
            Some(client_config.connection.clone()),
            Some(client_config.policy.clone()),
            config.pool_size.max(1),
        )
        .map_err(error)?;
        let blocking = ExclusivePool::new(
            client_config.config.clone(),
            Some(client_config.performance.clone()),
            Some(client_config.connection.clone()),
            Some(client_config.policy.clone()),
            config.blocking_pool_size.max(1),
        )
        .map_err(error)?;
        let timeout = config.command_timeout * 2;
        let connected = tokio::time::timeout(timeout, async {
            pool.init().await?;
            blocking.init().await
        })
        .await;
        match connected {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let _ = pool.quit().await;
                let _ = blocking.quit().await;
                return Err(error(e));
            }
            Err(_) => {
                let _ = pool.quit().await;
                let _ = blocking.quit().await;
                return Err(BusError::Unavailable(format!(
                    "no connection to Redis within {timeout:?}"
                )));
            }
        }
        let shared = Arc::new(Shared {
            keys: Keys::new(&config.key_prefix),
            clustered,
            config,
            pool,
            blocking,
            client_config,
        });
        Ok(RedisBus {
            pubsub: Arc::new(RedisPubSub::new(shared.clone())),
            queue: Arc::new(RedisQueue::new(shared.clone())),
            state: Arc::new(RedisState::new(shared.clone())),
            shared,
        })
    }

    /// The seams as every role holds them.
    pub fn bus(&self) -> Bus {
        Bus {
            pubsub: self.pubsub.clone(),
            queue: self.queue.clone(),
            state: self.state.clone(),
        }
    }

    /// Whether this bus talks to a Redis Cluster (and so uses sharded
    /// pub/sub).
    pub fn is_cluster(&self) -> bool {
        self.shared.clustered
    }

    /// Closes the shared connections (subscriptions close with their
    /// receivers). Calls made afterwards fail.
    pub async fn close(&self) {
        let _ = self.shared.pool.quit().await;
        let _ = self.shared.blocking.quit().await;
    }
}

/// Connects to Redis and answers the bus every role uses.
pub async fn connect(config: RedisConfig) -> Result<Bus> {
    Ok(RedisBus::connect(config).await?.bus())
}

impl ClientConfig {
    fn new(config: &RedisConfig) -> Result<ClientConfig> {
        let cluster_url = ["redis-cluster://", "rediss-cluster://", "valkey-cluster://"]
            .iter()
            .any(|scheme| config.url.starts_with(scheme));
        let parsed = if config.cluster && !cluster_url {
            Config::from_url_clustered(&config.url)
        } else {
            Config::from_url(&config.url)
        };
        let mut fred_config = parsed.map_err(|e| {
            BusError::Internal(format!(
                "invalid Redis URL {:?}: {}",
                config.url,
                e.details()
            ))
        })?;
        // Fail at startup if Redis is unreachable, rather than retrying
        // silently: a misconfigured URL should be loud.
        fred_config.fail_fast = true;
        let timeout = config.command_timeout;
        let performance = PerformanceConfig {
            default_command_timeout: timeout,
            ..PerformanceConfig::default()
        };
        let connection = ConnectionConfig {
            connection_timeout: timeout,
            internal_command_timeout: timeout,
            // At most once: a command in flight when its connection drops
            // fails rather than being written again (a second PUBLISH would
            // deliver twice, a second script run would take two tokens).
            max_command_attempts: 1,
            // A connection that answers nothing for this long (a half-open
            // TCP connection to a dead node) is closed and made again;
            // blocked connections (XREADGROUP BLOCK) are exempt.
            unresponsive: UnresponsiveConfig {
                max_timeout: Some(timeout * 2),
                interval: Duration::from_millis(500).min(timeout),
            },
            tcp: TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            },
            ..ConnectionConfig::default()
        };
        // Forever (0 attempts = no limit), from 50 ms up to 2 s apart: a
        // restarted Redis is found again within about two seconds.
        let policy = ReconnectPolicy::new_exponential(0, 50, 2_000, 2);
        Ok(ClientConfig {
            config: fred_config,
            performance,
            connection,
            policy,
        })
    }
}

/// Key and channel names.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn channel(&self, channel: &str) -> String {
        format!("{}{channel}", self.prefix)
    }

    /// One shard of a stream; the hash tag keeps its slot stable.
    pub(crate) fn stream(&self, stream: &str) -> String {
        format!("{}{{{stream}}}", self.prefix)
    }

    pub(crate) fn rate(&self, key: &str) -> String {
        format!("{}rate:{key}", self.prefix)
    }

    pub(crate) fn kv(&self, key: &str) -> String {
        format!("{}kv:{key}", self.prefix)
    }

    /// The prefix of the user sets of presence shard `shard`.
    pub(crate) fn presence_users(&self, shard: u16) -> String {
        format!("{}{{presence:{shard}}}:user:", self.prefix)
    }

    pub(crate) fn presence_expiry(&self, shard: u16) -> String {
        format!("{}{{presence:{shard}}}:expiry", self.prefix)
    }

    pub(crate) fn workers(&self) -> String {
        format!("{}{{workers}}:", self.prefix)
    }

    /// The members and the leases of a consumer group's partitions (one
    /// hash tag: one script sees both).
    pub(crate) fn partition_group(&self, group: &str) -> [String; 2] {
        [
            format!("{}{{parts:{group}}}:members", self.prefix),
            format!("{}{{parts:{group}}}:leases", self.prefix),
        ]
    }
}

/// A [`BusError`] for a fred error: what a retry may cure (no connection,
/// timeouts, a cluster changing shape, a Redis still loading or out of
/// memory) is `Unavailable`, the rest `Internal`.
pub(crate) fn error(e: fred::error::Error) -> BusError {
    use fred::error::ErrorKind;
    let transient = matches!(
        e.kind(),
        ErrorKind::IO
            | ErrorKind::Timeout
            | ErrorKind::Canceled
            | ErrorKind::Cluster
            | ErrorKind::Routing
            | ErrorKind::Backpressure
    ) || [
        // Redis replies that a retry may cure.
        "LOADING",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "MASTERDOWN",
        "READONLY",
        "BUSY ",
        "OOM",
        "NOREPLICAS",
    ]
    .iter()
    .any(|code| e.details().starts_with(code))
        || [
            // fred's words, of kind Unknown, for "no connection right now"
            // (e.g. a command issued while reconnecting is not queued: it
            // may be sent once only, see max_command_attempts).
            "Failed to route command",
            "Too many failed write attempts",
            "Connection closed",
            "Missing response",
            "Max attempts",
        ]
        .iter()
        .any(|words| e.details().contains(words));
    let class = if transient {
        crate::metrics::error_class::UNAVAILABLE
    } else {
        crate::metrics::error_class::INTERNAL
    };
    crate::metrics::REDIS_ERRORS
        .with_label_values(&[class])
        .inc();
    if transient {
        BusError::Unavailable(format!("redis: {e}"))
    } else {
        BusError::Internal(format!("redis: {e}"))
    }
}

/// Whether a Redis error reply starts with `code` (e.g. `NOGROUP`).
pub(crate) fn is_reply(e: &fred::error::Error, code: &str) -> bool {
    e.details().starts_with(code) || e.details().contains(&format!("{code} "))
}
