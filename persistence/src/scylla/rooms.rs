//! Rooms, memberships and read positions.
//!
//! `room_members` is the authority on membership: every write to it is a
//! lightweight transaction on its rows (a new room's members go in
//! conditional batches, one partition each), so "already a member" and
//! "was not a member" are exact under concurrency, and no plain write mixes
//! with Paxos on those cells. `user_rooms` is the per-user index (and holds
//! read positions); it is written after the authority when a member is
//! added and deleted before it when one is removed, and every read through
//! it is checked against `room_members`, so a write that stops halfway can
//! only ever deny access, never grant it. No write spans partitions in a
//! logged batch: each partition is written on its own, idempotently.
//!
//! A room's member count is `rooms.member_count` (its members at creation,
//! written by the transaction that creates it, so a DM is never seen with
//! fewer than two) plus the `room_member_counts` counter, moved by one
//! after each membership change that applied. Counter updates do not
//! contend; docs/scylla.md gives the drift bound.

use std::collections::HashSet;

use chat_protocol::{Id, Message, Role, Room, RoomId};
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::Counter;

use super::ScyllaStore;
use super::lwt::{Lwt, LwtAnswer};
use super::rows::{
    MemberRow, MembershipValues, RoomRow, UserRoomRow, creation_token, id_to_cql,
    id_write_timestamp, membership_values, role_to_cql, room_values, user_room_values,
};
use crate::records::{MemberRecord, Membership, MembershipVersions, NewRoom, UserRoom};
use crate::{Result, StoreError};

/// Ids bound to one `IN (...)`: ScyllaDB refuses more than 100 clustering
/// key restrictions per query by default.
pub(super) const MAX_IN: usize = 100;

/// Member rows per conditional batch when a room is created: one partition
/// (the room's), one Paxos round, ~100 × 60 bytes, far below ScyllaDB's
/// batch size warning (128 kB). A room of 1,001 initial members is 11
/// rounds.
pub(super) const MEMBER_BATCH: usize = 100;

/// The members of a new room, each once (the first role listed wins).
fn distinct_members(members: &[(Id, Role)]) -> Vec<(Id, Role)> {
    let mut distinct: Vec<(Id, Role)> = Vec::with_capacity(members.len());
    for &(user, role) in members {
        if !distinct.iter().any(|(seen, _)| *seen == user) {
            distinct.push((user, role));
        }
    }
    distinct
}

/// The rows of one conditional batch of a new room's members (a chunk of
/// at most [`MEMBER_BATCH`]), all in the room's one partition.
fn member_batch(room: &RoomId, chunk: &[(Id, Role)], joined_at: u64) -> Vec<MembershipValues> {
    chunk
        .iter()
        .map(|&(user, role)| membership_values(room, user, role, joined_at))
        .collect()
}

/// The write timestamp (µs) of a read position at `message`: the message
/// id's time, so that the newest position wins, but never before the
/// member's join, so that the row tombstone of an earlier leave (stamped
/// before the rejoin) cannot shadow it. Ids older than the join all get
/// the join's time; between them the larger value (the newer id) wins.
fn read_position_timestamp(message: Id, joined_at: u64) -> i64 {
    let joined_us = i64::try_from(joined_at.saturating_mul(1000)).unwrap_or(i64::MAX);
    id_write_timestamp(message).max(joined_us)
}

/// The room a `NewRoom` becomes, with its member count.
fn room_of(room: &NewRoom, member_count: usize) -> Room {
    Room {
        id: room.id,
        kind: room.kind,
        name: room.name.clone(),
        visibility: room.visibility,
        owner_id: room.owner_id,
        member_count: u32::try_from(member_count).unwrap_or(u32::MAX),
        created_at: room.created_at,
        max_members: room.max_members,
    }
}

/// The count at creation moved by the joins and leaves since, never below
/// zero (a drifted counter must not show a negative count).
fn member_count(at_creation: u32, changes: i64) -> u32 {
    let count = i64::from(at_creation).saturating_add(changes).max(0);
    u32::try_from(count).unwrap_or(u32::MAX)
}

