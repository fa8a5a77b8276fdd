//! The loop every work-stream consumer runs: take over entries a dead
//! consumer left pending, read new ones, hand them to the role, acknowledge
//! them once handled.
//!
//! Acknowledging only after the handler returns is what makes a consumer's
//! crash harmless: whatever it held stays pending and is claimed by another
//! consumer after `claim_idle`. On shutdown the loop drains: it keeps
//! reading, without waiting, until the stream has nothing more for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::{Entry, EntryId, WorkQueue};

/// How long one read waits for new entries.
const READ_WAIT: Duration = Duration::from_millis(500);
/// Pause after a failed read, so an unreachable backend is not hammered.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Which stream a consumer reads, and how.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    pub stream: &'static str,
    pub group: &'static str,
    /// This consumer's name in the group; unique per process.
    pub consumer: String,
    /// Most entries handed to the handler at once.
    pub batch: usize,
    /// Entries pending this long with another consumer are taken over.
    pub claim_idle: Duration,
}

/// Runs a consumer until `shutdown` turns true and the stream is drained.
/// `handle` gets each batch in stream order; its entries are acknowledged
/// when it returns.
pub async fn consume<F, Fut>(
    queue: Arc<dyn WorkQueue>,
    options: ConsumerOptions,
    mut shutdown: watch::Receiver<bool>,
    mut handle: F,
) where
    F: FnMut(Vec<Entry>) -> Fut,
    Fut: Future<Output = ()>,
{
    let ConsumerOptions {
        stream,
        group,
        consumer,
        batch,
        claim_idle,
    } = &options;
    let mut last_claim = tokio::time::Instant::now();
    loop {
        let draining = *shutdown.borrow();
        let mut entries = Vec::new();
        if last_claim.elapsed() >= *claim_idle {
            last_claim = tokio::time::Instant::now();
            match queue
                .claim_stale(stream, group, consumer, *claim_idle, *batch)
                .await
            {
                Ok(claimed) => entries = claimed,
                Err(error) => tracing::warn!(%error, stream, "cannot claim stale entries"),
            }
        }
        if entries.is_empty() {
            let wait = if draining { Duration::ZERO } else { READ_WAIT };
            tokio::select! {
                read = queue.read(stream, group, consumer, *batch, wait) => match read {
                    Ok(read) => entries = read,
                    Err(error) => {
                        tracing::warn!(%error, stream, "cannot read");
                        if draining {
                            break;
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                },
                // A dropped sender counts as a shutdown request too.
                _ = shutdown.changed(), if !draining => continue,
            }
            if entries.is_empty() {
                if draining {
                    break;
                }
                continue;
            }
        }
        let ids: Vec<EntryId> = entries.iter().map(|e| e.id.clone()).collect();
        handle(entries).await;
        if let Err(error) = queue.ack(stream, group, &ids).await {
            tracing::warn!(%error, stream, "cannot acknowledge entries");
        }
    }
    tracing::info!(stream, consumer = %consumer, "consumer stopped");
}
