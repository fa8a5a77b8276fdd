//! Looking users up, and their presence.
//!
//! A user is online while they have at least one live connection. The
//! shared state decides the transitions, so that exactly one router
//! announces each one, to every room the user belongs to.

use chat_protocol::limits::is_username_byte;
use chat_protocol::{Id, User};

use crate::limits::bus_error;
use crate::{Chat, Error, Result};

/// Default and largest page of a user search.
pub const SEARCH_DEFAULT_LIMIT: u32 = 10;
pub const SEARCH_MAX_LIMIT: u32 = 50;

/// Most expired connections handled per sweep.
const EXPIRY_SWEEP: usize = 1000;

impl Chat {
    /// The user with this id, with their presence.
    pub async fn user(&self, id: Id) -> Result<User> {
        let record = self.store.user(id).await?.ok_or(Error::NotFound("user"))?;
        let online = self
            .bus
            .state
            .online(&[id.to_string()])
            .await
            .map_err(bus_error)?
            .first()
            .copied()
            .unwrap_or(false);
        let mut user = record.to_user();
        user.online = Some(online);
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

    /// A connection of `user` opened; the first one makes them online.
    pub async fn connection_opened(&self, user: Id, connection: &str) -> Result<()> {
        let became_online = self
            .bus
            .state
            .connection_opened(&user.to_string(), connection, self.presence_ttl)
            .await
            .map_err(bus_error)?;
        if became_online {
            self.announce_presence(user, true, None).await?;
        }
        Ok(())
    }

    /// A connection of `user` closed; the last one makes them offline, last
    /// seen now.
    pub async fn connection_closed(&self, user: Id, connection: &str) -> Result<()> {
        let went_offline = self
            .bus
            .state
            .connection_closed(&user.to_string(), connection)
            .await
            .map_err(bus_error)?;
        if went_offline {
            let now = self.now_ms();
            self.store.set_last_seen(user, now).await?;
            self.announce_presence(user, false, Some(now)).await?;
        }
        Ok(())
    }

    /// Keeps connections live: their gateway vouches for all of them at
    /// once, well within the presence time to live. Answers the positions
    /// of those not live (expired, or whose opening was lost), which the
    /// gateway opens again.
    pub async fn connections_alive(&self, connections: &[(String, String)]) -> Result<Vec<usize>> {
        self.bus
            .state
            .connections_alive(connections, self.presence_ttl)
            .await
            .map_err(bus_error)
    }

    /// Announces offline the users whose every connection expired (their
    /// gateway died). Answers how many went offline.
    pub async fn expire_presence(&self) -> Result<usize> {
        let users = self
            .bus
            .state
            .expired_connections(EXPIRY_SWEEP)
            .await
            .map_err(bus_error)?;
        let now = self.now_ms();
        for user in &users {
            let Ok(user) = user.parse::<Id>() else {
                tracing::warn!(user, "expired presence of a user that is not an id");
                continue;
            };
            self.store.set_last_seen(user, now).await?;
            self.announce_presence(user, false, Some(now)).await?;
        }
        Ok(users.len())
    }
}
