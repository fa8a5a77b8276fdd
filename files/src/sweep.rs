//! The sweep: removes the bytes, then the metadata, of files that no
//! message has carried for the grace period (uploads never sent, and the
//! attachments of deleted messages), and in a directory the half-written
//! objects of uploads whose process died (`Objects::remove_unfinished`).
//!
//! Every gateway sweeps; removals are idempotent, so several sweepers only
//! repeat each other's work. A file is checked for links once more right
//! before it is removed, so one attached meanwhile is kept.

use std::sync::Arc;
use std::time::Duration;

use chat_persistence::Store;
use chat_protocol::id::now_ms;

use crate::{Objects, metrics};

/// Files removed per store query.
const BATCH: u32 = 100;

/// Removes every file unreferenced for longer than `grace`; answers how
/// many were removed.
pub async fn sweep_once(store: &dyn Store, objects: &Objects, grace: Duration) -> usize {
    let before = now_ms().saturating_sub(grace.as_millis() as u64);
    let mut removed = 0;
    loop {
        let candidates = match store.unreferenced_files(before, BATCH).await {
            Ok(candidates) => candidates,
            Err(error) => {
                tracing::warn!(%error, "file sweep cannot list candidates");
                return removed;
            }
        };
        let mut progress = false;
        for file in &candidates {
            match store.file_rooms(file.id).await {
                Ok(rooms) if rooms.is_empty() => {}
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "file sweep cannot check links");
                    return removed;
                }
            }
            if let Err(error) = objects.delete(file.id).await {
                tracing::warn!(%error, file = %file.id, "file sweep cannot delete bytes");
                continue;
            }
            if let Err(error) = store.delete_file(file.id).await {
                tracing::warn!(%error, file = %file.id, "file sweep cannot delete metadata");
                continue;
            }
            metrics::SWEPT.inc();
            removed += 1;
            progress = true;
        }
        if candidates.len() < BATCH as usize || !progress {
            return removed;
        }
    }
}

/// Sweeps every `every`, for ever: the owner aborts the task to stop it (a
/// sweep cut short leaves nothing half-done that the next one cannot
/// finish).
pub async fn run(store: Arc<dyn Store>, objects: Objects, every: Duration, grace: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let removed = sweep_once(&*store, &objects, grace).await;
        if removed > 0 {
            tracing::info!(removed, "swept unused files");
        }
        let unfinished = objects.remove_unfinished(grace).await;
        if unfinished > 0 {
            tracing::info!(
                unfinished,
                "removed uploads left unfinished by a stopped process"
            );
        }
    }
}
