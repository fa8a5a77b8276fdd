//! Rooms, memberships and read positions.
//!
//! `room_members` is the authority on membership: adding and removing are
//! lightweight transactions on its rows, so "already a member" and "was not
//! a member" are exact under concurrency. `user_rooms` is the per-user index
//! (and holds read positions); it is written after the authority when a
//! member is added and cleared before it when one is removed, and every
//! read through it is checked against `room_members`, so a write that stops
//! halfway can only ever deny access, never grant it.
//!
//! `rooms.member_count` is written with the room (by the same lightweight
//! transaction that creates it, so a DM is never seen with fewer than two)
//! and moved by compare-and-set after every membership change; docs/scylla.md
//! weighs this against a counter table and against counting the partition.

use chat_protocol::{Id, Role, Room, RoomId};
use scylla::serialize::SerializationError;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;

use super::ScyllaStore;
use super::lwt::Lwt;
use super::paging::Span;
use super::rows::{
    MemberRow, MembershipValues, RoomRow, UserRoomRow, UserRoomValues, creation_token, id_to_cql,
    id_write_timestamp, membership_values, role_to_cql, room_values, user_room_values,
};
use crate::records::{MemberRecord, Membership, NewRoom, UserRoom};
use crate::{Result, StoreError};

/// How often a member count compare-and-set is retried when other
/// membership changes of the same room keep winning.
const MAX_COUNT_ATTEMPTS: usize = 16;

/// Ids bound to one `IN (...)`: ScyllaDB refuses more than 100 clustering
/// key restrictions per query by default.
pub(super) const MAX_IN: usize = 100;

/// One statement's values in the batch that writes a room's members: the
/// authority row or the index row of a member.
enum MembershipWrite {
    Member(MembershipValues),
    Index(UserRoomValues),
}

