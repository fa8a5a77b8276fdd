//! The command line. Every option is also a configuration key, so flags,
//! `CHAT_*` variables and the TOML file all name the same settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Horizontally scalable chat service.
///
/// Configuration comes from built-in defaults, then the TOML file given with
/// --config (or CHAT_CONFIG), then CHAT_* environment variables (nested keys
/// with a double underscore, e.g. CHAT_LIMITS__MAX_BODY_BYTES), then flags.
/// `chatd config` prints the result.
#[derive(Debug, Parser)]
#[command(name = "chatd", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short, global = true, env = "CHAT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole service in one process: REST and WebSocket gateway,
    /// router and persistence. Without CHAT_REDIS_URL it runs alone, on the
    /// in-process bus and the embedded SQLite store in the data directory;
    /// with it, it joins a cluster as all three roles. Stops gracefully on
    /// SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Run only the gateway role (REST and WebSocket) of a cluster.
    /// Needs CHAT_REDIS_URL.
    Gateway(ServeArgs),
    /// Run only the router role of a cluster: checks and routes client
    /// actions from the inbound stream. Needs CHAT_REDIS_URL.
    Router(ServeArgs),
    /// Run only the persistence role of a cluster: writes messages from
    /// the persist stream to the store. Needs CHAT_REDIS_URL.
    Persist(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print the effective configuration (secrets redacted), then exit.
    Config,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on for HTTP and WebSocket (router and persist
    /// serve only /healthz, /readyz and /metrics there)
    /// [env: CHAT_LISTEN] [default: 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded database and generated secrets
    /// [env: CHAT_DATA_DIR] [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// A part of the service that a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Router,
    Persistence,
}

impl Cli {
    /// The flags of a command that runs roles.
    pub fn serve_args(&self) -> Option<&ServeArgs> {
        match &self.command {
            Command::Serve(args)
            | Command::Gateway(args)
            | Command::Router(args)
            | Command::Persist(args) => Some(args),
            Command::Migrate | Command::Config => None,
        }
    }

    /// The roles this command runs.
    pub fn roles(&self) -> &'static [Role] {
        match &self.command {
            Command::Serve(_) => &[Role::Gateway, Role::Router, Role::Persistence],
            Command::Gateway(_) => &[Role::Gateway],
            Command::Router(_) => &[Role::Router],
            Command::Persist(_) => &[Role::Persistence],
            Command::Migrate | Command::Config => &[],
        }
    }
}
