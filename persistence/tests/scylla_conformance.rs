//! The store conformance suite against [`ScyllaStore`], when a cluster is
//! named by `CHAT_TEST_SCYLLA_NODES` (comma-separated `host:port`):
//!
//! ```text
//! docker run --rm -d -p 9042:9042 scylladb/scylla --smp 1
//! CHAT_TEST_SCYLLA_NODES=127.0.0.1:9042 cargo test -p chat-persistence --test scylla_conformance
//! ```
//!
//! Every case runs in the shared keyspace `chat_test` (replication 1): the
//! suite makes its own users, rooms and ids and never assumes an empty
//! store. Without the variable when compiling (see `build.rs`), the cases
//! that need a cluster are marked ignored, so that `cargo test` reports them
//! as ignored, with the reason, rather than as passed; CI (which has no
//! ScyllaDB) still builds this file.

use std::sync::Arc;

use chat_persistence::conformance::StoreUnderTest;
use chat_persistence::scylla::{Replication, ScyllaOptions, ScyllaStore};

/// The variable naming the test cluster.
const NODES_VARIABLE: &str = "CHAT_TEST_SCYLLA_NODES";

/// Whether this process has created the schema yet. Tokio's mutex works
/// across the per-test runtimes; the schema is created once per process.
static MIGRATED: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);

fn options(nodes: Vec<String>) -> ScyllaOptions {
    ScyllaOptions {
        nodes,
        keyspace: "chat_test".into(),
        replication: Replication::Simple { factor: 1 },
        ..ScyllaOptions::default()
    }
}

/// The configured nodes. The cases that call this are ignored unless the
/// variable was set at build time; run anyway (`--include-ignored`), they
/// fail rather than pass without a cluster.
fn test_nodes() -> Vec<String> {
    let nodes: Vec<String> = std::env::var(NODES_VARIABLE)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        !nodes.is_empty(),
        "{NODES_VARIABLE} is not set: name a live ScyllaDB (host:port, comma-separated)"
    );
    nodes
}

/// A store on the test cluster (one session per case: each case runs on its
/// own runtime, which a session's background tasks are tied to).
async fn scylla_store() -> StoreUnderTest {
    let options = options(test_nodes());
    let mut migrated = MIGRATED.lock().await;
    let store = if *migrated {
        ScyllaStore::connect(options).await
    } else {
        ScyllaStore::migrate(options).await
    }
    .expect("connect to the test cluster named by CHAT_TEST_SCYLLA_NODES");
    *migrated = true;
    drop(migrated);
    StoreUnderTest::new(Arc::new(store))
}

mod conformance {
    chat_persistence::store_conformance_tests!(
        super::scylla_store,
        #[cfg_attr(
            not(chat_test_scylla),
            ignore = "needs a live ScyllaDB: set CHAT_TEST_SCYLLA_NODES=host:port"
        )]
    );
}

// ----- ScyllaDB-specific ----------------------------------------------------

/// Connecting with another bucket window than the keyspace's is refused:
/// it would re-address every message.
#[tokio::test]
#[cfg_attr(
    not(chat_test_scylla),
    ignore = "needs a live ScyllaDB: set CHAT_TEST_SCYLLA_NODES=host:port"
)]
async fn a_different_bucket_window_is_refused() {
    let nodes = test_nodes();
    {
        let mut migrated = MIGRATED.lock().await;
        if !*migrated {
            ScyllaStore::migrate(options(nodes.clone()))
                .await
                .expect("migrate the test keyspace");
            *migrated = true;
        }
    }
    let other_window = ScyllaOptions {
        bucket_window: std::time::Duration::from_secs(3600),
        ..options(nodes)
    };
    let refused = ScyllaStore::connect(other_window).await;
    assert!(
        matches!(refused, Err(chat_persistence::StoreError::Internal(_))),
        "{refused:?}"
    );
}

/// Options are checked before anything is sent.
#[tokio::test]
async fn invalid_options_are_refused_without_a_cluster() {
    let no_nodes = ScyllaStore::connect(ScyllaOptions::default()).await;
    assert!(matches!(
        no_nodes,
        Err(chat_persistence::StoreError::Internal(_))
    ));
    let bad_keyspace = ScyllaStore::connect(ScyllaOptions {
        keyspace: "chat; DROP KEYSPACE chat".into(),
        ..options(vec!["127.0.0.1:9042".into()])
    })
    .await;
    assert!(matches!(
        bad_keyspace,
        Err(chat_persistence::StoreError::Internal(_))
    ));
}
