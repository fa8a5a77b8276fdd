//! How SQLite failures become [`StoreError`]s.
//!
//! Callers of the store only need to know whether retrying may help
//! (`Unavailable`), whether a uniqueness rule refused the write (`Conflict`,
//! and only where the trait promises it, so the methods that promise it map
//! unique violations themselves), or whether something is wrong (`Internal`).
//! Classifying in one place makes every method answer alike, and the `From`
//! conversions let the SQL code use `?` on rusqlite results.

use rusqlite::ErrorCode;
use rusqlite::ffi;

use crate::StoreError;

/// Whether SQLite refused because another connection (possibly in another
/// process) holds a lock.
pub(crate) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Whether a UNIQUE or PRIMARY KEY constraint refused the write.
pub(crate) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error().is_some_and(|e| {
        e.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
            || e.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    })
}

/// Whether the PRIMARY KEY (rather than another UNIQUE rule) refused the write.
pub(crate) fn is_primary_key_violation(error: &rusqlite::Error) -> bool {
    error
        .sqlite_error()
        .is_some_and(|e| e.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        match error.sqlite_error_code() {
            // Lock contention beyond busy_timeout, or a file we cannot open
            // (yet): the database is there but not usable right now.
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen) => {
                StoreError::Unavailable(format!("sqlite: {error}"))
            }
            _ => StoreError::Internal(format!("sqlite: {error}")),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    /// r2d2 only fails when no read connection could be had within the pool's
    /// timeout: every reader is busy, or new connections cannot be opened.
    fn from(error: r2d2::Error) -> StoreError {
        StoreError::Unavailable(format!("no SQLite read connection available: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(extended_code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(extended_code), None)
    }

    #[test]
    fn busy_and_locked_are_unavailable() {
        for code in [ffi::SQLITE_BUSY, ffi::SQLITE_LOCKED, ffi::SQLITE_CANTOPEN] {
            assert!(matches!(
                StoreError::from(failure(code)),
                StoreError::Unavailable(_)
            ));
        }
        assert!(is_busy(&failure(ffi::SQLITE_BUSY)));
        assert!(!is_busy(&failure(ffi::SQLITE_CONSTRAINT_UNIQUE)));
    }

    #[test]
    fn constraint_violations_are_internal_unless_mapped() {
        let unique = failure(ffi::SQLITE_CONSTRAINT_UNIQUE);
        assert!(is_unique_violation(&unique));
        assert!(!is_primary_key_violation(&unique));
        assert!(is_primary_key_violation(&failure(
            ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )));
        assert!(!is_unique_violation(&failure(
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY
        )));
        assert!(matches!(StoreError::from(unique), StoreError::Internal(_)));
    }
}