impl SerializeRow for MembershipWrite {
    fn serialize(
        &self,
        context: &RowSerializationContext<'_>,
        writer: &mut RowWriter,
    ) -> std::result::Result<(), SerializationError> {
        match self {
            MembershipWrite::Member(values) => values.serialize(context, writer),
            MembershipWrite::Index(values) => values.serialize(context, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

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
    }
}

impl ScyllaStore {
    async fn room_row(&self, room: &RoomId, serial: bool) -> Result<Option<Room>> {
        let statement = if serial {
            &self.statements.select_room_serial
        } else {
            &self.statements.select_room
        };
        let row: Option<RoomRow> = self.first_row(statement, (room.to_string(),)).await?;
        let room = match row {
            Some(row) => row.decode()?,
            None => None,
        };
        if let Some(room) = &room {
            self.remember_room_start(room);
        }
        Ok(room)
    }

    fn remember_room_start(&self, room: &Room) {
        let mut starts = self
            .room_starts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if starts.len() >= super::ROOM_START_CACHE {
            starts.clear();
        }
        starts.insert(room.id, room.created_at);
    }

    /// The buckets the room's messages can lie in, or `None` if there is no
    /// such room. The creation time is cached: it never changes.
    pub(super) async fn room_span(&self, room: &RoomId) -> Result<Option<Span>> {
        let cached = self
            .room_starts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(room)
            .copied();
        let created_at = match cached {
            Some(created_at) => created_at,
            None => match self.room_row(room, false).await? {
                Some(stored) => stored.created_at,
                None => return Ok(None),
            },
        };
        let now = chat_protocol::id::now_ms();
        Ok(Some(Span {
            floor: self.buckets.room_floor(created_at),
            ceiling: self.buckets.ceiling(now),
        }))
    }

    pub(super) async fn room_impl(&self, room: &RoomId) -> Result<Option<Room>> {
        self.room_row(room, false).await
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
                room_values(room, member_count, token),
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

    /// Writes the members of a new room, authority and index rows, in one
    /// logged batch: all of them, eventually, or none.
    async fn write_members(
        &self,
        room: &RoomId,
        members: &[(Id, Role)],
        joined_at: u64,
    ) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        let mut batch = self.logged_batch();
        let mut values = Vec::with_capacity(members.len() * 2);
        for &(user, role) in members {
            batch.append_statement(self.statements.insert_member.clone());
            values.push(MembershipWrite::Member(membership_values(
                room, user, role, joined_at,
            )));
            batch.append_statement(self.statements.insert_user_room.clone());
            values.push(MembershipWrite::Index(user_room_values(
                room, user, joined_at,
            )));
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }

    /// Takes back a room whose members could not be written, so that the
    /// creation is all or nothing and a retry can succeed. Best effort.
    async fn undo_room(&self, room: &RoomId, members: &[(Id, Role)]) {
        let mut batch = self.logged_batch();
        let mut values: Vec<(String, i64)> = Vec::with_capacity(members.len() * 2 + 1);
        for &(user, _) in members {
            batch.append_statement(self.statements.delete_member.clone());
            values.push((room.to_string(), id_to_cql(user)));
        }
        let outcome = async {
            if !values.is_empty() {
                self.session.batch(&batch, values).await?;
                // Index rows are keyed (user, room): a second, separate pass.
                let mut index = self.logged_batch();
                let mut keys = Vec::with_capacity(members.len());
                for &(user, _) in members {
                    index.append_statement(self.statements.leave_user_room.clone());
                    keys.push((id_to_cql(user), room.to_string()));
                }
                self.session.batch(&index, keys).await?;
            }
            self.execute(&self.statements.delete_room, (room.to_string(),))
                .await?;
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
        let created = room_of(&room, members.len());
        self.remember_room_start(&created);
        Ok(created)
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
            let created = room_of(&room, 2);
            self.remember_room_start(&created);
            return Ok((created, true));
        }
        // Read serially: the winner's transaction is committed before ours
        // reported "not applied", and a serial read cannot miss it.
        let stored = self.room_row(&room.id, true).await?.ok_or_else(|| {
            StoreError::Internal(format!("room {} vanished while being opened", room.id))
        })?;
        Ok((stored, false))
    }

    async fn member_row(
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
        // The count the compare-and-set starts from, and a check that the
        // room exists (members of no room would be unreachable rows).
        let Some(current) = self.room_row(room, false).await? else {
            return Err(StoreError::Internal(format!(
                "cannot add a member to room {room}: no such room"
            )));
        };
        let values = membership_values(room, user, role, joined_at);
        let added = match self.lwt(&self.statements.add_member, &values).await? {
            Lwt::Applied => true,
            Lwt::NotApplied(_) => false,
            Lwt::Uncertain(error) => match self.member_row(room, user, true).await? {
                Some((_, stored_role, stored_joined)) => {
                    stored_role == role && stored_joined == joined_at
                }
                None => return Err(error.into()),
            },
        };
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
        if added {
            self.adjust_member_count(room, 1, Some(current.member_count))
                .await;
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
            self.adjust_member_count(room, -1, None).await;
        }
        Ok(removed)
    }

    /// Moves `rooms.member_count` by `delta` with compare-and-set, starting
    /// from `current` (read first if unknown). A membership change has
    /// already happened when this runs, so failing here must not fail the
    /// call: the count is shown to people, access is decided by the rows.
    /// It is logged instead; docs/scylla.md says how such drift is repaired.
    async fn adjust_member_count(&self, room: &RoomId, delta: i32, current: Option<u32>) {
        let key = room.to_string();
        let mut current = current.map(|count| i32::try_from(count).unwrap_or(i32::MAX));
        for _ in 0..MAX_COUNT_ATTEMPTS {
            let expected = match current {
                Some(expected) => expected,
                None => match self.room_row(room, true).await {
                    Ok(Some(stored)) => i32::try_from(stored.member_count).unwrap_or(i32::MAX),
                    Ok(None) => return,
                    Err(error) => {
                        tracing::warn!(%error, %room, "cannot read a member count to adjust");
                        return;
                    }
                },
            };
            let next = expected.saturating_add(delta).max(0);
            match self
                .lwt(
                    &self.statements.cas_member_count,
                    (next, key.as_str(), expected),
                )
                .await
            {
                Ok(Lwt::Applied) => return,
                // Someone else moved it first: retry from what they left.
                Ok(Lwt::NotApplied(answer)) => current = answer.int("member_count"),
                Ok(Lwt::Uncertain(error)) => {
                    tracing::warn!(%error, %room, delta, "member count update outcome unknown");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, %room, delta, "cannot update a member count");
                    return;
                }
            }
        }
        tracing::warn!(%room, delta, "member count update kept losing to others; giving up");
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
        self.execute(
            &self.statements.set_room_owner,
            (id_to_cql(user), room.to_string()),
        )
        .await?;
        Ok(())
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
        let records = self
            .concurrently(
                members.into_iter().enumerate(),
                |(position, (user, role, _))| async move {
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
                let (stored, member) = futures::try_join!(
                    self.room_row(&room, false),
                    self.member_row(&room, user, false)
                )?;
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
    /// read, to answer `false` for non-members.
    pub(super) async fn mark_read_impl(
        &self,
        room: &RoomId,
        user: Id,
        message: Id,
    ) -> Result<bool> {
        if self.member_row(room, user, false).await?.is_none() {
            return Ok(false);
        }
        self.execute(
            &self.statements.mark_read,
            (
                id_write_timestamp(message),
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
        };
        let room = room_of(&new, 3);
        assert_eq!(room.member_count, 3);
        assert_eq!((room.id, room.created_at), (new.id, new.created_at));
    }

    #[test]
    fn creation_tokens_differ() {
        let tokens: std::collections::HashSet<i64> = (0..1000).map(|_| creation_token()).collect();
        assert_eq!(tokens.len(), 1000);
    }
}
