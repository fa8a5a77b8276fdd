//! WebSocket connections (`GET /ws`).
//!
//! - [`handshake`]: token, origin and subprotocol checks before the upgrade.
//! - [`session`]: one connection's life: `ready`, reading client frames,
//!   heartbeats, expiry, close.
//! - [`decode`]: a client frame decoded, or refused with its `ref` and
//!   `client_id` salvaged; the bad-frame budget.
//! - [`resume`]: replaying what a reconnecting client missed.
//! - [`conn`]: a connection as the rest of the gateway sees it: a bounded
//!   outbound queue and a way to close it.
//! - [`hub`]: the local index room → connections, the subscriptions it
//!   needs, and fan-out of events to connections.
//! - [`slots`]: the connection caps per user and per gateway.
//! - [`encoded`]: a frame encoded at most once per codec, shared by every
//!   connection that receives it.

pub mod conn;
pub mod decode;
pub mod encoded;
pub mod handshake;
pub mod hub;
pub mod resume;
pub mod session;
pub mod slots;

use std::time::Duration;

/// Settings of the WebSocket edge.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// How often the server pings; two silent intervals close a connection.
    pub heartbeat_interval: Duration,
    /// Frames waiting to be written to one connection; beyond it the
    /// connection is closed with 4003 (too slow).
    pub outbound_queue: usize,
    /// Origins allowed to open connections from a browser, besides the
    /// server's own. `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Most connections of one user on this gateway; more are refused
    /// with 429.
    pub max_connections_per_user: usize,
    /// Most connections on this gateway; more are refused with 429.
    pub max_connections: usize,
    /// Most rooms listed in `ready`; beyond it `rooms_truncated` is set
    /// and the client pages the rest with `GET /rooms`.
    pub ready_rooms: usize,
    /// Most messages one `resume` replays, over all its rooms.
    pub resume_messages: u32,
}
