//! Tools that speak only the public chat protocol v1 (REST + WebSocket) to a
//! running `chatd serve`: the interactive `chat-client` and the load
//! generator `chat-loadtest`.
//!
//! Nothing here links the server: the only shared code is `chat-protocol`,
//! the wire types. The pieces both binaries use live in this library:
//!
//! - [`api`]: a small REST client (`/api/v1`) with typed errors;
//! - [`client`]: the interactive client behind `chat-client` (its session
//!   loop, with reconnection, can be driven in-process);
//! - [`ws`]: opening `/ws` with a bearer token and a subprotocol, and
//!   turning frames into WebSocket messages and back;
//! - [`procfs`]: a process's resident memory, read from `/proc`.

pub mod api;
pub mod client;
pub mod procfs;
pub mod ws;
