//! Tools that speak only the public chat protocol v1 (REST + WebSocket) to a
//! running `chatd serve`: the interactive `chat-client` and the load
//! generator `chat-loadtest`.
//!
//! Nothing here links the server: the only shared code is `chat-protocol`,
//! the wire types. The pieces both binaries use live in this library:
//!
//! - [`api`]: a small REST client (`/api/v1`) with typed errors;
//! - [`ws`]: opening `/ws` with a bearer token and a subprotocol, and
//!   turning frames into WebSocket messages and back;
//! - [`procfs`]: a process's resident memory, read from `/proc`.

pub mod api;
pub mod procfs;
pub mod ws;
