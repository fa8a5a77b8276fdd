//! The SQL of the room directory and of member pages (v1.1).
//!
//! The directory reads the partial index `public_rooms_by_folded_name`
//! (`name_folded, id` of public group rooms; the name as [`directory_name`]
//! folds it, written with the room), so a page is one index range whatever
//! the number of private rooms and DMs. A member
//! page is a range of the `members` primary key `(room_id, user_id)`.
//! Adding a member within a room's limit counts and inserts in one writer
//! job, which the writer (and `BEGIN IMMEDIATE` across processes)
//! serialises: two joins cannot both take the last place.

use chat_protocol::{Id, Role, RoomId};
use rusqlite::{Connection, params};

use super::rows::{
    ROOM_COLUMNS, USER_COLUMN_COUNT, USER_COLUMNS, id_to_sql, role_at, room_at, user_at,
};
use crate::Result;
use crate::records::{DirectoryCursor, MemberAdded, MemberRecord, directory_name};

pub(crate) fn members_page(
    connection: &Connection,
    room: &RoomId,
    after: Option<Id>,
    limit: u32,
) -> Result<Vec<MemberRecord>> {
    let after = after.map_or(i64::MIN, id_to_sql);
    let members = connection
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, m.role FROM members AS m JOIN users AS u ON u.id = m.user_id
             WHERE m.room_id = ?1 AND m.user_id > ?2
             ORDER BY m.user_id
             LIMIT ?3"
        ))?
        .query_map(params![room.to_string(), after, i64::from(limit)], |row| {
            Ok(MemberRecord {
                user: user_at(row, 0)?,
                role: role_at(row, USER_COLUMN_COUNT)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(members)
}

pub(crate) fn public_rooms(
    connection: &Connection,
    prefix: &str,
    after: Option<&DirectoryCursor>,
    limit: u32,
) -> Result<Vec<chat_protocol::Room>> {
    let low = directory_name(prefix);
    // Above every name that starts with the prefix (U+10FFFF is the
    // highest code point; names compare bytewise).
    let high = format!("{low}\u{10FFFF}");
    let (after_name, after_id) = after.map_or((String::new(), String::new()), |cursor| {
        (cursor.name_lower.clone(), cursor.room_id.to_string())
    });
    let rooms = connection
        .prepare_cached(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms AS r
             WHERE r.kind = 'group' AND r.visibility = 'public'
               AND r.name_folded >= ?1 AND r.name_folded < ?2
               AND (r.name_folded > ?3 OR (r.name_folded = ?3 AND r.id > ?4))
             ORDER BY r.name_folded, r.id
             LIMIT ?5"
        ))?
        .query_map(
            params![low, high, after_name, after_id, i64::from(limit)],
            |row| room_at(row, 0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rooms)
}

pub(crate) fn add_member_within(
    connection: &Connection,
    room: &RoomId,
    user: Id,
    role: Role,
    joined_at: u64,
    max_members: u32,
) -> Result<MemberAdded> {
    if super::rooms::membership(connection, room, user)?.is_some() {
        return Ok(MemberAdded::AlreadyMember);
    }
    let count: i64 = connection
        .prepare_cached("SELECT count(*) FROM members WHERE room_id = ?1")?
        .query_row([room.to_string()], |row| row.get(0))?;
    if count >= i64::from(max_members) {
        return Ok(MemberAdded::Full);
    }
    Ok(
        if super::rooms::add_member(connection, room, user, role, joined_at)? {
            MemberAdded::Added
        } else {
            MemberAdded::AlreadyMember
        },
    )
}
