//! The one error type of the store layer.

/// Why a store call failed. "Not found" is not an error: lookups answer
/// `Option`, mutations answer whether they changed anything.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (e.g. a taken username).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or is overloaded; retrying may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, corrupt data, a failed migration.
    #[error("store error: {0}")]
    Internal(String),
}
