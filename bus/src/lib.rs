//! The bus: how the roles of the service talk to each other.
//!
//! Three seams, each a trait with an in-process implementation ([`local`],
//! for the single binary) and a Redis one ([`redis`], cluster mode):
//!
//! - [`PubSub`]: fire-and-forget fan-out on named channels (one per room,
//!   one per user, one per gateway for replies).
//! - [`WorkQueue`]: durable work streams consumed by groups, for work that
//!   must not be lost (inbound actions, messages to persist).
//! - [`SharedState`]: the little state that must be cluster-wide: rate
//!   limits, idempotency keys, presence.
//!
//! Payloads are opaque bytes; what travels in them is defined by the roles
//! that speak to each other.
//!
//! Both implementations are tested by one conformance suite, the traits'
//! guarantees as executable cases (module `conformance`, cargo feature
//! `testing`).

#[cfg(feature = "testing")]
pub mod conformance;
pub mod consumer;
mod envelopes;
pub mod local;
pub mod metrics;
pub mod partitions;
pub mod pubsub;
pub mod queue;
pub mod redis;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

pub use envelopes::{Outbox, event_with_id, new_event};
pub use pubsub::{Delivery, PubSub, Subscription, Subscriptions};
pub use queue::{Backlog, Entry, EntryId, WorkQueue};
pub use state::{Admission, Admitted, Bucket, Claim, MAX_WORKER_ID, RateDecision, SharedState};

/// Bytes on the bus.
pub type Payload = bytes::Bytes;

/// Why a bus call failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The backend cannot be reached or is full; retrying later may help.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The bus was shut down.
    #[error("bus is closed")]
    Closed,
    /// Anything else.
    #[error("bus error: {0}")]
    Internal(String),
}

/// Result of a bus call.
pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// Channel and stream names, in one place so every role agrees on them.
pub mod names {
    /// The pub/sub channel of a room: its messages and events.
    pub fn room_channel(room: &impl std::fmt::Display) -> String {
        format!("room:{room}")
    }
    /// The pub/sub channel of a user: mentions, room added/removed, events
    /// for all their devices.
    pub fn user_channel(user: &impl std::fmt::Display) -> String {
        format!("user:{user}")
    }
    /// The pub/sub channel on which a gateway receives replies to the
    /// actions it forwarded.
    pub fn gateway_channel(gateway: &str) -> String {
        format!("gateway:{gateway}")
    }
    /// The work stream of client actions, consumed by routers.
    pub const INBOUND_STREAM: &str = "inbound";
    /// The consumer group of routers.
    pub const ROUTER_GROUP: &str = "routers";
    /// The work stream of messages to write, consumed by persistence workers.
    pub const PERSIST_STREAM: &str = "persist";
    /// The consumer group of persistence workers.
    pub const PERSIST_GROUP: &str = "persisters";
}

use std::sync::Arc;

/// The three seams of one bus backend, as every role holds them.
#[derive(Clone)]
pub struct Bus {
    pub pubsub: Arc<dyn PubSub>,
    pub queue: Arc<dyn WorkQueue>,
    pub state: Arc<dyn SharedState>,
}

impl Bus {
    /// The in-process bus: streams of at most `stream_capacity` entries.
    pub fn local(stream_capacity: usize) -> Bus {
        Bus {
            pubsub: Arc::new(local::LocalPubSub::new()),
            queue: Arc::new(local::LocalQueue::new(
                stream_capacity,
                std::time::Duration::from_secs(5),
            )),
            state: Arc::new(local::LocalState::new()),
        }
    }
}