impl ScyllaStore {
    /// The room row alone: `member_count` is its count at creation.
    async fn room_row(&self, room: &RoomId, serial: bool) -> Result<Option<Room>> {
        let statement = if serial {
            &self.statements.select_room_serial
        } else {
            &self.statements.select_room
        };
        let row: Option<RoomRow> = self.first_row(statement, (room.to_string(),)).await?;
        match row {
            Some(row) => row.decode(),
            None => Ok(None),
        }
    }

    /// Joins and leaves since the room's creation.
    async fn member_changes(&self, room: &RoomId) -> Result<i64> {
        let row: Option<(Option<Counter>,)> = self
            .first_row(&self.statements.select_member_count, (room.to_string(),))
            .await?;
        Ok(row
            .and_then(|(count,)| count)
            .map_or(0, |Counter(count)| count))
    }

    /// The room with its current member count: two reads, in parallel.
    pub(super) async fn room_with_count(&self, room: &RoomId) -> Result<Option<Room>> {
        let (stored, changes) =
            futures::try_join!(self.room_row(room, false), self.member_changes(room))?;
        Ok(stored.map(|room| Room {
            member_count: member_count(room.member_count, changes),
            ..room
        }))
    }

    /// The room with its member count and its own member limit (v1.1, in
    /// `room_limits`): three reads, in parallel.
    pub(super) async fn room_impl(&self, room: &RoomId) -> Result<Option<Room>> {
        let (stored, max_members) =
            futures::try_join!(self.room_with_count(room), self.room_limit(room))?;
        Ok(stored.map(|room| Room {
            max_members,
            ..room
        }))
    }

    /// Creates the room row unless one exists; answers whether this call
    /// created it. A transaction that timed out is settled by a serial read
    /// of the creation token: equal concurrent attempts (say, two opens of
    /// one DM) differ in nothing else.
    async fn insert_room(&self, room: &NewRoom, member_count: usize) -> Result<bool> {
        let token = creation_token();
        match self
            .lwt(
                &self.statements.insert_room,
                room_values(room, member_count, token, &self.default_buckets),
            )
            .await?
        {
            Lwt::Applied => Ok(true),
            Lwt::NotApplied(_) => Ok(false),
            Lwt::Uncertain(error) => {
                let stored: Option<(Option<i64>,)> = self
                    .first_row(
                        &self.statements.select_room_token_serial,
                        (room.id.to_string(),),
                    )
                    .await?;
                match stored {
                    Some((stored,)) => Ok(stored == Some(token)),
                    None => Err(error.into()),
                }
            }
        }
    }

    /// Adds one member row by transaction; answers whether this call (or
    /// an earlier, uncertain attempt with the same values) added it.
    async fn insert_member(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
    ) -> Result<bool> {
        let values = membership_values(room, user, role, joined_at);
        match self.lwt(&self.statements.add_member, &values).await? {
            Lwt::Applied => Ok(true),
            Lwt::NotApplied(_) => Ok(false),
            Lwt::Uncertain(error) => match self.member_row(room, user, true).await? {
                Some((_, stored_role, stored_joined)) => {
                    Ok(stored_role == role && stored_joined == joined_at)
                }
                None => Err(error.into()),
            },
        }
    }

