//! `chatd`: the chat service in one binary, with a subcommand per role.
//!
//! `chatd serve` runs every role in one process on the embedded store, so a
//! newcomer needs nothing but `cargo`. The same code runs as separate roles
//! in a cluster; only the store and bus implementations differ. The wiring
//! lives in the library (`src/lib.rs`); this is the command line around it.

use chatd::{cli, config, logging, serve};
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let config = match config::Config::load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("chatd: invalid configuration: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    logging::init(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chatd: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            cli::Command::Migrate(_) => serve::migrate(&config).await,
            cli::Command::Config(_) => config.print(),
            cli::Command::Admin(args) => serve::admin(&config, &args.action).await,
            _ => serve::run(config, cli.roles()).await,
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("chatd: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
