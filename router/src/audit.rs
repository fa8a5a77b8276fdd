//! The audit log's writer: events are queued without waiting and written
//! by a task of their own in batches, off every request's path.
//!
//! Recording never blocks (a login must not wait for the audit table):
//! the queue is bounded, and when it is full the event is dropped and
//! counted (`chat_audit_dropped_total`). A batch that cannot be written is
//! retried once, then dropped and counted (`chat_audit_failed_total`).
//! The same task prunes events older than the retention (stores that expire
//! rows by themselves, like ScyllaDB, make that a no-op). A graceful
//! shutdown writes what is queued ([`AuditLog::shutdown`]); a crash loses
//! the events still queued.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chat_persistence::{AuditEvent, Store};
use prometheus::{IntCounter, register_int_counter};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// Events dropped because the queue was full.
pub static DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_audit_dropped_total",
        "Audit events dropped because the audit queue was full"
    )
    .expect("metric names are valid and registered once")
});

/// Events lost because the store refused their batch twice.
pub static FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_audit_failed_total",
        "Audit events lost because the store could not write their batch"
    )
    .expect("metric names are valid and registered once")
});

/// Events written.
pub static WRITTEN: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("chat_audit_written_total", "Audit events written")
        .expect("metric names are valid and registered once")
});

/// Registers these counters at zero.
pub(crate) fn register() {
    LazyLock::force(&DROPPED);
    LazyLock::force(&FAILED);
    LazyLock::force(&WRITTEN);
}

/// Text a client chose, as the audit log records it: trimmed, without
/// control characters (admins read it, maybe in a terminal: no escape
/// sequences), at most `max_chars` characters.
pub(crate) fn client_text(raw: &str, max_chars: usize) -> String {
    raw.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}

/// Most events in one write.
const BATCH: usize = 256;
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How the audit log is kept.
#[derive(Clone, Copy, Debug)]
pub struct AuditSettings {
    /// Events waiting to be written; beyond it they are dropped.
    pub queue: usize,
    /// How long events are kept.
    pub retention: Duration,
}

impl Default for AuditSettings {
    fn default() -> AuditSettings {
        AuditSettings {
            queue: 10_000,
            retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// The sending end of the audit writer. Cheap to clone.
#[derive(Clone, Default)]
pub struct AuditLog {
    sender: Option<mpsc::Sender<AuditEvent>>,
    writer: Arc<Writer>,
}

/// The writer task and how to stop it.
#[derive(Default)]
struct Writer {
    stop: Notify,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl AuditLog {
    /// No writer: every event is counted as dropped (a process that was not
    /// given audit settings).
    pub fn disabled() -> AuditLog {
        AuditLog::default()
    }

    /// Starts the writer on the current runtime. It ends, after writing what
    /// is queued, when every clone of the answer is dropped.
    pub fn spawn(store: Arc<dyn Store>, settings: AuditSettings) -> AuditLog {
        let (sender, receiver) = mpsc::channel(settings.queue.max(1));
        let writer = Arc::new(Writer::default());
        let task = tokio::spawn(write(store, receiver, settings.retention, writer.clone()));
        *writer.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        AuditLog {
            sender: Some(sender),
            writer,
        }
    }

    /// Refuses new events, writes the queued ones and waits for that
    /// (graceful shutdown, before the store is closed).
    pub async fn shutdown(&self) {
        let task = self
            .writer
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            self.writer.stop.notify_one();
            if let Err(error) = task.await {
                tracing::error!(%error, "the audit writer failed");
            }
        }
    }

    /// Queues an event without waiting.
    pub fn record(&self, event: AuditEvent) {
        let queued = self
            .sender
            .as_ref()
            .is_some_and(|sender| sender.try_send(event).is_ok());
        if !queued {
            DROPPED.inc();
        }
    }
}

async fn write(
    store: Arc<dyn Store>,
    mut events: mpsc::Receiver<AuditEvent>,
    retention: Duration,
    writer: Arc<Writer>,
) {
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            received = events.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
                write_batch(&*store, &batch, retention_ms).await;
                batch.clear();
            }
            () = writer.stop.notified() => {
                // Later `record`s fail (and are counted); what is queued
                // is written.
                events.close();
                while events.recv_many(&mut batch, BATCH).await > 0 {
                    write_batch(&*store, &batch, retention_ms).await;
                    batch.clear();
                }
                return;
            }
            _ = prune.tick() => {
                let before = chat_protocol::id::now_ms().saturating_sub(retention_ms);
                match store.prune_audit(before).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "pruned old audit events"),
                    Err(error) => tracing::warn!(%error, "cannot prune audit events"),
                }
            }
        }
    }
}

async fn write_batch(store: &dyn Store, batch: &[AuditEvent], retention_ms: u64) {
    for attempt in 0..2 {
        match store.insert_audit(batch, retention_ms).await {
            Ok(()) => {
                WRITTEN.inc_by(batch.len() as u64);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, attempt, events = batch.len(), "cannot write audit events");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    FAILED.inc_by(batch.len() as u64);
}

#[cfg(test)]
mod tests {
    use chat_persistence::AuditFilter;
    use chat_persistence::sqlite::{SqliteOptions, SqliteStore};
    use chat_protocol::Id;

    use super::*;

    fn event(id: u64) -> AuditEvent {
        AuditEvent {
            id: Id(id),
            at: chat_protocol::id::now_ms(),
            kind: "login".into(),
            actor_id: Some(Id(1)),
            target_id: None,
            room_id: None,
            ip: None,
            detail: None,
        }
    }

    #[tokio::test]
    async fn queued_events_are_written_by_shutdown_and_later_ones_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("chat.db"), SqliteOptions::default()).unwrap(),
        );
        let log = AuditLog::spawn(store.clone(), AuditSettings::default());
        for id in 1..=300 {
            log.record(event(id));
        }
        log.shutdown().await;
        let dropped = DROPPED.get();
        log.record(event(1000));
        // `>`: other tests count drops on the same global counter.
        assert!(
            DROPPED.get() > dropped,
            "after shutdown, events are dropped"
        );
        let filter = AuditFilter {
            before: None,
            limit: 100,
            kind: None,
            user: Some(Id(1)),
            since: 0,
        };
        let mut seen = 0;
        let mut page = filter.clone();
        loop {
            let (events, more) = store.audit_events(page.clone()).await.unwrap();
            seen += events.len();
            if !more {
                break;
            }
            page.before = events.last().map(|e| e.id);
        }
        assert_eq!(seen, 300, "every queued event was written");
    }

    #[test]
    fn a_disabled_log_counts_what_it_drops() {
        let dropped = DROPPED.get();
        AuditLog::disabled().record(event(1));
        assert!(DROPPED.get() > dropped);
    }
}
