//! The local index: connection → rooms, room → connections, user →
//! connections, in [`SHARDS`] independently locked shards.
//!
//! Fan-out reads one room's (or user's) shard under a read lock and never
//! waits for anything else, so deliveries to different rooms never contend
//! and a change to one room's members blocks only the rooms that share its
//! shard, for the time of a hash-map update. No lock here is ever held across
//! an `.await` (they are `std` locks; the compiler refuses to keep their
//! guards across one in a `Send` future).
//!
//! Lock order, where two are held at once: a connection's shard, then a
//! room's or user's shard.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chat_protocol::{Id, RoomId};

use crate::ws::conn::Conn;

/// Shards per index (centrifuge's hub uses the same number).
pub const SHARDS: usize = 64;

/// Connections by id, and who receives what.
pub struct Index {
    hasher: RandomState,
    conns: Box<[Mutex<HashMap<u64, Entry>>]>,
    rooms: Box<[RwLock<HashMap<RoomId, RoomMembers>>]>,
    users: Box<[RwLock<HashMap<Id, Members>>]>,
}

/// The connections of one user on this gateway.
pub type Members = HashMap<u64, Arc<Conn>>;

/// The connections of one room on this gateway.
pub type RoomMembers = HashMap<u64, Arc<Member>>;

/// One connection in one room, with what the hub knows of its membership
/// (see [`super::membership`]).
pub struct Member {
    pub conn: Arc<Conn>,
    /// The room's membership version this connection was confirmed at (0:
    /// never confirmed; it came from a room list or a `room_added`).
    pub confirmed: AtomicU64,
    /// The clock tick at which it joined the room's index: only a member
    /// read begun later vouches for it.
    pub since: u64,
}

impl Member {
    /// Whether an event at `version` may go to it without a check.
    pub fn confirmed_for(&self, version: Option<u64>) -> bool {
        version.is_none_or(|v| self.confirmed.load(Ordering::Relaxed) >= v)
    }

    /// Records a confirmation at `version`.
    pub fn confirm(&self, version: u64) {
        self.confirmed.fetch_max(version, Ordering::Relaxed);
    }
}

/// What the index knows about one connection.
struct Entry {
    conn: Arc<Conn>,
    rooms: HashSet<RoomId>,
    /// Rooms removed while the connection was opening: the room list it is
    /// about to attach was read before, and must not bring them back.
    removed_while_opening: Option<HashSet<RoomId>>,
    /// Rooms given to the connection before it went live, whose
    /// `room_added` therefore went nowhere, minus those its room list
    /// holds: its session tells it of them ([`Index::take_untold`]).
    untold: Vec<RoomId>,
}

/// How a change of a connection's rooms affected a room's local members.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// The room has gained its first or lost its last local connection: the
    /// gateway's subscription to it must follow.
    Subscription,
    /// Nothing to subscribe or unsubscribe.
    None,
}

/// What a connection's leaving changed.
pub struct Closed {
    pub user: Id,
    /// Whether the user's channel must follow.
    pub user_change: Change,
    /// The rooms it received, each with whether its channel must follow.
    pub rooms: Vec<(RoomId, Change)>,
}

