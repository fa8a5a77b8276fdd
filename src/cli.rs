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
    /// router and persistence, on the embedded SQLite store in the data
    /// directory. Stops gracefully on SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print the effective configuration (secrets redacted), then exit.
    Config,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on for HTTP and WebSocket [env: CHAT_LISTEN] [default: 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded database and generated secrets
    /// [env: CHAT_DATA_DIR] [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl Cli {
    /// The `serve` flags, if this is `serve`.
    pub fn serve_args(&self) -> Option<&ServeArgs> {
        match &self.command {
            Command::Serve(args) => Some(args),
            _ => None,
        }
    }
}
