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
//! store. Without the variable, every case prints a skip notice and passes,
//! so CI (which has no ScyllaDB) builds and runs this file all the same.

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

/// The configured nodes, or `None` (with a notice) when there are none.
fn test_nodes() -> Option<Vec<String>> {
    let nodes: Vec<String> = std::env::var(NODES_VARIABLE)
        .ok()?
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

/// Says once per run, visibly, that the suite did not run: written to the
/// stderr handle directly, because the test harness captures `eprintln!`
/// of passing tests.
fn announce_skip() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: {NODES_VARIABLE} is not set: the ScyllaDB store conformance suite is \
             SKIPPED (its cases pass without running). Set it to host:port of a live \
             ScyllaDB to run them; see docs/scylla.md."
        );
    });
}

/// A store on the test cluster (one session per case: each case runs on its
/// own runtime, which a session's background tasks are tied to).
async fn scylla_store() -> Option<StoreUnderTest> {
    let Some(nodes) = test_nodes() else {
        announce_skip();
        return None;
    };
    let options = options(nodes);
    let mut migrated = MIGRATED.lock().await;
    let store = if *migrated {
        ScyllaStore::connect(options).await
    } else {
        ScyllaStore::migrate(options).await
    }
    .expect("connect to the test cluster named by CHAT_TEST_SCYLLA_NODES");
    *migrated = true;
    drop(migrated);
    Some(StoreUnderTest::new(Arc::new(store)))
}

mod conformance {
    chat_persistence::store_conformance_tests!(super::scylla_store);
}

// ----- ScyllaDB-specific ----------------------------------------------------

/// Connecting with another bucket window than the keyspace's is refused:
/// it would re-address every message.
#[tokio::test]
async fn a_different_bucket_window_is_refused() {
    let Some(nodes) = test_nodes() else {
        announce_skip();
        return;
    };
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
