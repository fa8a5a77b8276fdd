//! How the driver's errors become [`StoreError`]s.
//!
//! - Anything that says "the cluster could not answer in time or at all"
//!   (no connection, timeouts, not enough replicas, overload) is
//!   `Unavailable`: retrying later may help, and the gateway answers 503.
//! - A lightweight transaction that was not applied is not an error here;
//!   the callers turn it into `Conflict` where the trait says so.
//! - Everything else (a bad statement, a row that does not decode, a
//!   missing keyspace) is `Internal`.
//!
//! A write whose outcome is unknown (it timed out after reaching replicas)
//! is told apart by [`is_uncertain`], so that lightweight transactions can
//! find out what happened with a serial read instead of guessing.

use scylla::errors::{
    DbError, DeserializationError, ExecutionError, IntoRowsResultError, MaybeFirstRowError,
    NewSessionError, NextPageError, NextRowError, PagerExecutionError, PrepareError,
    RequestAttemptError, RequestError, RowsError, TypeCheckError, UseKeyspaceError,
};

use crate::StoreError;

/// `error`, converted, with `what` in front of its message.
pub(crate) fn context(error: impl Into<StoreError>, what: &str) -> StoreError {
    match error.into() {
        StoreError::Conflict(message) => StoreError::Conflict(format!("{what}: {message}")),
        StoreError::Unavailable(message) => StoreError::Unavailable(format!("{what}: {message}")),
        StoreError::Internal(message) => StoreError::Internal(format!("{what}: {message}")),
    }
}

/// Whether a server error means "try again later".
fn db_error_is_transient(error: &DbError) -> bool {
    matches!(
        error,
        DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::ReadFailure { .. }
            | DbError::WriteFailure { .. }
            | DbError::RateLimitReached { .. }
    )
}

fn attempt_is_transient(error: &RequestAttemptError) -> bool {
    match error {
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => true,
        RequestAttemptError::DbError(db_error, _) => db_error_is_transient(db_error),
        _ => false,
    }
}

fn prepare_is_transient(error: &PrepareError) -> bool {
    match error {
        PrepareError::ConnectionPoolError(_) => true,
        PrepareError::AllAttemptsFailed { first_attempt } => attempt_is_transient(first_attempt),
        _ => false,
    }
}

fn request_is_transient(error: &RequestError) -> bool {
    match error {
        RequestError::EmptyPlan
        | RequestError::ConnectionPoolError(_)
        | RequestError::RequestTimeout(_) => true,
        RequestError::LastAttemptError(attempt) => attempt_is_transient(attempt),
        _ => false,
    }
}

fn execution_is_transient(error: &ExecutionError) -> bool {
    match error {
        ExecutionError::EmptyPlan
        | ExecutionError::ConnectionPoolError(_)
        | ExecutionError::RequestTimeout(_)
        | ExecutionError::SchemaAgreementError(_)
        | ExecutionError::MetadataError(_) => true,
        ExecutionError::LastAttemptError(attempt) => attempt_is_transient(attempt),
        ExecutionError::PrepareError(prepare) => prepare_is_transient(prepare),
        _ => false,
    }
}

/// Whether a write may or may not have been applied: it timed out, or its
/// connection broke, after the request was sent. (An `Unavailable` from the
/// coordinator is certain: nothing was attempted.)
pub(crate) fn is_uncertain(error: &ExecutionError) -> bool {
    match error {
        ExecutionError::RequestTimeout(_) => true,
        ExecutionError::LastAttemptError(RequestAttemptError::BrokenConnectionError(_)) => true,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db_error, _)) => matches!(
            db_error,
            DbError::WriteTimeout { .. } | DbError::WriteFailure { .. }
        ),
        _ => false,
    }
}

fn classify(transient: bool, message: String) -> StoreError {
    if transient {
        StoreError::Unavailable(message)
    } else {
        StoreError::Internal(message)
    }
}

impl From<ExecutionError> for StoreError {
    fn from(error: ExecutionError) -> StoreError {
        classify(execution_is_transient(&error), format!("ScyllaDB: {error}"))
    }
}

impl From<PrepareError> for StoreError {
    fn from(error: PrepareError) -> StoreError {
        classify(
            prepare_is_transient(&error),
            format!("ScyllaDB prepare: {error}"),
        )
    }
}

impl From<NewSessionError> for StoreError {
    fn from(error: NewSessionError) -> StoreError {
        // Not reaching any node, or not getting its metadata, is the cluster
        // being away; a refused configuration is ours to fix.
        let transient = matches!(
            error,
            NewSessionError::FailedToResolveAnyHostname(_) | NewSessionError::MetadataError(_)
        );
        classify(transient, format!("cannot connect to ScyllaDB: {error}"))
    }
}