impl Index {
    pub fn new() -> Index {
        Index {
            hasher: RandomState::new(),
            conns: (0..SHARDS).map(|_| Mutex::default()).collect(),
            rooms: (0..SHARDS).map(|_| RwLock::default()).collect(),
            users: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }

    /// Adds an opening connection: it follows its user's membership changes
    /// from now on, and receives nothing until [`Index::attach`]. Answers
    /// whether the user has no other connection here (its channel must be
    /// subscribed).
    pub fn open(&self, conn: Arc<Conn>) -> Change {
        let (id, user) = (conn.id, conn.user);
        let mut conns = self.conn_shard(id);
        conns.insert(
            id,
            Entry {
                conn: conn.clone(),
                rooms: HashSet::new(),
                removed_while_opening: Some(HashSet::new()),
                untold: Vec::new(),
            },
        );
        let mut users = self.user_shard_mut(&user);
        let members = users.entry(user).or_default();
        members.insert(id, conn);
        change_if(members.len() == 1)
    }

    /// Gives an opened connection the rooms it was found to belong to, minus
    /// those it was removed from in the meantime. Answers the rooms it
    /// receives now, each with whether its subscription must follow.
    /// `since`: a fresh tick of the membership clock.
    pub fn attach(&self, id: u64, rooms: &[RoomId], since: u64) -> Vec<(RoomId, Change)> {
        let mut conns = self.conn_shard(id);
        let Some(entry) = conns.get_mut(&id) else {
            return Vec::new();
        };
        let removed = entry.removed_while_opening.take().unwrap_or_default();
        // Rooms given while opening that the list holds too: `ready`
        // lists them, nothing is left untold.
        entry.untold.retain(|room| !rooms.contains(room));
        let mut attached = Vec::with_capacity(rooms.len());
        for room in rooms.iter().filter(|room| !removed.contains(room)) {
            // Already there if added while opening.
            let change = self
                .add_room_locked(entry, *room, since)
                .unwrap_or(Change::None);
            attached.push((*room, change));
        }
        attached
    }

    /// Removes a connection; answers what its leaving changed.
    pub fn close(&self, id: u64) -> Option<Closed> {
        let entry = self.conn_shard(id).remove(&id)?;
        let rooms = entry
            .rooms
            .iter()
            .map(|room| {
                (
                    *room,
                    self.remove_member(&mut self.room_shard_mut(room), room, id),
                )
            })
            .collect();
        let user = entry.conn.user;
        let user_change = self.remove_member(&mut self.user_shard_mut(&user), &user, id);
        Some(Closed {
            user,
            user_change,
            rooms,
        })
    }

    /// Every connection of `user` receives `room` from now on (`since`: a
    /// fresh tick of the membership clock). Answers whether the room's
    /// subscription must follow, and the connections that did not receive
    /// it yet (those that have to be told).
    pub fn add_room_for_user(
        &self,
        user: Id,
        room: RoomId,
        since: u64,
    ) -> (Change, Vec<Arc<Conn>>) {
        let mut change = Change::None;
        let mut added = Vec::new();
        for id in self.conn_ids_of_user(user) {
            let mut conns = self.conn_shard(id);
            let Some(entry) = conns.get_mut(&id) else {
                continue;
            };
            if let Some(removed) = &mut entry.removed_while_opening {
                removed.remove(&room);
            }
            match self.add_room_locked(entry, room, since) {
                None => continue,
                Some(Change::Subscription) => change = Change::Subscription,
                Some(Change::None) => {}
            }
            // Read under the connection's lock, which `take_untold` takes
            // after the connection went live: a room is either told by
            // the caller (live) or found there.
            if !entry.conn.is_live() {
                entry.untold.push(room);
            }
            added.push(entry.conn.clone());
        }
        (change, added)
    }

    /// The rooms given to connection `id` before it went live, that it still
    /// receives; call it once the connection is live (it empties the list).
    pub fn take_untold(&self, id: u64) -> Vec<RoomId> {
        let mut conns = self.conn_shard(id);
        let Some(entry) = conns.get_mut(&id) else {
            return Vec::new();
        };
        let mut untold = std::mem::take(&mut entry.untold);
        untold.retain(|room| entry.rooms.contains(room));
        untold.sort();
        untold.dedup();
        untold
    }

    /// Whether an attached connection of `user` does not receive `room`
    /// (one still opening reads its rooms itself).
    pub fn misses_room(&self, user: Id, room: &RoomId) -> bool {
        self.conn_ids_of_user(user).into_iter().any(|id| {
            self.conn_shard(id).get(&id).is_some_and(|entry| {
                entry.removed_while_opening.is_none() && !entry.rooms.contains(room)
            })
        })
    }

    /// No connection of `user` receives `room` any more, including those
    /// still opening. Answers whether the room's subscription must follow,
    /// and the connections that were receiving it (those that have to be
    /// told).
    pub fn remove_room_for_user(&self, user: Id, room: RoomId) -> (Change, Vec<Arc<Conn>>) {
        let mut change = Change::None;
        let mut removed = Vec::new();
        for id in self.conn_ids_of_user(user) {
            let mut conns = self.conn_shard(id);
            let Some(entry) = conns.get_mut(&id) else {
                continue;
            };
            if let Some(removed) = &mut entry.removed_while_opening {
                removed.insert(room);
            }
            if !entry.rooms.remove(&room) {
                continue;
            }
            removed.push(entry.conn.clone());
            if self.remove_member(&mut self.room_shard_mut(&room), &room, id)
                == Change::Subscription
            {
                change = Change::Subscription;
            }
        }
        (change, removed)
    }

    /// Calls `deliver` with the local connections of `room`, under the
    /// shard's read lock (`deliver` must not block).
    pub fn with_room<R>(
        &self,
        room: &RoomId,
        deliver: impl FnOnce(Option<&RoomMembers>) -> R,
    ) -> R {
        deliver(self.room_shard(room).get(room))
    }

    /// Calls `deliver` with the local connections of `user`, under the
    /// shard's read lock (`deliver` must not block).
    pub fn with_user<R>(&self, user: &Id, deliver: impl FnOnce(Option<&Members>) -> R) -> R {
        deliver(self.user_shard(user).get(user))
    }

    /// Whether any local connection receives `room`.
    pub fn has_room(&self, room: &RoomId) -> bool {
        self.room_shard(room).contains_key(room)
    }

    /// Whether any local connection belongs to `user`.
    pub fn has_user(&self, user: &Id) -> bool {
        self.user_shard(user).contains_key(user)
    }

    /// One connection by id.
    pub fn conn(&self, id: u64) -> Option<Arc<Conn>> {
        self.conn_shard(id).get(&id).map(|entry| entry.conn.clone())
    }

    /// Every local connection.
    pub fn all(&self) -> Vec<Arc<Conn>> {
        let mut all = Vec::new();
        for shard in &self.conns {
            let shard = lock(shard);
            all.extend(shard.values().map(|entry| entry.conn.clone()));
        }
        all
    }

    /// How many connections are open here.
    pub fn len(&self) -> usize {
        self.conns.iter().map(|shard| lock(shard).len()).sum()
    }

    fn add_room_locked(&self, entry: &mut Entry, room: RoomId, since: u64) -> Option<Change> {
        if !entry.rooms.insert(room) {
            return None;
        }
        let mut rooms = self.room_shard_mut(&room);
        let members = rooms.entry(room).or_default();
        let member = Member {
            conn: entry.conn.clone(),
            confirmed: AtomicU64::new(0),
            since,
        };
        members.insert(entry.conn.id, Arc::new(member));
        Some(change_if(members.len() == 1))
    }

    fn remove_member<K: Hash + Eq, V>(
        &self,
        shard: &mut HashMap<K, HashMap<u64, V>>,
        key: &K,
        id: u64,
    ) -> Change {
        let Some(members) = shard.get_mut(key) else {
            return Change::None;
        };
        if members.remove(&id).is_some() && members.is_empty() {
            shard.remove(key);
            return Change::Subscription;
        }
        Change::None
    }

    fn conn_ids_of_user(&self, user: Id) -> Vec<u64> {
        self.with_user(&user, |members| {
            members
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default()
        })
    }

    fn shard_of(&self, key: &impl Hash) -> usize {
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    fn conn_shard(&self, id: u64) -> MutexGuard<'_, HashMap<u64, Entry>> {
        lock(&self.conns[self.shard_of(&id)])
    }

    fn room_shard(&self, room: &RoomId) -> RwLockReadGuard<'_, HashMap<RoomId, RoomMembers>> {
        let shard = &self.rooms[self.shard_of(room)];
        shard.read().unwrap_or_else(|p| p.into_inner())
    }

