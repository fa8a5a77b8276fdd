//! Exact membership on the live path: who of a room's local connections
//! may still receive it, checked against the store when the room's
//! membership version says this gateway's view may be stale.
//!
//! Every room event carries the room's membership version (bumped in the
//! store by every join and removal). Each connection's entry in a room
//! holds the version it was last confirmed at; an event with a newer one
//! makes the hub confirm that connection before passing the event on. The
//! confirmation reads the room's members once per room and version on this
//! gateway ([`Checked`]), not once per connection. So a removal does not
//! rest on the `room_removed` event arriving (pub/sub is at most once), nor
//! on it winning a race with a connection's opening.
//!
//! A snapshot only vouches for connections that joined the room's index
//! before the read began (it is newer than the room list they were given):
//! each read and each attachment takes a tick of one gateway-wide clock.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chat_persistence::Store;
use chat_protocol::{Id, RoomId};

use super::index::SHARDS;
use crate::metrics;

/// Most rooms remembered per shard; a full shard is forgotten at once (a
/// forgotten room costs one more read at its next stale event).
const ROOMS_PER_SHARD: usize = 1024;

/// The members of one room as read from the store.
pub struct Snapshot {
    /// The membership version it is at least as new as.
    pub version: u64,
    /// The tick at which the read began.
    pub tick: u64,
    pub members: HashSet<Id>,
}

/// The room snapshots this gateway read, and its clock.
pub struct Checked {
    store: Arc<dyn Store>,
    clock: AtomicU64,
    hasher: RandomState,
    rooms: Box<[Mutex<Snapshots>]>,
}

/// One shard of the remembered snapshots.
type Snapshots = HashMap<RoomId, Arc<Snapshot>>;

impl Checked {
    pub fn new(store: Arc<dyn Store>) -> Checked {
        Checked {
            store,
            clock: AtomicU64::new(1),
            hasher: RandomState::new(),
            rooms: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// A fresh tick of the clock (attachments and reads).
    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Room members at least as new as `version` and read after tick
    /// `after`: the remembered snapshot if it qualifies, else one read.
    /// `None` if the store cannot answer (the caller withholds the event
    /// from the connections it could not confirm).
    pub async fn members(&self, room: &RoomId, version: u64, after: u64) -> Option<Arc<Snapshot>> {
        let shard = &self.rooms[(self.hasher.hash_one(room) % SHARDS as u64) as usize];
        if let Some(snapshot) = lock(shard).get(room)
            && snapshot.version >= version
            && snapshot.tick > after
        {
            return Some(snapshot.clone());
        }
        let tick = self.tick();
        metrics::MEMBERSHIP_READS.inc();
        // The event was published after the store reached `version`, so a
        // read begun now sees that state or a newer one.
        let members = match self.store.member_ids(room).await {
            Ok(members) => members.into_iter().collect(),
            Err(error) => {
                metrics::MEMBERSHIP_READ_FAILURES.inc();
                tracing::warn!(%error, %room, "cannot confirm room members; event withheld");
                return None;
            }
        };
        let snapshot = Arc::new(Snapshot {
            version,
            tick,
            members,
        });
        let mut rooms = lock(shard);
        if rooms.len() >= ROOMS_PER_SHARD {
            rooms.clear();
        }
        let newer = rooms
            .get(room)
            .is_some_and(|known| known.version > version || known.tick > tick);
        if !newer {
            rooms.insert(*room, snapshot.clone());
        }
        Some(snapshot)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
