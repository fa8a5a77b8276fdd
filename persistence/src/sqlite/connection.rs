//! Opening and configuring SQLite connections, and waiting out a busy file.
//!
//! Every connection gets `busy_timeout`, because other processes may share
//! the file and SQLite fails at once on a held lock unless told to wait.
//!
//! The write connection also switches the file to WAL (readers never block
//! the writer nor the other way round) with `synchronous=FULL` by default:
//! an fsync per commit, and commits are grouped by the writer thread, so an
//! acknowledged message survives a power loss or an OS crash. `NORMAL`
//! (only by configuration, `sqlite.synchronous`) skips that fsync: nothing
//! is lost when the *process* crashes (the WAL is in the OS page cache and
//! is replayed on the next open), but a power loss or an OS crash can lose
//! the last acknowledged commits.
//!
//! Read connections are `query_only`, so a read path can never write behind
//! the writer thread's back.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::errors::is_busy;
use crate::{Result, StoreError};

/// Opens the one write connection: WAL, `synchronous` as given, foreign keys.
pub(crate) fn open_writer(
    path: &Path,
    busy_timeout: Duration,
    synchronous: super::Synchronous,
) -> Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(busy_timeout)?;
    // Switching to WAL needs a moment of exclusive access, which another
    // process opening the file at the same time may hold.
    let mode: String = retry_while_busy(busy_timeout, || {
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
    })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "SQLite refused WAL mode for {} (journal_mode is {mode})",
            path.display()
        )));
    }
    connection.pragma_update(None, "synchronous", synchronous.pragma())?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(connection)
}

/// Configures a pooled read connection.
pub(crate) fn configure_reader(
    connection: &Connection,
    busy_timeout: Duration,
) -> rusqlite::Result<()> {
    connection.busy_timeout(busy_timeout)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.pragma_update(None, "query_only", "ON")
}

/// Runs `operation` until it succeeds, fails with something other than
/// SQLITE_BUSY/LOCKED, or `timeout` has passed.
///
/// The connection's busy handler already waits inside most calls; this loop
/// covers the cases where SQLite answers BUSY without consulting it (e.g.
/// while another process recovers the WAL, or a deadlock-avoiding BUSY on a
/// lock upgrade). A single attempt may itself wait up to the busy timeout, so
/// the worst case is about twice `timeout`.
pub(crate) fn retry_while_busy<T>(
    timeout: Duration,
    mut operation: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    const FIRST_PAUSE: Duration = Duration::from_millis(1);
    const LONGEST_PAUSE: Duration = Duration::from_millis(50);
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        match operation() {
            Err(error) if is_busy(&error) && Instant::now() + pause < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    #[test]
    fn the_writer_is_synchronous_full_unless_configured_normal() {
        let dir = tempfile::tempdir().unwrap();
        let setting = |synchronous, file: &str| -> i64 {
            let connection =
                open_writer(&dir.path().join(file), Duration::from_secs(1), synchronous).unwrap();
            connection
                .pragma_query_value(None, "synchronous", |row| row.get(0))
                .unwrap()
        };
        // SQLite answers 2 for FULL, 1 for NORMAL.
        assert_eq!(setting(super::super::Synchronous::default(), "a.db"), 2);
        assert_eq!(setting(super::super::Synchronous::Normal, "b.db"), 1);
    }

    #[test]
    fn retries_busy_until_success() {
        let mut attempts = 0;
        let outcome = retry_while_busy(Duration::from_secs(1), || {
            attempts += 1;
            if attempts < 3 {
                Err(rusqlite::Error::SqliteFailure(
                    ffi::Error::new(ffi::SQLITE_BUSY),
                    None,
                ))
            } else {
                Ok(attempts)
            }
        });
        assert_eq!(outcome.ok(), Some(3));
    }

    #[test]
    fn gives_up_on_other_errors_and_after_the_timeout() {
        let mut attempts = 0;
        let outcome: rusqlite::Result<()> = retry_while_busy(Duration::from_secs(1), || {
            attempts += 1;
            Err(rusqlite::Error::InvalidQuery)
        });
        assert!(outcome.is_err());
        assert_eq!(attempts, 1);

        let started = Instant::now();
        let outcome: rusqlite::Result<()> = retry_while_busy(Duration::from_millis(30), || {
            Err(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_BUSY),
                None,
            ))
        });
        assert!(outcome.is_err_and(|e| is_busy(&e)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
