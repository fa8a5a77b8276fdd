//! Opening the store this process's configuration names, and closing it so
//! that nothing queued is lost.

use std::sync::Arc;

use anyhow::Context;
use chat_persistence::Store;
use chat_persistence::scylla::ScyllaStore;
use chat_persistence::sqlite::{SqliteOptions, SqliteStore};

use crate::config::Config;

/// The store of this process, with what it takes to close it cleanly.
pub struct StoreHandle {
    store: Arc<dyn Store>,
    sqlite: Option<Arc<SqliteStore>>,
}

impl StoreHandle {
    /// Opens the configured store: ScyllaDB when `scylla.nodes` is set
    /// (creating missing tables if `scylla.create_schema`), else the
    /// embedded SQLite file in the data directory (always migrated). Several
    /// processes on one host may share that file (WAL, busy timeout); it
    /// does not span hosts.
    pub async fn open(config: &Config) -> anyhow::Result<StoreHandle> {
        StoreHandle::open_scylla_or_sqlite(config, config.scylla.create_schema).await
    }

    /// Opens the configured store, creating or upgrading its schema.
    pub async fn migrate(config: &Config) -> anyhow::Result<StoreHandle> {
        StoreHandle::open_scylla_or_sqlite(config, true).await
    }

    async fn open_scylla_or_sqlite(
        config: &Config,
        create_schema: bool,
    ) -> anyhow::Result<StoreHandle> {
        if let Some(options) = config.scylla.options()? {
            let (nodes, keyspace) = (options.nodes.clone(), options.keyspace.clone());
            let scylla = if create_schema {
                ScyllaStore::migrate(options).await
            } else {
                ScyllaStore::connect(options).await
            }
            .with_context(|| format!("cannot open the ScyllaDB store on {nodes:?}"))?;
            tracing::info!(?nodes, %keyspace, "using the ScyllaDB store");
            return Ok(StoreHandle {
                store: Arc::new(scylla),
                sqlite: None,
            });
        }
        tracing::info!(path = %config.sqlite_path().display(), "using the SQLite store");
        let options = SqliteOptions {
            read_pool_size: config.sqlite.read_pool_size,
            max_batch: config.sqlite.max_batch,
            queue_capacity: config.sqlite.queue_capacity,
            synchronous: config.sqlite.synchronous,
            ..SqliteOptions::default()
        };
        if config.sqlite.synchronous == chat_persistence::sqlite::Synchronous::Normal {
            tracing::warn!(
                "sqlite.synchronous = normal: a power loss or OS crash can lose acknowledged messages"
            );
        }
        let path = config.sqlite_path();
        let opened = tokio::task::spawn_blocking(move || {
            SqliteStore::open(&path, options)
                .with_context(|| format!("cannot open {}", path.display()))
        })
        .await
        .context("opening the store panicked")??;
        let sqlite = Arc::new(opened);
        Ok(StoreHandle {
            store: sqlite.clone(),
            sqlite: Some(sqlite),
        })
    }

    /// The store, to share among the roles, every operation timed
    /// (`chat_store_operation_duration_seconds`).
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::new(chat_persistence::metered::Metered::new(self.store.clone()))
    }

    /// Whether several processes can write to this store at once
    /// (ScyllaDB); a SQLite file takes one writer at a time.
    pub fn takes_parallel_writers(&self) -> bool {
        self.sqlite.is_none()
    }

    /// Flushes every queued write.
    pub async fn close(self) {
        if let Some(sqlite) = self.sqlite
            && tokio::time::timeout(std::time::Duration::from_secs(30), sqlite.close())
                .await
                .is_err()
        {
            tracing::error!("the store did not flush in time");
        }
    }
}
