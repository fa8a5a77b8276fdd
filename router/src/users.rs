//! Looking users up.

use chat_protocol::limits::is_username_byte;
use chat_protocol::{Id, User};

use crate::{Chat, Error, Result};

/// Default and largest page of a user search.
pub const SEARCH_DEFAULT_LIMIT: u32 = 10;
pub const SEARCH_MAX_LIMIT: u32 = 50;

impl Chat {
    /// The user with this id, with what is known of their presence.
    pub async fn user(&self, id: Id) -> Result<User> {
        let record = self.store.user(id).await?.ok_or(Error::NotFound("user"))?;
        let mut user = record.to_user();
        // Presence is tracked by the real-time path; until a connection
        // reports otherwise a user is offline, last seen when recorded.
        user.online = Some(false);
        user.last_seen_at = record.last_seen_at;
        Ok(user)
    }

    /// Users whose username starts with `prefix` (case-insensitive), for
    /// @-autocomplete.
    pub async fn search_users(&self, prefix: &str, limit: Option<u32>) -> Result<Vec<User>> {
        let limit = limit.unwrap_or(SEARCH_DEFAULT_LIMIT);
        if !(1..=SEARCH_MAX_LIMIT).contains(&limit) {
            return Err(Error::bad_request(format!(
                "limit must be 1 to {SEARCH_MAX_LIMIT}"
            )));
        }
        // No username contains other characters, so nothing can match.
        if !prefix.bytes().all(is_username_byte) {
            return Ok(Vec::new());
        }
        let records = self
            .store
            .search_users(&prefix.to_ascii_lowercase(), limit)
            .await?;
        Ok(records.iter().map(|r| r.to_user()).collect())
    }
}
