//! The chat logic: every rule about who may do what to which room.
//!
//! [`Chat`] is the one place where membership is checked, content is
//! validated, mentions and DM targets are resolved and idempotency is
//! applied. The REST handlers call it directly; the WebSocket path reaches
//! it through the bus. Embedded and cluster mode differ only in the store
//! and bus implementations underneath, never in this code.
//!
//! Modules, one concept each:
//! - [`accounts`]: registration and login (argon2 password hashes).
//! - [`users`]: user lookup and search.
//! - [`rooms`]: group rooms, DMs, members and roles.
//! - [`messages`]: posting, history, read positions.
//! - [`access`]: the membership checks every action goes through.
//! - [`content`], [`mentions`]: pure rules on message text.
//! - [`idempotency`]: `client_id` de-duplication.

pub mod access;
pub mod accounts;
pub mod content;
pub mod error;
pub mod idempotency;
pub mod mentions;
pub mod messages;
pub mod password;
pub mod rooms;
pub mod users;

use std::sync::Arc;

use chat_persistence::Store;
use chat_protocol::IdGenerator;

pub use error::Error;

/// Result of a chat operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The chat logic over a store. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Chat {
    store: Arc<dyn Store>,
    ids: Arc<IdGenerator>,
    idempotency: Arc<idempotency::ClientIdLocks>,
    passwords: Arc<password::PasswordHasher>,
}

impl Chat {
    /// The chat logic over `store`, minting ids with `ids`.
    pub fn new(store: Arc<dyn Store>, ids: Arc<IdGenerator>) -> Chat {
        Chat {
            store,
            ids,
            idempotency: Arc::default(),
            passwords: Arc::new(password::PasswordHasher::new()),
        }
    }

    /// The store underneath, for health checks.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
