//! The group-commit writer: one OS thread owns the only write connection.
//!
//! SQLite admits one writer at a time, and most of a write's cost is its
//! commit. So every mutating call becomes a *job* (a closure over the open
//! transaction plus a reply channel) queued to this thread, which takes the
//! first job, drains whatever else is already waiting (up to `max_batch`
//! jobs in all), and runs the lot in ONE transaction:
//!
//! - each job runs inside its own `SAVEPOINT`, so a job that fails (say, a
//!   taken username) rolls back only its own changes; a job alone in its
//!   batch (the common case for a persistence worker) runs without one, as
//!   rolling back the transaction is rolling back the job;
//! - a job that panics is caught and answered with `Internal`; the thread
//!   lives on;
//! - callers are answered only after the `COMMIT`, so `Ok` means durable;
//!   if the commit fails, every job of the batch gets the error.
//!
//! `BEGIN IMMEDIATE` and `COMMIT` are retried while the file is busy (other
//! processes may share it) for up to the busy timeout.
//!
//! The queue is bounded so that a flood of writes pushes back on its callers
//! (they wait to enqueue) instead of growing memory without limit.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, DropBehavior, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};

use super::connection::retry_while_busy;
use crate::{Result, StoreError};

/// How the writer batches and waits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriterOptions {
    /// Most jobs committed together.
    pub max_batch: usize,
    /// Most jobs waiting for the thread before callers have to wait to enqueue.
    pub queue_capacity: usize,
    /// How long to keep retrying BEGIN/COMMIT while another process holds the file.
    pub busy_timeout: Duration,
}

/// The work of one job: runs inside the batch's transaction.
type Work<T> = Box<dyn FnOnce(&Transaction<'_>) -> Result<T> + Send>;

/// The async side of the writer: queues jobs and awaits their answers.
///
/// Dropping it (without [`Writer::close`]) lets the thread finish the queued
/// jobs and exit on its own.
pub(crate) struct Writer {
    /// `None` once closed. Senders are cloned out for each job so that the
    /// lock is never held across an await.
    queue: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    /// Becomes `true` when the thread has exited (its sender is dropped if it
    /// dies some other way, which also ends a wait).
    stopped: watch::Receiver<bool>,
}

impl Writer {
    /// Starts the writer thread on `connection`.
    pub(crate) fn spawn(connection: Connection, options: WriterOptions) -> Result<Writer> {
        let (sender, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let (stopped_sender, stopped) = watch::channel(false);
        let thread = WriterThread {
            connection,
            max_batch: options.max_batch.max(1),
            busy_timeout: options.busy_timeout,
        };
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                thread.run(receiver);
                stopped_sender.send_replace(true);
            })
            .map_err(|error| {
                StoreError::Internal(format!("cannot start the SQLite writer thread: {error}"))
            })?;
        Ok(Writer {
            queue: Mutex::new(Some(sender)),
            stopped,
        })
    }

    /// Runs `work` in the next group commit and answers its outcome once the
    /// batch is durable (or has failed).
    pub(crate) async fn execute<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let queue = self.sender().ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            work: Some(Box::new(work)),
            outcome: None,
            reply,
        });
        queue.send(job).await.map_err(|_| thread_gone())?;
        // Let close() see the queue drain while we wait for the answer.
        drop(queue);
        answer.await.map_err(|_| thread_gone())?
    }

    /// Whether [`Writer::close`] has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender().is_none()
    }

    /// Refuses new jobs, lets the thread commit every job already queued,
    /// and waits for it to exit. Safe to call more than once.
    pub(crate) async fn close(&self) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        // The thread exits once every sender is gone and the queue is empty;
        // callers still enqueueing hold clones, so their jobs are flushed too.
        drop(queue);
        let mut stopped = self.stopped.clone();
        // An error means the thread died without saying so: stopped as well.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }

    fn sender(&self) -> Option<mpsc::Sender<Box<dyn Job>>> {
        // The lock only guards an Option; a panic elsewhere cannot leave it
        // half-written.
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("store is closed".into())
}

fn thread_gone() -> StoreError {
    StoreError::Unavailable("the SQLite writer thread has stopped".into())
}