    /// Writes a new room's member rows: one conditional batch (one Paxos
    /// round in one partition) per [`MEMBER_BATCH`] members. A batch that
    /// is refused (some row exists: an uncertain earlier attempt, or a join
    /// racing the creation) or uncertain is redone row by row, each row's
    /// own transaction deciding.
    async fn write_member_rows(
        &self,
        room: &RoomId,
        members: &[(Id, Role)],
        joined_at: u64,
    ) -> Result<()> {
        // (Owned items throughout: the futures must be `Send` for any
        // lifetime, which borrowed closure arguments trip up.)
        let chunks: Vec<Vec<(Id, Role)>> =
            members.chunks(MEMBER_BATCH).map(<[_]>::to_vec).collect();
        self.concurrently(chunks, |chunk| async move {
            let rows = member_batch(room, &chunk, joined_at);
            let mut batch = Batch::new(BatchType::Unlogged);
            batch.set_consistency(self.options.write_consistency);
            batch.set_serial_consistency(Some(self.options.serial_consistency));
            batch.set_is_idempotent(false);
            for _ in &rows {
                batch.append_statement(self.statements.add_member.clone());
            }
            let applied = match self.batch(&batch, &rows).await {
                Ok(result) => LwtAnswer::from_result(result)?.applied,
                Err(error) if super::errors::is_uncertain(&error) => false,
                Err(error) => return Err(error.into()),
            };
            if !applied {
                self.concurrently(chunk, |(user, role)| {
                    self.insert_member(room, user, role, joined_at)
                })
                .await?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Writes the members of a new room: the authority rows, then each
    /// member's index row (its own partition, a plain idempotent write the
    /// driver may retry).
    async fn write_members(
        &self,
        room: &RoomId,
        members: &[(Id, Role)],
        joined_at: u64,
    ) -> Result<()> {
        self.write_member_rows(room, members, joined_at).await?;
        self.concurrently(members.iter().copied(), |(user, _)| async move {
            self.execute(
                &self.statements.insert_user_room,
                user_room_values(room, user, joined_at),
            )
            .await
            .map(drop)
        })
        .await?;
        Ok(())
    }

    /// Takes back a room whose members could not be written, so that the
    /// creation is all or nothing and a retry can succeed: index rows, then
    /// member rows, then the room, each partition on its own. Best effort.
    async fn undo_room(&self, room: &RoomId, members: &[(Id, Role)]) {
        let key = room.to_string();
        let key = key.as_str();
        let outcome = async {
            self.concurrently(members.iter().copied(), |(user, _)| async move {
                self.execute(&self.statements.leave_user_room, (id_to_cql(user), key))
                    .await
                    .map(drop)
            })
            .await?;
            self.concurrently(members.iter().copied(), |(user, _)| async move {
                self.lwt(&self.statements.remove_member, (key, id_to_cql(user)))
                    .await
                    .map(drop)
            })
            .await?;
            self.lwt(&self.statements.delete_room, (key,)).await?;
            Ok::<(), StoreError>(())
        };
        if let Err(error) = outcome.await {
            tracing::error!(%error, %room, "cannot undo a half-created room");
        }
    }

    pub(super) async fn create_room_impl(
        &self,
        room: NewRoom,
        members: &[(Id, Role)],
    ) -> Result<Room> {
        let members = distinct_members(members);
        let created = self.insert_room(&room, members.len()).await?;
        if !created {
            return Err(StoreError::Conflict(format!(
                "room {} already exists",
                room.id
            )));
        }
        if let Err(error) = self
            .write_members(&room.id, &members, room.created_at)
            .await
        {
            self.undo_room(&room.id, &members).await;
            return Err(error);
        }
        Ok(room_of(&room, members.len()))
    }

    /// The DM row is created by a lightweight transaction carrying its
    /// member count, so every concurrent opener sees the same room with two
    /// members; only the creator writes the member rows.
    pub(super) async fn open_dm_impl(&self, room: NewRoom) -> Result<(Room, bool)> {
        let Some((lo, hi)) = room.id.dm_users() else {
            return Err(StoreError::Internal(format!(
                "open_dm needs a direct-message room id, not {}",
                room.id
            )));
        };
        let created = self.insert_room(&room, 2).await?;
        if created {
            let members = [(lo, Role::Member), (hi, Role::Member)];
            if let Err(error) = self
                .write_members(&room.id, &members, room.created_at)
                .await
            {
                self.undo_room(&room.id, &members).await;
                return Err(error);
            }
            return Ok((room_of(&room, 2), true));
        }
        // Read serially: the winner's transaction is committed before ours
        // reported "not applied", and a serial read cannot miss it.
        let stored = self.room_row(&room.id, true).await?.ok_or_else(|| {
            StoreError::Internal(format!("room {} vanished while being opened", room.id))
        })?;
        // A creator that died between the room row and its members (or
        // could neither write them nor take the room back) left a DM that
        // neither user could read, for good: nobody else writes them. A DM
        // cannot be left, so a member row missing is always that; written
        // again as the creator would have (member rows only if absent).
        if self.memberships_impl(&room.id, &[lo, hi]).await?.len() < 2 {
            let members = [(lo, Role::Member), (hi, Role::Member)];
            self.write_members(&room.id, &members, stored.created_at)
                .await?;
        }
        Ok((stored, false))
    }

    pub(super) async fn member_row(
        &self,
        room: &RoomId,
        user: Id,
        serial: bool,
    ) -> Result<Option<(Id, Role, u64)>> {
        let statement = if serial {
            &self.statements.select_member_serial
        } else {
            &self.statements.select_member
        };
        let row: Option<MemberRow> = self
            .first_row(statement, (room.to_string(), id_to_cql(user)))
            .await?;
        match row {
            Some(row) => row.decode(),
            None => Ok(None),
        }
    }

    async fn user_room_row(&self, room: &RoomId, user: Id) -> Result<Option<UserRoomRow>> {
        self.first_row(
            &self.statements.select_user_room,
            (id_to_cql(user), room.to_string()),
        )
        .await
    }

    /// The authority (role, join time) and the read position, read together.
    pub(super) async fn membership_impl(
        &self,
        room: &RoomId,
        user: Id,
    ) -> Result<Option<Membership>> {
        let (member, index) = futures::try_join!(
            self.member_row(room, user, false),
            self.user_room_row(room, user)
        )?;
        let Some((_, role, joined_at)) = member else {
            return Ok(None);
        };
        let last_read = match index {
            Some(index) => index.decode()?.2,
            None => None,
        };
        Ok(Some(Membership {
            role,
            last_read,
            joined_at,
        }))
    }

    pub(super) async fn memberships_impl(
        &self,
        room: &RoomId,
        users: &[Id],
    ) -> Result<Vec<(Id, Role)>> {
        let mut users = users.to_vec();
        users.sort_unstable();
        users.dedup();
        let chunks: Vec<Vec<i64>> = users
            .chunks(MAX_IN)
            .map(|chunk| chunk.iter().copied().map(id_to_cql).collect())
            .collect();
        let key = room.to_string();
        let found = self
            .concurrently(chunks, |chunk| {
                let key = key.as_str();
                async move {
                    self.rows::<MemberRow>(&self.statements.select_members_in, (key, chunk))
                        .await
                }
            })
            .await?;
        let mut memberships = Vec::new();
        for row in found.into_iter().flatten() {
            if let Some((user, role, _)) = row.decode()? {
                memberships.push((user, role));
            }
        }
        Ok(memberships)
    }

    pub(super) async fn add_member_impl(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
    ) -> Result<bool> {
        // Members of no room would be unreachable rows.
        if self.room_row(room, false).await?.is_none() {
            return Err(StoreError::Internal(format!(
                "cannot add a member to room {room}: no such room"
            )));
        }
        let added = self.insert_member(room, user, role, joined_at).await?;
        // Counted and versioned before the index row: once the transaction
        // applied, a later failure must not leave the change uncounted, as
        // a retry finds the member there and changes nothing.
        if added {
            self.change_member_count(room, 1).await;
            self.bump_membership_version(room).await?;
        }
        let joined = if added {
            Some(joined_at)
        } else {
            // Already a member. A previous add may have stopped before the
            // index row: write it again from the authority (harmless if it
            // exists; reads check the authority anyway).
            self.member_row(room, user, false)
                .await?
                .map(|(_, _, joined)| joined)
        };
        if let Some(joined) = joined {
            self.execute(
                &self.statements.insert_user_room,
                user_room_values(room, user, joined),
            )
            .await?;
        }
        Ok(added)
    }

    pub(super) async fn remove_member_impl(&self, room: &RoomId, user: Id) -> Result<bool> {
        // The index first: if the authority's delete then fails, the user
        // has lost the room from their list, not kept access to it.
        self.execute(
            &self.statements.leave_user_room,
            (id_to_cql(user), room.to_string()),
        )
        .await?;
        let removed = match self
            .lwt(
                &self.statements.remove_member,
                (room.to_string(), id_to_cql(user)),
            )
            .await?
        {
            Lwt::Applied => true,
            Lwt::NotApplied(_) => false,
            Lwt::Uncertain(error) => match self.member_row(room, user, true).await? {
                None => true,
                Some(_) => return Err(error.into()),
            },
        };
        if removed {
            self.change_member_count(room, -1).await;
        }
        // Versioned even when the user was gone already: the removal that
        // took them may have stopped before its own bump (which failed),
        // and gateways learn of a removal only from the version. Counting
        // twice is harmless; a removal of a non-member is rare (a retry,
        // or a race the router lost).
        self.bump_membership_version(room).await?;
        Ok(removed)
    }

    /// Moves the room's counter by `delta` after a membership change that
    /// applied (exactly once per change: the transaction decided it). A
    /// counter update is not idempotent, so it is sent once and never
    /// retried; if it fails or times out the count may be off by one for
    /// that change (docs/scylla.md: drift bound). The change itself stands
    /// either way: access is decided by the rows, the count is displayed.
    async fn change_member_count(&self, room: &RoomId, delta: i64) {
        if let Err(error) = self
            .execute(
                &self.statements.change_member_count,
                (Counter(delta), room.to_string()),
            )
            .await
        {
            crate::metrics::MEMBER_COUNT_DRIFT.inc();
            tracing::warn!(%error, %room, delta, "member count update failed; the count may be off by one");
        }
    }

    /// Moves the room's membership version on after a change that applied.
    /// Counting twice is harmless (only growth matters), so a failed update
    /// is retried; if every attempt fails the call fails, and the caller
    /// does not acknowledge a change gateways may not notice.
    async fn bump_membership_version(&self, room: &RoomId) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self
                .execute(
                    &self.statements.bump_membership_version,
                    (room.to_string(),),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) if attempt >= 2 => return Err(error),
                Err(error) => {
                    attempt += 1;
                    tracing::warn!(%error, %room, attempt, "membership version update failed; retrying");
                }
            }
        }
    }

    /// The membership versions of the rooms of `messages`, stored already,
    /// read concurrently; a room whose read fails is left out (the
    /// messages are stored: failing now would have them written again).
    pub(super) async fn membership_versions_of(&self, messages: &[Message]) -> MembershipVersions {
        let rooms: HashSet<RoomId> = messages.iter().map(|message| message.room_id).collect();
        let read = self.concurrently(rooms, |room| async move {
            Ok::<_, StoreError>((room, self.membership_version_impl(&room).await))
        });
        let mut versions = MembershipVersions::new();
        for (room, version) in read.await.unwrap_or_default() {
            match version {
                Ok(version) => {
                    versions.insert(room, version);
                }
                Err(error) => {
                    tracing::warn!(%error, %room, "membership version unavailable; events go without it");
                }
            }
        }
        versions
    }

    pub(super) async fn membership_version_impl(&self, room: &RoomId) -> Result<u64> {
        let row: Option<(Option<Counter>,)> = self
            .first_row(
                &self.statements.select_membership_version,
                (room.to_string(),),
            )
            .await?;
        Ok(row
            .and_then(|(version,)| version)
            .map_or(0, |Counter(version)| u64::try_from(version).unwrap_or(0)))
    }

    /// The role change is a lightweight transaction on the member's row,
    /// which is also the check that they are a member: a refused call
    /// changes nothing. The room's `owner_id` follows.
    pub(super) async fn set_owner_impl(&self, room: &RoomId, user: Id) -> Result<()> {
        let promoted = match self
            .lwt(
                &self.statements.promote_member,
                (role_to_cql(Role::Owner), room.to_string(), id_to_cql(user)),
            )
            .await?
        {
            Lwt::Applied => true,
            Lwt::NotApplied(_) => false,
            Lwt::Uncertain(error) => match self.member_row(room, user, true).await? {
                Some((_, Role::Owner, _)) => true,
                Some(_) => return Err(error.into()),
                None => false,
            },
        };
        if !promoted {
            return Err(StoreError::Internal(format!(
                "cannot make user {user} the owner of room {room}: not a member"
            )));
        }
        match self
            .lwt(
                &self.statements.set_room_owner,
                (id_to_cql(user), room.to_string()),
            )
            .await?
        {
            Lwt::Applied => Ok(()),
            Lwt::NotApplied(_) => Err(StoreError::Internal(format!(
                "cannot make user {user} the owner of room {room}: no such room"
            ))),
            Lwt::Uncertain(error) => match self.room_row(room, true).await? {
                Some(stored) if stored.owner_id == Some(user) => Ok(()),
                _ => Err(error.into()),
            },
        }
    }

    async fn member_rows(&self, room: &RoomId) -> Result<Vec<(Id, Role, u64)>> {
        let rows: Vec<MemberRow> = self
            .all_rows(&self.statements.select_members, (room.to_string(),))
            .await?;
        let mut members = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(member) = row.decode()? {
                members.push(member);
            }
        }
        Ok(members)
    }

