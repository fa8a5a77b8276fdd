//! `chatd serve` and `chatd migrate`: wiring the roles together.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_gateway::{AppState, HttpLimits, Tokens};
use chat_persistence::sqlite::{SqliteOptions, SqliteStore};
use chat_protocol::IdGenerator;
use chat_router::Chat;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::secrets;

/// Runs every role in this process until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let secret = secrets::jwt_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
    let store = Arc::new(open_store(&config)?);
    let chat = Chat::new(store.clone(), Arc::new(IdGenerator::new(config.worker_id)));
    let state = AppState {
        chat,
        tokens: Arc::new(Tokens::hs256(&secret, config.token_ttl_secs)),
    };
    let app = chat_gateway::app(
        state,
        HttpLimits {
            max_body_bytes: config.limits.max_body_bytes,
        },
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(data_dir = %config.data_dir.display(), "listening on http://{address}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("draining: flushing pending writes");
    if tokio::time::timeout(Duration::from_secs(30), store.close())
        .await
        .is_err()
    {
        tracing::error!("the store did not flush within 30 s");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Applies the schema and exits.
pub fn migrate(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    open_store(config)?;
    tracing::info!(path = %config.sqlite_path().display(), "schema is up to date");
    Ok(())
}

fn open_store(config: &Config) -> anyhow::Result<SqliteStore> {
    let options = SqliteOptions {
        read_pool_size: config.sqlite.read_pool_size,
        max_batch: config.sqlite.max_batch,
        queue_capacity: config.sqlite.queue_capacity,
        ..SqliteOptions::default()
    };
    let path = config.sqlite_path();
    SqliteStore::open(&path, options).with_context(|| format!("cannot open {}", path.display()))
}

/// Resolves on SIGTERM (Kubernetes, systemd) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
