//! The chat logic: every rule about who may do what to which room.
//!
//! [`Chat`] is the one place where membership is checked, content is
//! validated, mentions and DM targets are resolved, rate limits and
//! idempotency are applied, and events are published (through [`events`]).
//! Every state-changing action, WebSocket or REST, reaches it through the
//! inbound stream and the [`worker`]; the REST handlers call it directly
//! only to read (and to register, log in and take uploads, which publish
//! nothing). Embedded and cluster mode differ
//! only in the store and bus implementations underneath, never in this code.
//!
//! Modules, one concept each:
//! - [`accounts`]: registration and login (argon2 password hashes).
//! - [`sessions`]: sessions and their revocation, logout, password and
//!   profile changes; [`admin`]: notices, bans, the audit log;
//!   [`audit`]: the audit log's batching writer.
//! - [`users`]: user lookup, search and presence.
//! - [`rooms`]: group rooms, DMs, members and roles.
//! - [`directory`]: the public room directory and paged member lists.
//! - [`room_list`]: a user's room list in pages (`GET /rooms`, `ready`).
//! - [`room_size`]: `max_members`, the server's default and cap.
//! - [`messages`]: accepting, editing, deleting and reading messages.
//! - [`access`]: the membership checks every action goes through.
//! - [`files`]: upload limits, who may read a file, what a message may
//!   carry.
//! - [`notifications`]: stored mentions, their read mark and the rooms'
//!   `mention_count`.
//! - [`events`]: publishing what happened to room and user channels;
//!   [`event_ids`]: their ids, the same when published again.
//! - [`content`], [`mentions`]: pure rules on message text.
//! - [`limits`]: rate limits and `client_id` idempotency.
//! - [`budget`]: the per-user action budget and the login limits.
//! - [`worker`]: the router role, consuming the inbound stream.
//! - [`role`]: starting and stopping the router role.
//! - [`writer`]: the persistence writer stage (the `persist` role),
//!   consuming the persist stream: stores, then publishes and answers.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod audit;
mod bounds;
pub mod budget;
pub mod caps;
pub mod content;
pub mod directory;
pub mod error;
pub mod event_ids;
pub mod events;
pub mod files;
pub mod limits;
pub mod mentions;
pub mod messages;
pub mod metrics;
pub mod notifications;
pub mod password;
pub mod role;
pub mod room_list;
pub mod room_size;
pub mod rooms;
pub mod sessions;
#[cfg(test)]
mod testing;
pub mod users;
pub mod worker;
pub mod writer;

use std::sync::Arc;

use chat_bus::Bus;
use chat_persistence::Store;
use chat_protocol::{Id, IdGenerator};

pub use error::Error;
pub use limits::RateLimits;
pub use room_size::RoomLimits;
pub use sessions::{AccountSettings, Client};

/// Result of a chat operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The chat logic over a store and a bus. Cheap to clone; clones share
/// everything.
#[derive(Clone)]
pub struct Chat {
    store: Arc<dyn Store>,
    bus: Bus,
    ids: Arc<IdGenerator>,
    rates: RateLimits,
    presence_ttl: std::time::Duration,
    presence_max_room_members: u32,
    partitions: u16,
    persist_partitions: u16,
    write_stage: writer::WriteStage,
    /// Started on first use: only processes that register or log users in
    /// (gateways) run the hashing threads.
    passwords: Arc<std::sync::OnceLock<password::PasswordHasher>>,
    accounts: Arc<AccountSettings>,
    audit: audit::AuditLog,
    room_limits: RoomLimits,
    hash_queue: usize,
    /// This process's own token buckets (never shared): the gateway's
    /// first check of a WebSocket `send` ([`Chat::charge_budget_here`]).
    gate: Arc<chat_bus::local::LocalState>,
}

/// Tunables of the chat logic.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub rates: RateLimits,
    /// How long a connection counts as live without its gateway vouching
    /// for it again.
    pub presence_ttl: std::time::Duration,
    /// Rooms of more members than this get no presence events (see
    /// `Chat::announce_presence`).
    pub presence_max_room_members: u32,
    /// How many partitions the work streams have (`realtime.partitions`,
    /// the same in every process; see `chat_bus::partitions`).
    pub partitions: u16,
    /// How many partitions the persist stream has
    /// (`realtime.persist_partitions`, the same in every process).
    pub persist_partitions: u16,
    /// Where accepted messages are written and published
    /// (`realtime.write_stage`, the same in every process).
    pub write_stage: writer::WriteStage,
    /// Room size: the default and the cap of `max_members`.
    pub rooms: RoomLimits,
    /// Password hashing jobs that may wait for a hashing thread; more are
    /// refused `unavailable` ([`password`]).
    pub hash_queue: usize,
}

impl Chat {
    /// The chat logic over `store` and `bus`, minting ids with `ids`.
    pub fn new(store: Arc<dyn Store>, bus: Bus, ids: Arc<IdGenerator>, settings: Settings) -> Chat {
        Chat {
            store,
            bus,
            ids,
            rates: settings.rates,
            presence_ttl: settings.presence_ttl,
            presence_max_room_members: settings.presence_max_room_members,
            partitions: settings.partitions.max(1),
            persist_partitions: settings.persist_partitions.max(1),
            write_stage: settings.write_stage,
            passwords: Arc::default(),
            accounts: Arc::new(AccountSettings::default()),
            audit: audit::AuditLog::disabled(),
            room_limits: settings.rooms,
            hash_queue: settings.hash_queue,
            gate: Arc::new(chat_bus::local::LocalState::new()),
        }
    }

    /// The account rules (admins, session lifetime), with the audit log
    /// written by `audit` (see [`audit::AuditLog::spawn`]).
    pub fn with_accounts(mut self, settings: AccountSettings, audit: audit::AuditLog) -> Chat {
        self.accounts = Arc::new(settings);
        self.audit = audit;
        self
    }

    /// How long a connection counts as live without being vouched for.
    pub fn presence_ttl(&self) -> std::time::Duration {
        self.presence_ttl
    }

    /// How many partitions the work streams have.
    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// How many partitions the persist stream has.
    pub fn persist_partitions(&self) -> u16 {
        self.persist_partitions
    }

    /// Where accepted messages are written and published.
    pub fn write_stage(&self) -> writer::WriteStage {
        self.write_stage
    }

    /// The audit log's writer (to shut it down with the process).
    pub fn audit_writer(&self) -> &audit::AuditLog {
        &self.audit
    }

    /// The store underneath, for health checks and reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The password hasher, started on first use.
    fn passwords(&self) -> &password::PasswordHasher {
        self.passwords
            .get_or_init(|| password::PasswordHasher::new(self.hash_queue))
    }

    /// The bus underneath.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// A fresh id; `unavailable` once the worker id's lease was lost (see
    /// [`IdGenerator::revoke`]): the process is about to stop and its ids
    /// may already be another's.
    pub(crate) fn mint_id(&self) -> Result<Id> {
        self.ids.try_next_id().ok_or_else(|| {
            Error::Unavailable("the worker id lease was lost; minting stopped".into())
        })
    }
}