    pub(super) async fn members_impl(&self, room: &RoomId) -> Result<Vec<MemberRecord>> {
        let mut members = self.member_rows(room).await?;
        members.sort_by_key(|&(user, _, joined_at)| (joined_at, user));
        self.member_records(members.into_iter().map(|(user, role, _)| (user, role)))
            .await
    }

    /// The records of `members`, in the order given, their users read
    /// concurrently; a member whose user is gone is left out.
    pub(super) async fn member_records(
        &self,
        members: impl IntoIterator<Item = (Id, Role)>,
    ) -> Result<Vec<MemberRecord>> {
        let records = self
            .concurrently(
                members.into_iter().enumerate(),
                |(position, (user, role))| async move {
                    let user = self.user_row(user).await?;
                    Ok((position, user.and_then(|row| row.into_user()), role))
                },
            )
            .await?;
        let mut records: Vec<(usize, MemberRecord)> = records
            .into_iter()
            .filter_map(|(position, user, role)| {
                user.map(|user| (position, MemberRecord { user, role }))
            })
            .collect();
        records.sort_by_key(|(position, _)| *position);
        Ok(records.into_iter().map(|(_, record)| record).collect())
    }

    pub(super) async fn member_ids_impl(&self, room: &RoomId) -> Result<Vec<Id>> {
        Ok(self
            .member_rows(room)
            .await?
            .into_iter()
            .map(|(user, _, _)| user)
            .collect())
    }

