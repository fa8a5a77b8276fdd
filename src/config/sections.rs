//! The sections of the configuration other than ScyllaDB's: limits, the
//! realtime path, SQLite, files and the audit log, each a table of the
//! TOML file (`[realtime]`) and a `CHAT_<SECTION>__<KEY>` variable prefix.

use std::path::PathBuf;
use std::time::Duration;

use chat_router::writer::WriteStage;
use serde::{Deserialize, Serialize};

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
    /// Uploads of one user streaming at once per gateway; more wait for
    /// one of theirs to finish (so that one user cannot hold every place).
    pub concurrent_uploads_per_user: usize,
    /// Downloads from a bucket streaming at once per gateway (each holds a
    /// connection to the bucket, a descriptor, until its client has taken
    /// every byte); more wait their turn. Downloads from a directory need
    /// no place.
    pub concurrent_downloads: usize,
    /// Downloads from a bucket of one user streaming at once per gateway.
    pub concurrent_downloads_per_user: usize,
    /// Slowest average pace of an upload, in bytes per second, after a head
    /// start of `limits.body_timeout_ms`; a slower one is cut off (so that
    /// an upload trickled a byte at a time cannot hold its place for
    /// days). 0 sets no floor.
    pub min_upload_bytes_per_second: u64,
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
            concurrent_uploads_per_user: 4,
            concurrent_downloads: 256,
            concurrent_downloads_per_user: 16,
            min_upload_bytes_per_second: 4096,
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
pub(super) const REDIS_READ_INTERVAL_MS: u64 = 10;

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
    /// if set, else `REDIS_READ_INTERVAL_MS` on Redis and none with the
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
    /// Most connections per listener still sending their first request's
    /// headers; more are closed at once.
    pub max_pending_requests: usize,
    /// Most connections each listener holds open at once, WebSockets
    /// included; more are closed at once. 0: the open-file limit less a
    /// tenth (at least 64) kept for the process's own links and files.
    pub max_open_connections: usize,
    /// How long a request body may go without a byte arriving, in
    /// milliseconds; a stalled body fails its request with 400 and its
    /// connection is closed (an upload goes on while its bytes keep
    /// `files.min_upload_bytes_per_second`).
    pub body_idle_timeout_ms: u64,
    /// How long a REST JSON body may take to arrive whole, in milliseconds
    /// from its request's headers; a slower one fails its request with 400
    /// and its connection is closed (for uploads, it is the head start
    /// before `files.min_upload_bytes_per_second` counts).
    pub body_timeout_ms: u64,
    /// How long a write may wait for the client to take any bytes, in
    /// milliseconds; a client that stops reading (a download, a WebSocket)
    /// has its connection closed after it.
    pub send_timeout_ms: u64,
    /// How long a kept-alive connection may wait for its next request's
    /// headers, in milliseconds from the end of the previous response;
    /// idle connections are closed after it.
    pub keep_alive_timeout_ms: u64,
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

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 64 * 1024,
            max_connections_per_user: 10,
            max_connections: 100_000,
            header_timeout_ms: 10_000,
            max_pending_requests: 1024,
            max_open_connections: 0,
            body_idle_timeout_ms: 30_000,
            body_timeout_ms: 60_000,
            keep_alive_timeout_ms: 75_000,
            send_timeout_ms: 60_000,
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