    fn room_shard_mut(&self, room: &RoomId) -> RwLockWriteGuard<'_, HashMap<RoomId, RoomMembers>> {
        let shard = &self.rooms[self.shard_of(room)];
        shard.write().unwrap_or_else(|p| p.into_inner())
    }

    fn user_shard(&self, user: &Id) -> RwLockReadGuard<'_, HashMap<Id, Members>> {
        let shard = &self.users[self.shard_of(user)];
        shard.read().unwrap_or_else(|p| p.into_inner())
    }

    fn user_shard_mut(&self, user: &Id) -> RwLockWriteGuard<'_, HashMap<Id, Members>> {
        let shard = &self.users[self.shard_of(user)];
        shard.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn change_if(subscription: bool) -> Change {
    if subscription {
        Change::Subscription
    } else {
        Change::None
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::Codec;

    fn conn(id: u64, user: u64) -> Arc<Conn> {
        Arc::new(Conn::new(id, Id(user), Codec::Json, 4).0)
    }

    fn room(n: u64) -> RoomId {
        RoomId::Group(Id(n))
    }

    #[test]
    fn subscriptions_follow_the_first_and_last_local_connection() {
        let index = Index::new();
        assert_eq!(index.open(conn(1, 7)), Change::Subscription);
        assert_eq!(index.open(conn(2, 7)), Change::None, "same user");
        let attached = index.attach(1, &[room(1), room(2)], 1);
        assert_eq!(
            attached,
            vec![
                (room(1), Change::Subscription),
                (room(2), Change::Subscription)
            ]
        );
        assert_eq!(
            index.attach(2, &[room(1)], 2),
            vec![(room(1), Change::None)]
        );
        let closed = index.close(1).unwrap();
        assert_eq!(closed.user_change, Change::None);
        let mut rooms = closed.rooms;
        rooms.sort_by_key(|(room, _)| *room);
        assert_eq!(
            rooms,
            vec![(room(1), Change::None), (room(2), Change::Subscription)]
        );
        assert!(index.has_room(&room(1)) && !index.has_room(&room(2)));
        let closed = index.close(2).unwrap();
        assert_eq!(closed.user_change, Change::Subscription);
        assert!(!index.has_user(&Id(7)) && !index.has_room(&room(1)));
        assert_eq!(index.len(), 0);
    }

    #[test]
    fn a_removal_while_opening_is_not_undone_by_the_room_list() {
        let index = Index::new();
        index.open(conn(1, 7));
        let (change, removed) = index.remove_room_for_user(Id(7), room(1));
        assert_eq!(change, Change::None, "nothing attached yet");
        assert!(removed.is_empty(), "nobody received it");
        let attached = index.attach(1, &[room(1), room(2)], 1);
        assert_eq!(attached, vec![(room(2), Change::Subscription)]);
        assert!(!index.has_room(&room(1)));
        let (change, removed) = index.remove_room_for_user(Id(7), room(2));
        assert_eq!(change, Change::Subscription);
        assert_eq!(removed.iter().map(|c| c.id).collect::<Vec<_>>(), [1]);
        let (change, removed) = index.remove_room_for_user(Id(7), room(2));
        assert_eq!(change, Change::None);
        assert!(removed.is_empty(), "told once");
        let (change, added) = index.add_room_for_user(Id(7), room(3), 2);
        assert_eq!(change, Change::Subscription);
        assert_eq!(added.iter().map(|c| c.id).collect::<Vec<_>>(), [1]);
        index.with_room(&room(3), |members| {
            assert_eq!(members.map(|m| m.len()), Some(1));
        });
        let (change, added) = index.add_room_for_user(Id(7), room(3), 3);
        assert_eq!(change, Change::None);
        assert!(added.is_empty(), "told once");
    }

    #[test]
    fn rooms_given_before_going_live_are_kept_to_be_told() {
        let index = Index::new();
        let opening = conn(1, 7);
        index.open(opening.clone());
        index.add_room_for_user(Id(7), room(1), 1);
        index.add_room_for_user(Id(7), room(2), 2);
        index.remove_room_for_user(Id(7), room(2));
        index.add_room_for_user(Id(7), room(3), 3);
        index.attach(1, &[room(3)], 4);
        opening.go_live();
        assert_eq!(
            index.take_untold(1),
            [room(1)],
            "still received, not in the list, untold"
        );
        assert!(index.take_untold(1).is_empty(), "taken once");
        let (_, added) = index.add_room_for_user(Id(7), room(4), 4);
        assert_eq!(added.len(), 1);
        assert!(
            index.take_untold(1).is_empty(),
            "a live one is told at once"
        );
    }

    #[test]
    fn only_attached_connections_miss_rooms() {
        let index = Index::new();
        index.open(conn(1, 7));
        assert!(!index.misses_room(Id(7), &room(1)), "still opening");
        index.attach(1, &[room(1)], 1);
        assert!(!index.misses_room(Id(7), &room(1)));
        assert!(index.misses_room(Id(7), &room(2)));
        index.add_room_for_user(Id(7), room(2), 2);
        assert!(!index.misses_room(Id(7), &room(2)));
        assert!(!index.misses_room(Id(8), &room(2)), "nobody connected");
    }

    #[test]
    fn an_addition_while_opening_cancels_an_earlier_removal() {
        let index = Index::new();
        index.open(conn(1, 7));
        index.remove_room_for_user(Id(7), room(1));
        index.add_room_for_user(Id(7), room(1), 1);
        let attached = index.attach(1, &[room(1)], 2);
        assert!(index.has_room(&room(1)));
        assert_eq!(attached, vec![(room(1), Change::None)], "attached already");
    }
}
