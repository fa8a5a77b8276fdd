//! Connection caps: at most so many WebSocket connections per user and in
//! total on this gateway. Each connection holds a [`Slot`] from before its
//! upgrade until it ends; a handshake that finds no slot is refused with
//! 429, before the connection costs a room-list read or a presence event.
//! Counts are per gateway (each gateway holds its own connections);
//! refusals are counted in `chat_connections_refused_total`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chat_protocol::Id;

/// The caps and what this gateway holds now.
#[derive(Debug)]
pub struct ConnectionSlots {
    per_user: usize,
    total: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    by_user: HashMap<Id, usize>,
    total: usize,
}

/// Why a connection got no slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The user holds the most connections allowed.
    PerUser,
    /// The gateway holds the most connections allowed.
    Total,
}

impl Refusal {
    /// Every refusal, for seeding its metric series.
    pub const ALL: [Refusal; 2] = [Refusal::PerUser, Refusal::Total];

    /// The metric label and the message of the 429.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerUser => "per_user",
            Refusal::Total => "total",
        }
    }
}

/// One connection's place; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<ConnectionSlots>,
    user: Id,
}

impl ConnectionSlots {
    /// Caps of `per_user` connections per user and `total` in all (each
    /// at least 1).
    pub fn new(per_user: usize, total: usize) -> ConnectionSlots {
        ConnectionSlots {
            per_user: per_user.max(1),
            total: total.max(1),
            held: Mutex::default(),
        }
    }

    /// A slot for a connection of `user`, unless a cap is reached.
    pub fn take(self: &Arc<Self>, user: Id) -> Result<Slot, Refusal> {
        let mut held = self.held();
        if held.total >= self.total {
            return Err(Refusal::Total);
        }
        let count = held.by_user.entry(user).or_default();
        if *count >= self.per_user {
            return Err(Refusal::PerUser);
        }
        *count += 1;
        held.total += 1;
        Ok(Slot {
            slots: self.clone(),
            user,
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                held.by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_user_and_in_total_and_gives_back() {
        let slots = Arc::new(ConnectionSlots::new(2, 3));
        let (a, b) = (Id(1), Id(2));
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert_eq!(slots.take(a).unwrap_err(), Refusal::PerUser);
        let _b1 = slots.take(b).unwrap();
        assert_eq!(slots.take(b).unwrap_err(), Refusal::Total);
        drop(a1);
        assert!(slots.take(a).is_ok());
    }
}
