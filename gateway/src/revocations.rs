//! The revoked sessions this node refuses, kept in memory so that checking
//! a token never reads the store.
//!
//! Filled three ways: at start-up from the store (every revocation whose
//! tokens have not expired yet), from `Revoked` announcements on the bus
//! (the accounts channel, heard by the hub: effective within the bus's
//! delivery time, well under a second), and by a reload from the store
//! every refresh interval (the hub's [`refresh_revocations`], which then
//! closes the connections of revoked sessions). The reload bounds staleness
//! when an announcement is lost (pub/sub is at most once, e.g. across a
//! Redis reconnect): a revoked token is refused, and its connections are
//! closed, on every node at most one refresh interval after the revocation,
//! usually at once. Entries are forgotten when their tokens expire, so
//! memory holds only outstanding revocations.
//!
//! [`refresh_revocations`]: crate::ws::hub::Hub::refresh_revocations

use std::collections::HashMap;
use std::sync::RwLock;

use chat_persistence::{Revocation, Store};
use chat_protocol::Id;
use chat_protocol::id::now_ms;

/// Revoked session ids and when their tokens expire (ms).
#[derive(Debug, Default)]
pub struct Revocations {
    sessions: RwLock<HashMap<Id, u64>>,
}

impl Revocations {
    pub fn new() -> Revocations {
        Revocations::default()
    }

    /// Whether tokens of `session` are refused.
    pub fn is_revoked(&self, session: Id) -> bool {
        self.read().contains_key(&session)
    }

    /// Refuses these sessions from now on.
    pub fn add(&self, revocations: &[Revocation]) {
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        for revocation in revocations {
            sessions.insert(revocation.session, revocation.expires_at);
        }
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the outstanding revocations from the store and forgets the
    /// expired ones.
    pub async fn reload(&self, store: &dyn Store) -> chat_persistence::Result<()> {
        let now = now_ms();
        let stored = store.revocations(now).await?;
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, expires_at| *expires_at > now);
        for revocation in stored {
            sessions.insert(revocation.session, revocation.expires_at);
        }
        crate::metrics::REVOCATIONS.set(sessions.len() as i64);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Id, u64>> {
        self.sessions.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_sessions_are_refused() {
        let revocations = Revocations::new();
        assert!(!revocations.is_revoked(Id(7)));
        revocations.add(&[Revocation {
            session: Id(7),
            user: Id(1),
            expires_at: now_ms() + 1000,
        }]);
        assert!(revocations.is_revoked(Id(7)));
        assert!(!revocations.is_revoked(Id(8)));
    }
}
