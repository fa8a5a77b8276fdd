//! The room directory and member pages (v1.1).
//!
//! Public group rooms are listed in `public_rooms`, one partition clustered
//! by folded name ([`directory_name`]) and room id, written when such a room is created
//! (rooms never change visibility, and are never deleted). A directory page
//! is one slice of that partition, then the rooms themselves (with their
//! member counts) read concurrently. One partition is a deliberate bound:
//! it serves prefix search without a secondary index and stays cheap to
//! some hundreds of thousands of public rooms; beyond, it would be split by
//! the name's first character (docs/scylla.md).
//!
//! A room's own member limit is a row of `room_limits`, written before the
//! room itself (so a room never exists without its limit; a limit without
//! a room, after a failed creation, is never read). Adding a member within
//! the limit is optimistic, as counters and lightweight transactions do
//! not combine: refuse if the count is at the limit, add, read the count
//! again, and take the add back if it went over. Two racing joins for the
//! last place may thus both be refused, but the room never stays over its
//! limit.
//!
//! A member page is one slice of the room's `room_members` partition
//! (clustered by user id), then the users.

use chat_protocol::{Id, Role, Room, RoomId};

use super::ScyllaStore;
use super::rows::{MemberRow, id_to_cql, room_id_from_cql};
use crate::Result;
use crate::records::{DirectoryCursor, MemberAdded, MemberRecord, directory_name};

/// The one partition of `public_rooms`.
const DIRECTORY_SHARD: i32 = 0;

impl ScyllaStore {
    /// Lists a newly created room in the directory if it is a public group.
    pub(super) async fn list_in_directory(&self, room: &Room) -> Result<()> {
        if room.kind != chat_protocol::RoomKind::Group
            || room.visibility != chat_protocol::Visibility::Public
        {
            return Ok(());
        }
        self.execute(
            &self.statements.insert_public_room,
            (
                DIRECTORY_SHARD,
                directory_name(&room.name),
                room.id.to_string(),
            ),
        )
        .await?;
        Ok(())
    }

    /// Schema version 3 to 4: moves the directory rows whose key was folded
    /// with ASCII rules alone (names with capitals beyond ASCII) to
    /// [`directory_name`]'s key, which folding the old key gives (ASCII
    /// rules first change nothing the full fold would not). Idempotent: a
    /// row already moved folds to itself, and a run cut short is finished
    /// by the next. Answers how many rows moved.
    pub(super) async fn fold_directory_keys(&self) -> Result<usize> {
        let keys: Vec<(String, String)> = self
            .all_rows(&self.statements.select_directory_keys, (DIRECTORY_SHARD,))
            .await?;
        let mut moved = 0;
        for (key, room_id) in keys {
            let folded = directory_name(&key);
            if folded == key {
                continue;
            }
            // Written before the old row goes, so the room is never missing.
            self.execute(
                &self.statements.insert_public_room,
                (DIRECTORY_SHARD, folded, &room_id),
            )
            .await?;
            self.execute(
                &self.statements.delete_public_room,
                (DIRECTORY_SHARD, key, room_id),
            )
            .await?;
            moved += 1;
        }
        Ok(moved)
    }

    pub(super) async fn public_rooms_impl(
        &self,
        prefix: &str,
        after: Option<DirectoryCursor>,
        limit: u32,
    ) -> Result<Vec<Room>> {
        let low = directory_name(prefix);
        let high = format!("{low}\u{10FFFF}");
        let (after_name, after_id) = match after {
            Some(cursor) if cursor.name_lower >= low => {
                (cursor.name_lower, cursor.room_id.to_string())
            }
            _ => (low, String::new()),
        };
        let rows: Vec<(String,)> = self
            .rows(
                &self.statements.select_public_rooms,
                (
                    DIRECTORY_SHARD,
                    after_name,
                    after_id,
                    high,
                    i32::try_from(limit.max(1)).unwrap_or(i32::MAX),
                ),
            )
            .await?;
        let ids = rows
            .iter()
            .map(|(id,)| room_id_from_cql(id))
            .collect::<Result<Vec<RoomId>>>()?;
        let rooms = self
            .concurrently(ids.into_iter().enumerate(), |(position, id)| async move {
                Ok((position, self.room_impl(&id).await?))
            })
            .await?;
        let mut rooms: Vec<(usize, Room)> = rooms
            .into_iter()
            .filter_map(|(position, room)| room.map(|room| (position, room)))
            .collect();
        rooms.sort_by_key(|(position, _)| *position);
        Ok(rooms.into_iter().map(|(_, room)| room).collect())
    }

    pub(super) async fn members_page_impl(
        &self,
        room: &RoomId,
        after: Option<Id>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>> {
        let rows: Vec<MemberRow> = self
            .rows(
                &self.statements.select_members_after,
                (
                    room.to_string(),
                    after.map_or(i64::MIN, id_to_cql),
                    i32::try_from(limit.max(1)).unwrap_or(i32::MAX),
                ),
            )
            .await?;
        let mut members = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some((user, role, _)) = row.decode()? {
                members.push((user, role));
            }
        }
        self.member_records(members).await
    }

    /// Records a new room's own member limit, before the room is created.
    pub(super) async fn insert_room_limit(&self, room: &RoomId, max_members: u32) -> Result<()> {
        let max = i32::try_from(max_members).unwrap_or(i32::MAX);
        self.execute(&self.statements.insert_room_limit, (room.to_string(), max))
            .await?;
        Ok(())
    }

    pub(super) async fn room_limit(&self, room: &RoomId) -> Result<Option<u32>> {
        let row: Option<(Option<i32>,)> = self
            .first_row(&self.statements.select_room_limit, (room.to_string(),))
            .await?;
        Ok(row
            .and_then(|(max,)| max)
            .and_then(|max| u32::try_from(max).ok()))
    }

    async fn member_count_now(&self, room: &RoomId) -> Result<u32> {
        Ok(self
            .room_with_count(room)
            .await?
            .map_or(0, |room| room.member_count))
    }

    pub(super) async fn add_member_within_impl(
        &self,
        room: &RoomId,
        user: Id,
        role: Role,
        joined_at: u64,
        max_members: u32,
    ) -> Result<MemberAdded> {
        if self.member_row(room, user, false).await?.is_some() {
            return Ok(MemberAdded::AlreadyMember);
        }
        if self.member_count_now(room).await? >= max_members {
            return Ok(MemberAdded::Full);
        }
        if !self.add_member_impl(room, user, role, joined_at).await? {
            return Ok(MemberAdded::AlreadyMember);
        }
        if self.member_count_now(room).await? > max_members {
            self.remove_member_impl(room, user).await?;
            return Ok(MemberAdded::Full);
        }
        Ok(MemberAdded::Added)
    }
}