    /// The user's index, each entry checked against the authority and
    /// joined with its room.
    pub(super) async fn rooms_of_impl(&self, user: Id) -> Result<Vec<UserRoom>> {
        let rows: Vec<UserRoomRow> = self
            .all_rows(&self.statements.select_user_rooms, (id_to_cql(user),))
            .await?;
        let mut listed = Vec::with_capacity(rows.len());
        for row in rows {
            let (room, in_list, last_read) = row.decode()?;
            if in_list {
                listed.push((room, last_read));
            }
        }
        let found = self
            .concurrently(listed, |(room, last_read)| async move {
                let (stored, member) =
                    futures::try_join!(self.room_impl(&room), self.member_row(&room, user, false))?;
                Ok(stored
                    .zip(member)
                    .map(|(room, (_, role, joined_at))| UserRoom {
                        room,
                        membership: Membership {
                            role,
                            last_read,
                            joined_at,
                        },
                    }))
            })
            .await?;
        let mut rooms: Vec<UserRoom> = found.into_iter().flatten().collect();
        rooms.sort_by_key(|entry| (entry.membership.joined_at, entry.room.id));
        Ok(rooms)
    }

    /// The read position is a cell stamped with the message id's time, so
    /// concurrent marks keep the newest (ties go to the larger value, which
    /// is also the newer id) without reading it first; only membership is
    /// read, to answer `false` for non-members (and for the join time).
    pub(super) async fn mark_read_impl(
        &self,
        room: &RoomId,
        user: Id,
        message: Id,
    ) -> Result<bool> {
        let Some((_, _, joined_at)) = self.member_row(room, user, false).await? else {
            return Ok(false);
        };
        self.execute(
            &self.statements.mark_read,
            (
                read_position_timestamp(message, joined_at),
                id_to_cql(message),
                id_to_cql(user),
                room.to_string(),
            ),
        )
        .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use chat_protocol::{RoomKind, Visibility};

    use super::*;

    #[test]
    fn members_listed_twice_are_added_once_with_their_first_role() {
        let members = [
            (Id(1), Role::Owner),
            (Id(2), Role::Member),
            (Id(1), Role::Member),
            (Id(3), Role::Admin),
            (Id(2), Role::Admin),
        ];
        assert_eq!(
            distinct_members(&members),
            vec![
                (Id(1), Role::Owner),
                (Id(2), Role::Member),
                (Id(3), Role::Admin)
            ]
        );
    }

    #[test]
    fn a_new_room_carries_its_member_count() {
        let new = NewRoom {
            id: RoomId::Group(Id(5)),
            kind: RoomKind::Group,
            name: "general".into(),
            visibility: Visibility::Public,
            owner_id: Some(Id(1)),
            created_at: 1_000,
            max_members: None,
        };
        let room = room_of(&new, 3);
        assert_eq!(room.member_count, 3);
        assert_eq!((room.id, room.created_at), (new.id, new.created_at));
    }

    #[test]
    fn initial_members_go_in_bounded_single_partition_batches() {
        let room = RoomId::Group(Id(9));
        let members: Vec<(Id, Role)> = (0..1001).map(|n| (Id(n + 1), Role::Member)).collect();
        let batches: Vec<Vec<MembershipValues>> = members
            .chunks(MEMBER_BATCH)
            .map(|chunk| member_batch(&room, chunk, 5))
            .collect();
        assert_eq!(batches.len(), 11);
        for batch in &batches {
            assert!(!batch.is_empty() && batch.len() <= MEMBER_BATCH);
            // One partition: every row of a batch has the room's key.
            assert!(batch.iter().all(|row| row.0 == "9"));
        }
        let users: std::collections::HashSet<i64> =
            batches.iter().flatten().map(|row| row.1).collect();
        assert_eq!(users.len(), 1001, "every member once");
    }

    #[test]
    fn member_counts_add_the_changes_since_creation() {
        assert_eq!(member_count(3, 0), 3);
        assert_eq!(member_count(3, 5), 8);
        assert_eq!(member_count(2, -1), 1);
        // A counter that drifted below the creation count shows zero, not
        // a wrapped number.
        assert_eq!(member_count(1, -4), 0);
        assert_eq!(member_count(u32::MAX, 1), u32::MAX);
    }

    #[test]
    fn read_positions_are_stamped_no_earlier_than_the_join() {
        let joined_at = chat_protocol::id::EPOCH_MS + 1_000_000;
        let old = Id::first_at(joined_at - 5_000);
        let older = Id::first_at(joined_at - 9_000);
        let new = Id::first_at(joined_at + 5_000);
        let join_us = (joined_at * 1000) as i64;
        assert_eq!(read_position_timestamp(old, joined_at), join_us);
        assert_eq!(read_position_timestamp(older, joined_at), join_us);
        assert!(read_position_timestamp(new, joined_at) > join_us);
        assert_eq!(
            read_position_timestamp(new, joined_at),
            id_write_timestamp(new)
        );
    }

    #[test]
    fn creation_tokens_differ() {
        let tokens: std::collections::HashSet<i64> = (0..1000).map(|_| creation_token()).collect();
        assert_eq!(tokens.len(), 1000);
    }
}
