//! Everything durable: the [`Store`] trait and its implementations. This
//! crate stores and never publishes (it does not depend on the bus): the
//! persistence writer stage that consumes the persist stream, writes
//! through a [`Store`] and publishes is `chat_router::writer`.
//!
//! - [`sqlite`]: the embedded default (WAL, group-committed writes, a small
//!   read pool), so that `chatd serve` needs nothing but a data directory.
//! - [`scylla`]: the production store on a ScyllaDB (or Cassandra)
//!   cluster, messages partitioned by room and time bucket.
//!
//! Both pass the same [`conformance`] suite, which is the executable
//! definition of the trait's guarantees.

pub mod error;
pub mod metrics;
pub mod records;
pub mod scylla;
pub mod sqlite;
pub mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::StoreError;
pub use records::*;
pub use store::Store;

/// Result of a store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
