//! The sweep: removes the bytes, then the metadata, of files that no
//! message has carried for the grace period (uploads never sent, and the
//! attachments of deleted messages), and the objects that no metadata
//! names: in a directory the half-written objects of uploads whose
//! process died (`Objects::remove_unfinished`), and in either backing the
//! objects of uploads whose process died before it wrote their metadata
//! ([`remove_unrecorded`]).
//!
//! Every gateway sweeps; removals are idempotent, so several sweepers only
//! repeat each other's work. A file is checked for links once more right
//! before it is removed, so one attached meanwhile is kept.
//!
//! Finding objects that no metadata names means listing the store, which
//! in a bucket is billed per thousand keys; so each sweep looks at one page
//! of [`LEFTOVERS_PAGE`] objects, the next sweep at the next page, and a
//! process starts at a random place, so that the pass reaches every object
//! however often processes restart.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chat_persistence::Store;
use chat_protocol::id::now_ms;
use object_store::path::Path;

use crate::listing::random_start;
use crate::{Objects, metrics};

/// Files removed per store query.
const BATCH: u32 = 100;
/// Objects one sweep checks for metadata: one bucket listing request.
pub const LEFTOVERS_PAGE: usize = 1000;

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

/// Removes the objects, among one page of [`LEFTOVERS_PAGE`] from `after`
/// (from the first with `None`), that no file's metadata names and that
/// nothing has written for `grace`, sparing this process's uploads in
/// progress. Answers how many it removed and where the next page starts
/// (`None`: from the first again); a page it could not finish is tried
/// again from the same place.
///
/// The grace is what makes this safe beside uploads in other processes:
/// an upload writes its metadata right after its bytes, so bytes that
/// have had no metadata for a day never will.
pub async fn remove_unrecorded(
    store: &dyn Store,
    objects: &Objects,
    grace: Duration,
    after: Option<Path>,
) -> (usize, Option<Path>) {
    let before = now_ms().saturating_sub(grace.as_millis() as u64);
    let page = match objects.list_page(after.as_ref(), LEFTOVERS_PAGE).await {
        Ok(page) => page,
        Err(error) => {
            tracing::warn!(%error, "file sweep cannot list objects");
            return (0, after);
        }
    };
    // A file's bytes and thumbnail are removed together: once per page.
    let mut removed = HashSet::new();
    for object in page.objects {
        if object.in_progress || object.modified_ms >= before || removed.contains(&object.file) {
            continue;
        }
        match store.file(object.file).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "file sweep cannot look up metadata");
                return (removed.len(), after);
            }
        }
        match objects.delete(object.file).await {
            Ok(()) => {
                metrics::LEFTOVERS
                    .with_label_values(&[metrics::leftover::UNRECORDED])
                    .inc();
                removed.insert(object.file);
            }
            Err(error) => {
                tracing::warn!(%error, file = %object.file, "file sweep cannot delete unrecorded bytes");
            }
        }
    }
    (removed.len(), page.next)
}

/// Sweeps every `every`, for ever: the owner aborts the task to stop it (a
/// sweep cut short leaves nothing half-done that the next one cannot
/// finish).
pub async fn run(store: Arc<dyn Store>, objects: Objects, every: Duration, grace: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leftovers_after = Some(random_start());
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
        let (unrecorded, next) =
            remove_unrecorded(&*store, &objects, grace, leftovers_after.take()).await;
        leftovers_after = next;
        if unrecorded > 0 {
            tracing::info!(
                unrecorded,
                "removed the bytes of uploads whose metadata was never written"
            );
        }
    }
}