/// A queued job with its result type erased, so that one queue carries jobs
/// of every type.
trait Job: Send {
    /// Runs the work (at most once), keeping its outcome until the batch's
    /// fate is known. Answers whether the work succeeded.
    fn run(&mut self, transaction: &Transaction<'_>) -> bool;

    /// Answers the caller. `batch_failure` is set when the batch did not
    /// commit: it replaces a successful outcome (whose effects are gone);
    /// a job's own error is kept, as it explains more.
    fn answer(self: Box<Self>, batch_failure: Option<&StoreError>);
}

struct TypedJob<T> {
    work: Option<Work<T>>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static> Job for TypedJob<T> {
    fn run(&mut self, transaction: &Transaction<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // The transaction is rolled back to the job's savepoint after a
        // panic, so nothing the closure half-did survives it.
        let outcome = match catch_unwind(AssertUnwindSafe(|| work(transaction))) {
            Ok(outcome) => outcome,
            Err(panic) => {
                let reason = panic_message(panic.as_ref());
                tracing::error!(%reason, "a SQLite write job panicked");
                Err(StoreError::Internal(format!(
                    "write job panicked: {reason}"
                )))
            }
        };
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn answer(self: Box<Self>, batch_failure: Option<&StoreError>) {
        let outcome = match (self.outcome, batch_failure) {
            (Some(Err(own_error)), _) => Err(own_error),
            (Some(Ok(value)), None) => Ok(value),
            (_, Some(failure)) => Err(failure.clone()),
            (None, None) => Err(StoreError::Internal("write job was never run".into())),
        };
        // The caller may have stopped waiting (its future was dropped);
        // the write stands regardless.
        let _ = self.reply.send(outcome);
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// The thread side: owns the write connection.
struct WriterThread {
    connection: Connection,
    max_batch: usize,
    busy_timeout: Duration,
}

impl WriterThread {
    fn run(self, mut queue: mpsc::Receiver<Box<dyn Job>>) {
        // `None` once every sender is gone and the queue is empty: closed
        // (or dropped) and fully flushed.
        while let Some(first) = queue.blocking_recv() {
            let mut batch = VecDeque::with_capacity(self.max_batch.min(64));
            batch.push_back(first);
            while batch.len() < self.max_batch {
                match queue.try_recv() {
                    Ok(job) => batch.push_back(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
        tracing::debug!("SQLite writer thread stopped");
    }

    /// Runs `jobs` in as few transactions as possible and answers each one.
    /// Normally that is one transaction; only if SQLite aborts the whole
    /// transaction midway do the jobs not yet run go on to a fresh one.
    fn commit_batch(&self, mut jobs: VecDeque<Box<dyn Job>>) {
        while !jobs.is_empty() {
            let mut transaction = match retry_while_busy(self.busy_timeout, || {
                Transaction::new_unchecked(&self.connection, TransactionBehavior::Immediate)
            }) {
                Ok(transaction) => transaction,
                Err(error) => {
                    let failure = StoreError::from(error);
                    tracing::warn!(%failure, jobs = jobs.len(), "cannot begin a SQLite write");
                    for job in jobs {
                        job.answer(Some(&failure));
                    }
                    return;
                }
            };
            // We end the transaction ourselves, to retry COMMIT when busy.
            transaction.set_drop_behavior(DropBehavior::Ignore);

            let mut ran = Vec::with_capacity(jobs.len());
            let mut aborted = None;
            let mut lone_job_failed = false;
            if jobs.len() == 1 {
                // The transaction is the job's alone, so rolling it back is
                // rolling back the job: no savepoint, and so no sub-journal
                // (a copy of every page the job changes, spilled to a
                // temporary file past 64 KiB, as a batch of messages to many
                // rooms is).
                if let Some(mut job) = jobs.pop_front() {
                    lone_job_failed = !job.run(&transaction);
                    ran.push(job);
                }
            }
            while let Some(mut job) = jobs.pop_front() {
                let intact = run_in_savepoint(&transaction, job.as_mut());
                ran.push(job);
                if let Err(reason) = intact {
                    aborted = Some(reason);
                    break;
                }
            }

            let failure = match aborted {
                Some(reason) => {
                    rollback(&transaction);
                    Some(reason)
                }
                None if lone_job_failed => {
                    // The job answers its own error.
                    rollback(&transaction);
                    None
                }
                None => self.commit(&transaction).err(),
            };
            if let Some(failure) = &failure {
                tracing::warn!(%failure, jobs = ran.len(), "a SQLite group commit failed");
            }
            for job in ran {
                job.answer(failure.as_ref());
            }
        }
    }

    fn commit(&self, transaction: &Transaction<'_>) -> Result<()> {
        match retry_while_busy(self.busy_timeout, || transaction.execute_batch("COMMIT")) {
            Ok(()) => Ok(()),
            Err(error) => {
                // A COMMIT that failed (busy, or a deferred constraint) leaves
                // the transaction open.
                rollback(transaction);
                Err(error.into())
            }
        }
    }
}

/// Runs one job inside its own savepoint, releasing it if the job succeeded
/// and rolling back to it otherwise. Answers `Err` if the transaction as a
/// whole can no longer be trusted (SQLite rolled it back, or the savepoint
/// bookkeeping failed), in which case the batch must be abandoned.
fn run_in_savepoint(transaction: &Transaction<'_>, job: &mut dyn Job) -> Result<()> {
    transaction.execute_batch("SAVEPOINT write_job")?;
    let succeeded = job.run(transaction);
    if transaction.is_autocommit() {
        // Some errors (disk full, I/O) make SQLite roll back the whole
        // transaction, taking the earlier jobs' work with it.
        return Err(StoreError::Internal(
            "SQLite rolled back the whole transaction after a failed write".into(),
        ));
    }
    if succeeded {
        transaction.execute_batch("RELEASE write_job")?;
    } else {
        transaction.execute_batch("ROLLBACK TO write_job; RELEASE write_job")?;
    }
    Ok(())
}

fn rollback(transaction: &Transaction<'_>) {
    if transaction.is_autocommit() {
        return;
    }
    if let Err(error) = transaction.execute_batch("ROLLBACK") {
        tracing::error!(%error, "cannot roll back a failed SQLite write");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn writer_on_memory(setup: &str) -> Writer {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(setup).unwrap();
        Writer::spawn(
            connection,
            WriterOptions {
                max_batch: 64,
                queue_capacity: 64,
                busy_timeout: Duration::from_secs(1),
            },
        )
        .unwrap()
    }

    /// Blocks the writer thread (inside a job of its own batch) until the
    /// returned sender is dropped, so that the jobs queued meanwhile all land
    /// in the next batch.
    async fn hold_the_writer(writer: &Arc<Writer>) -> std::sync::mpsc::Sender<()> {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = oneshot::channel();
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .execute(move |_| {
                    let _ = started.send(());
                    let _ = released.recv();
                    Ok(())
                })
                .await
        });
        has_started.await.unwrap();
        release
    }

    async fn queued_jobs(writer: &Writer, expected: usize) {
        let queue = writer.sender().unwrap();
        while queue.max_capacity() - queue.capacity() < expected {
            tokio::task::yield_now().await;
        }
    }

    fn insert(value: i64) -> impl FnOnce(&Transaction<'_>) -> Result<()> + Send + 'static {
        move |transaction| {
            transaction.execute("INSERT INTO t (v) VALUES (?1)", [value])?;
            Ok(())
        }
    }

    fn stored(writer: &Arc<Writer>) -> impl std::future::Future<Output = Vec<i64>> {
        let writer = writer.clone();
        async move {
            writer
                .execute(|transaction| {
                    let mut statement = transaction.prepare("SELECT v FROM t ORDER BY v")?;
                    let values = statement
                        .query_map([], |row| row.get(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()?;
                    Ok(values)
                })
                .await
                .unwrap()
        }
    }

    #[tokio::test]
    async fn a_failing_or_panicking_job_rolls_back_only_itself() {
        let writer = Arc::new(writer_on_memory("CREATE TABLE t (v INTEGER UNIQUE)"));
        let release = hold_the_writer(&writer).await;

        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.execute(insert(1)).await }
        });
        queued_jobs(&writer, 1).await;
        let failing = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .execute(|transaction| {
                        transaction.execute("INSERT INTO t (v) VALUES (2)", [])?;
                        // Duplicate: fails after the job already changed something.
                        transaction.execute("INSERT INTO t (v) VALUES (1)", [])?;
                        Ok(())
                    })
                    .await
            }
        });
        queued_jobs(&writer, 2).await;
        let panicking = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .execute(|transaction| -> Result<()> {
                        transaction.execute("INSERT INTO t (v) VALUES (3)", [])?;
                        panic!("boom");
                    })
                    .await
            }
        });
        queued_jobs(&writer, 3).await;
        let last = tokio::spawn({
            let writer = writer.clone();
            async move { writer.execute(insert(4)).await }
        });
        queued_jobs(&writer, 4).await;
        drop(release);

        assert!(first.await.unwrap().is_ok());
        assert!(matches!(
            failing.await.unwrap(),
            Err(StoreError::Internal(_))
        ));
        assert!(
            matches!(panicking.await.unwrap(), Err(StoreError::Internal(m)) if m.contains("boom"))
        );
        assert!(last.await.unwrap().is_ok());
        assert_eq!(stored(&writer).await, vec![1, 4]);
    }

    #[tokio::test]
    async fn a_job_alone_in_its_batch_that_fails_or_panics_leaves_nothing() {
        let writer = Arc::new(writer_on_memory("CREATE TABLE t (v INTEGER UNIQUE)"));
        writer.execute(insert(1)).await.unwrap();

        let failed = writer
            .execute(|transaction| {
                transaction.execute("INSERT INTO t (v) VALUES (2)", [])?;
                // Duplicate: fails after the job already changed something.
                transaction.execute("INSERT INTO t (v) VALUES (1)", [])?;
                Ok(())
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Internal(_))), "{failed:?}");
        let panicked = writer
            .execute(|transaction| -> Result<()> {
                transaction.execute("INSERT INTO t (v) VALUES (3)", [])?;
                panic!("boom");
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Internal(m)) if m.contains("boom")));