impl From<UseKeyspaceError> for StoreError {
    fn from(error: UseKeyspaceError) -> StoreError {
        let transient = match &error {
            UseKeyspaceError::RequestError(attempt) => attempt_is_transient(attempt),
            UseKeyspaceError::RequestTimeout(_) => true,
            _ => false,
        };
        classify(
            transient,
            format!("cannot use the keyspace (has `chatd migrate` run?): {error}"),
        )
    }
}

fn next_page_is_transient(error: &NextPageError) -> bool {
    match error {
        NextPageError::RequestFailure(request) => request_is_transient(request),
        _ => false,
    }
}

impl From<PagerExecutionError> for StoreError {
    fn from(error: PagerExecutionError) -> StoreError {
        let transient = match &error {
            PagerExecutionError::PrepareError(prepare) => prepare_is_transient(prepare),
            PagerExecutionError::NextPageError(next) => next_page_is_transient(next),
            PagerExecutionError::SchemaAgreementError(_)
            | PagerExecutionError::MetadataError(_) => true,
            _ => false,
        };
        classify(transient, format!("ScyllaDB: {error}"))
    }
}

impl From<NextRowError> for StoreError {
    fn from(error: NextRowError) -> StoreError {
        let transient = match &error {
            NextRowError::NextPageError(next) => next_page_is_transient(next),
            _ => false,
        };
        classify(transient, format!("ScyllaDB: {error}"))
    }
}

/// Result shapes that do not match what a statement should return: a bug,
/// or a schema that is not ours.
macro_rules! internal_from {
    ($($error:ty),+ $(,)?) => {
        $(
            impl From<$error> for StoreError {
                fn from(error: $error) -> StoreError {
                    StoreError::Internal(format!("unexpected ScyllaDB result: {error}"))
                }
            }
        )+
    };
}

internal_from!(
    IntoRowsResultError,
    RowsError,
    MaybeFirstRowError,
    TypeCheckError,
    DeserializationError,
);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scylla::frame::types::Consistency;

    use scylla::errors::WriteType;

    use super::*;

    fn db(error: DbError) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(error, "message".into()))
    }

    fn write_timeout(write_type: WriteType) -> DbError {
        DbError::WriteTimeout {
            consistency: Consistency::LocalQuorum,
            received: 1,
            required: 2,
            write_type,
        }
    }

    #[test]
    fn timeouts_and_missing_replicas_are_unavailable() {
        let transient = [
            ExecutionError::RequestTimeout(Duration::from_secs(1)),
            ExecutionError::EmptyPlan,
            db(DbError::Unavailable {
                consistency: Consistency::LocalQuorum,
                required: 2,
                alive: 1,
            }),
            db(DbError::Overloaded),
            db(DbError::IsBootstrapping),
            db(DbError::ReadTimeout {
                consistency: Consistency::LocalQuorum,
                received: 1,
                required: 2,
                data_present: false,
            }),
            db(write_timeout(WriteType::Simple)),
            ExecutionError::LastAttemptError(RequestAttemptError::UnableToAllocStreamId),
        ];
        for error in transient {
            assert!(
                matches!(StoreError::from(error.clone()), StoreError::Unavailable(_)),
                "{error:?}"
            );
        }
    }

    #[test]
    fn bad_statements_are_internal() {
        for error in [
            db(DbError::SyntaxError),
            db(DbError::Invalid),
            db(DbError::Unauthorized),
            db(DbError::ServerError),
        ] {
            assert!(
                matches!(StoreError::from(error.clone()), StoreError::Internal(_)),
                "{error:?}"
            );
        }
    }

    #[test]
    fn only_writes_that_may_have_landed_are_uncertain() {
        assert!(is_uncertain(&db(write_timeout(WriteType::Cas))));
        assert!(is_uncertain(&db(write_timeout(WriteType::Simple))));
        assert!(is_uncertain(&ExecutionError::RequestTimeout(
            Duration::from_secs(1)
        )));
        assert!(!is_uncertain(&db(DbError::Unavailable {
            consistency: Consistency::LocalQuorum,
            required: 2,
            alive: 1,
        })));
        assert!(!is_uncertain(&db(DbError::Invalid)));
    }

    #[test]
    fn context_keeps_the_kind() {
        let error = context(
            ExecutionError::RequestTimeout(Duration::from_secs(1)),
            "reading a room",
        );
        assert!(
            matches!(&error, StoreError::Unavailable(message) if message.starts_with("reading a room: "))
        );
        assert!(matches!(
            context(StoreError::Conflict("taken".into()), "x"),
            StoreError::Conflict(_)
        ));
    }
}
