//! The one error type of the chat logic, mapped once to protocol codes.

use chat_persistence::StoreError;
use chat_protocol::ErrorCode;

/// Why a chat operation was refused or failed. The `Display` text is safe to
/// show to clients: internal details are kept out of it and logged instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks a rule of the protocol.
    #[error("{0}")]
    BadRequest(String),
    /// Login failed. Unknown users and wrong passwords look the same.
    #[error("invalid username or password")]
    BadCredentials,
    /// The caller may not do this (usually: not a member).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule refused the request.
    #[error("{0}")]
    Conflict(&'static str),
    /// The content or body is over a limit.
    #[error("{0}")]
    TooLarge(String),
    /// A rate limit refused the request; try again after the given time.
    #[error("rate limited, retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// A bounded queue of this process is full (`what` names it); the
    /// client retries after the given time. Answered like an outage (503
    /// `unavailable` with `Retry-After`) but not logged as one: it is the
    /// bound doing its job.
    #[error("server busy ({what}), retry in {retry_after_ms} ms")]
    Busy {
        what: &'static str,
        retry_after_ms: u64,
    },
    /// A dependency is unreachable; retrying later may help.
    #[error("service temporarily unavailable")]
    Unavailable(String),
    /// A bug or corrupt state; details are logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The protocol code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::BadCredentials => ErrorCode::Unauthorized,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::TooLarge(_) => ErrorCode::TooLarge,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Busy { .. } | Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// When the client should retry, if this error says.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after_ms } | Error::Busy { retry_after_ms, .. } => {
                Some(*retry_after_ms)
            }
            _ => None,
        }
    }

    /// The detail behind an `Unavailable` or `Internal` error, for logs.
    pub fn internal_detail(&self) -> Option<&str> {
        match self {
            Error::Unavailable(detail) | Error::Internal(detail) => Some(detail),
            _ => None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Error {
        Error::BadRequest(message.into())
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Error {
        match error {
            StoreError::Unavailable(detail) => Error::Unavailable(detail),
            // A store conflict that reaches here was not expected by the
            // caller (expected ones are matched where they can happen).
            StoreError::Conflict(detail) | StoreError::Internal(detail) => Error::Internal(detail),
        }
    }
}
