//! The command line. Every option is also a configuration key, so flags,
//! `CHAT_*` variables and the TOML file all name the same settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// TOML configuration file [env: CHAT_CONFIG].
    #[arg(
        long,
        short,
        global = true,
        env = "CHAT_CONFIG",
        hide_env = true,
        value_name = "FILE"
    )]
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
    #[command(mut_arg("listen", |arg| arg.help(OPS_LISTEN_HELP)))]
    Router(ServeArgs),
    /// Run only the persistence role of a cluster: writes messages from
    /// the persist stream to the store. Needs CHAT_REDIS_URL.
    #[command(mut_arg("listen", |arg| arg.help(OPS_LISTEN_HELP)))]
    Persist(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(DataDirArgs),
    /// Print the effective configuration (secrets redacted), then exit.
    Config(ServeArgs),
    /// Manage admins in the store: `chatd admin grant alice` lets alice
    /// send notices, ban and read the audit log; `revoke` takes it back.
    /// Works while the service runs (it takes effect at alice's next admin
    /// call). Admins named in the configuration (`admins`) need no grant.
    Admin(AdminArgs),
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub action: AdminAction,
    #[command(flatten)]
    pub store: DataDirArgs,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Make a user an admin.
    Grant { username: String },
    /// Withdraw a user's stored admin flag.
    Revoke { username: String },
}

/// `--listen` of the roles that serve only the operational endpoints.
const OPS_LISTEN_HELP: &str = "Address to serve /healthz, /readyz and /metrics on \
     [env: CHAT_LISTEN]. There is no default of its own: like every process it \
     takes `listen` (0.0.0.0:8080, the gateway's usual port), so give each \
     process on a host its own";

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

#[derive(Debug, Args, Default)]
pub struct DataDirArgs {
    /// Directory of the embedded database [env: CHAT_DATA_DIR]
    /// [default: ./data].
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

impl Role {
    /// Every role: what `chatd serve` runs.
    pub const ALL: &'static [Role] = &[Role::Gateway, Role::Router, Role::Persistence];
}

impl Cli {
    /// `--listen`, if given.
    pub fn listen(&self) -> Option<SocketAddr> {
        match &self.command {
            Command::Serve(args)
            | Command::Gateway(args)
            | Command::Router(args)
            | Command::Persist(args)
            | Command::Config(args) => args.listen,
            Command::Migrate(_) | Command::Admin(_) => None,
        }
    }

    /// `--data-dir`, if given.
    pub fn data_dir(&self) -> Option<&Path> {
        match &self.command {
            Command::Serve(args)
            | Command::Gateway(args)
            | Command::Router(args)
            | Command::Persist(args)
            | Command::Config(args) => args.data_dir.as_deref(),
            Command::Migrate(args) => args.data_dir.as_deref(),
            Command::Admin(args) => args.store.data_dir.as_deref(),
        }
    }

    /// The roles this command runs.
    pub fn roles(&self) -> &'static [Role] {
        match &self.command {
            Command::Serve(_) => Role::ALL,
            Command::Gateway(_) => &[Role::Gateway],
            Command::Router(_) => &[Role::Router],
            Command::Persist(_) => &[Role::Persistence],
            Command::Migrate(_) | Command::Config(_) | Command::Admin(_) => &[],
        }
    }
}
