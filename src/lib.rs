//! `chatd` as a library: the wiring of the roles into a process, so that
//! tests (and embedders) can start a node in-process as well as through
//! the binary.
//!
//! [`Node::start`] opens the store and the bus and starts the roles it is
//! given, each through its crate's start function (`chat_gateway::role`,
//! `chat_router::role` for the router and the persistence writer); [`Node::stop`] drains
//! and stops them. The binary (`src/main.rs`) only parses the command line
//! and calls [`serve::run`], which adds the signals.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = chatd::config::Config {
//!     listen: "127.0.0.1:0".parse()?,
//!     data_dir: "/tmp/chat-demo".into(),
//!     ..chatd::config::Config::default()
//! };
//! let node = chatd::Node::start(config, chatd::cli::Role::ALL).await?;
//! println!("serving on http://{}", node.address());
//! node.stop().await
//! # }
//! ```

pub mod cli;
pub mod config;
mod data_dir;
mod descriptors;
pub mod logging;
mod secrets;
pub mod serve;
mod store;
pub mod telemetry;

pub use serve::Node;
