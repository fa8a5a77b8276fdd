//! `chatd`: the chat service in one binary, with a subcommand per role.
//!
//! `chatd serve` runs every role in one process on the embedded store, so a
//! newcomer needs nothing but `cargo`. The same code runs as separate roles
//! in a cluster; only the store and bus implementations differ. The wiring
//! lives in the library (`src/lib.rs`); this is the command line around it.

use chatd::{cli, config, logging, serve, telemetry};
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
    let runtime = match runtime(config.runtime_threads) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chatd: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The trace exporter runs on the runtime, so it starts inside it.
    let telemetry = match runtime.block_on(async { telemetry::init(cli.roles()) }) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("chatd: invalid trace export settings: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    logging::init(config.log_format, telemetry.tracer());
    let outcome = runtime.block_on(async {
        let outcome = match cli.command {
            cli::Command::Migrate(_) => serve::migrate(&config).await,
            cli::Command::Config(_) => config.print(),
            cli::Command::Admin(args) => serve::admin(&config, &args.action).await,
            _ => serve::run(config, cli.roles()).await,
        };
        telemetry.shutdown().await;
        outcome
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

/// The multi-threaded runtime with `threads` workers, or tokio's default
/// count (one per CPU the process may use) when `threads` is 0. Even with
/// one worker it is the multi-threaded flavour: blocking work (password
/// hashing, SQLite) still gets its own threads, and `spawn` behaves alike.
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder.build()
}