        writer.execute(insert(4)).await.unwrap();
        assert_eq!(stored(&writer).await, vec![1, 4]);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_job_of_the_batch() {
        // A deferred foreign key is only checked at COMMIT.
        let writer = Arc::new(writer_on_memory(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE t (v INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
             INSERT INTO parent (id) VALUES (1);",
        ));
        let release = hold_the_writer(&writer).await;
        let good = tokio::spawn({
            let writer = writer.clone();
            async move { writer.execute(insert(1)).await }
        });
        queued_jobs(&writer, 1).await;
        let dangling = tokio::spawn({
            let writer = writer.clone();
            async move { writer.execute(insert(99)).await }
        });
        queued_jobs(&writer, 2).await;
        drop(release);

        assert!(good.await.unwrap().is_err());
        assert!(dangling.await.unwrap().is_err());
        assert_eq!(stored(&writer).await, Vec::<i64>::new());
        // The writer still works afterwards.
        writer.execute(insert(1)).await.unwrap();
        assert_eq!(stored(&writer).await, vec![1]);
    }

    #[tokio::test]
    async fn close_flushes_queued_jobs_then_refuses() {
        let writer = Arc::new(writer_on_memory("CREATE TABLE t (v INTEGER)"));
        let release = hold_the_writer(&writer).await;
        let pending: Vec<_> = (0..10)
            .map(|value| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.execute(insert(value)).await })
            })
            .collect();
        queued_jobs(&writer, 10).await;
        let closing = tokio::spawn({
            let writer = writer.clone();
            async move { writer.close().await }
        });
        while !writer.is_closed() {
            tokio::task::yield_now().await;
        }
        drop(release);
        closing.await.unwrap();
        for job in pending {
            assert!(job.await.unwrap().is_ok());
        }
        assert!(matches!(
            writer.execute(insert(11)).await,
            Err(StoreError::Unavailable(m)) if m == "store is closed"
        ));
        writer.close().await;
    }
}
