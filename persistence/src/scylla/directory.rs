//! The room directory and member pages (v1.1).
//!
//! Public group rooms are listed in `public_rooms`, one partition clustered
//! by lower-cased name and room id, written when such a room is created
//! (rooms never change visibility, and are never deleted). A directory page
//! is one slice of that partition, then the rooms themselves (with their
//! member counts) read concurrently. One partition is a deliberate bound:
//! it serves prefix search without a secondary index and stays cheap to
//! some hundreds of thousands of public rooms; beyond, it would be split by
//! the name's first character (docs/scylla.md).
//!
//! A member page is one slice of the room's `room_members` partition
//! (clustered by user id), then the users.

use chat_protocol::{Id, Room, RoomId};

use super::ScyllaStore;
use super::rows::{MemberRow, id_to_cql, room_id_from_cql};
use crate::Result;
use crate::records::{DirectoryCursor, MemberRecord, directory_name};

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
}
