//! Whether the user a valid token names exists in the store.
//!
//! A token can be correctly signed for a user the store does not know (the
//! data directory was reset but the secret kept). Such a caller must get
//! 401 on every route, not a foreign-key failure (500) deep in a write. The
//! check costs one store read the first time a user is seen; users are
//! never deleted, so a user once found stays known for the life of the
//! process and later calls cost nothing. A store that cannot answer is an
//! outage (503 `unavailable`), never "unknown user".

use std::collections::HashSet;
use std::sync::Mutex;

use chat_persistence::Store;
use chat_protocol::Id;

use crate::ApiError;

/// Most users remembered; the set is emptied when full (the next call of
/// each user reads the store once more), which bounds memory.
const MAX_REMEMBERED: usize = 100_000;

/// The users found in the store so far.
#[derive(Default)]
pub struct KnownUsers {
    found: Mutex<HashSet<Id>>,
}

impl KnownUsers {
    pub fn new() -> KnownUsers {
        KnownUsers::default()
    }

    /// `Ok` when `user` exists; 401 when the store does not know them; 503
    /// when the store cannot answer.
    pub async fn check(&self, store: &dyn Store, user: Id) -> Result<(), ApiError> {
        if self.remembers(user) {
            return Ok(());
        }
        match store.user(user).await {
            Ok(Some(_)) => {
                self.remember(user);
                Ok(())
            }
            Ok(None) => Err(ApiError::Unauthorized("unknown user")),
            Err(error) => Err(ApiError::Chat(error.into())),
        }
    }

    fn remembers(&self, user: Id) -> bool {
        self.found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&user)
    }

    fn remember(&self, user: Id) {
        let mut found = self
            .found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if found.len() >= MAX_REMEMBERED {
            found.clear();
        }
        found.insert(user);
    }
}
