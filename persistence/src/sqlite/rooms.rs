//! The SQL of rooms, memberships and read positions.
//!
//! Functions that change several rows (creating a room with its members,
//! opening a DM, transferring ownership) are meant to run as ONE writer job,
//! whose savepoint makes them all-or-nothing; the writer thread (and, across
//! processes, `BEGIN IMMEDIATE`) serialises them, which is what makes
//! "check, then insert" race-free here.
//!
//! A room's member count is always computed from `members`, never stored,
//! so it cannot drift.

use chat_protocol::{Id, Role, Room, RoomId};
use rusqlite::{Connection, OptionalExtension, params};

use super::errors::is_unique_violation;
use super::rows::{
    MEMBERSHIP_COLUMNS, ROOM_COLUMN_COUNT, ROOM_COLUMNS, USER_COLUMN_COUNT, USER_COLUMNS,
    id_from_sql, id_list_json, id_to_sql, kind_to_sql, membership_at, role_at, role_to_sql,
    room_at, time_to_sql, user_at, visibility_to_sql,
};
use crate::records::{
    MemberRecord, Membership, MembershipVersions, NewRoom, UserRoom, directory_name,
};
use crate::{Result, StoreError};

/// Inserts the room row and answers whether it did. If a room with this id
/// exists, answers `false` when `if_absent` (opening a DM is idempotent) and
/// fails with `Conflict` otherwise (creating a group room is not).
fn insert_room(connection: &Connection, room: &NewRoom, if_absent: bool) -> Result<bool> {
    let sql = if if_absent {
        "INSERT INTO rooms (id, kind, name, visibility, owner_id, created_at, max_members, name_folded)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING"
    } else {
        "INSERT INTO rooms (id, kind, name, visibility, owner_id, created_at, max_members, name_folded)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    };
    let inserted = connection.prepare_cached(sql)?.execute(params![
        room.id.to_string(),
        kind_to_sql(room.kind),
        room.name,
        visibility_to_sql(room.visibility),
        room.owner_id.map(id_to_sql),
        time_to_sql(room.created_at),
        room.max_members,
        directory_name(&room.name),
    ]);
    match inserted {
        Ok(rows) => Ok(rows == 1),
        Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict(format!(
            "room {} already exists",
            room.id
        ))),
        Err(error) => Err(error.into()),
    }
}

/// Adds a member unless they already are one; answers whether they were added.
pub(crate) fn add_member(
    connection: &Connection,
    room: &RoomId,
    user: Id,
    role: Role,
    joined_at: u64,
) -> Result<bool> {
    let added = connection
        .prepare_cached(
            "INSERT INTO members (room_id, user_id, role, last_read, joined_at)
             VALUES (?1, ?2, ?3, NULL, ?4) ON CONFLICT (room_id, user_id) DO NOTHING",
        )?
        .execute(params![
            room.to_string(),
            id_to_sql(user),
            role_to_sql(role),
            time_to_sql(joined_at),
        ])?;
    if added == 1 {
        bump_membership_version(connection, room)?;
    }
    Ok(added == 1)
}

/// Moves the room's membership version on, in the caller's transaction.
fn bump_membership_version(connection: &Connection, room: &RoomId) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO membership_versions (room_id, version) VALUES (?1, 1)
             ON CONFLICT (room_id) DO UPDATE SET version = version + 1",
        )?
        .execute([room.to_string()])?;
    Ok(())
}

/// The membership version of each of `rooms` (listed once each or more).
pub(crate) fn membership_versions(
    connection: &Connection,
    rooms: &[RoomId],
) -> Result<MembershipVersions> {
    let mut versions = MembershipVersions::new();
    for room in rooms {
        if !versions.contains_key(room) {
            versions.insert(*room, membership_version(connection, room)?);
        }
    }
    Ok(versions)
}

pub(crate) fn membership_version(connection: &Connection, room: &RoomId) -> Result<u64> {
    let version: Option<i64> = connection
        .prepare_cached("SELECT version FROM membership_versions WHERE room_id = ?1")?
        .query_row([room.to_string()], |row| row.get(0))
        .optional()?;
    Ok(version.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
}

/// Creates the room and its members; members join at the room's creation
/// time. A member listed twice is added once (the first role wins).
pub(crate) fn create(
    connection: &Connection,
    room: &NewRoom,
    members: &[(Id, Role)],
) -> Result<Room> {
    insert_room(connection, room, false)?;
    for &(user, role) in members {
        add_member(connection, &room.id, user, role, room.created_at)?;
    }
    by_id(connection, &room.id)?.ok_or_else(|| {
        StoreError::Internal(format!("room {} vanished while being created", room.id))
    })
}

/// Creates the DM room with both its users as members unless it exists, and
/// answers it with whether this call created it. An existing room is
/// answered as stored, members untouched.
pub(crate) fn open_dm(connection: &Connection, room: &NewRoom) -> Result<(Room, bool)> {
    let Some((lo, hi)) = room.id.dm_users() else {
        return Err(StoreError::Internal(format!(
            "open_dm needs a direct-message room id, not {}",
            room.id
        )));
    };
    let created = insert_room(connection, room, true)?;
    if created {
        for user in [lo, hi] {
            add_member(connection, &room.id, user, Role::Member, room.created_at)?;
        }
    }
    let stored = by_id(connection, &room.id)?.ok_or_else(|| {
        StoreError::Internal(format!("room {} vanished while being opened", room.id))
    })?;
    Ok((stored, created))
}

pub(crate) fn by_id(connection: &Connection, room: &RoomId) -> Result<Option<Room>> {
    let room = connection
        .prepare_cached(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms AS r WHERE r.id = ?1"
        ))?
        .query_row([room.to_string()], |row| room_at(row, 0))
        .optional()?;
    Ok(room)
}

pub(crate) fn membership(
    connection: &Connection,
    room: &RoomId,
    user: Id,
) -> Result<Option<Membership>> {
    let membership = connection
        .prepare_cached(&format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM members AS m WHERE m.room_id = ?1 AND m.user_id = ?2"
        ))?
        .query_row(params![room.to_string(), id_to_sql(user)], |row| {
            membership_at(row, 0)
        })
        .optional()?;
    Ok(membership)
}

pub(crate) fn memberships(
    connection: &Connection,
    room: &RoomId,
    users: &[Id],
) -> Result<Vec<(Id, Role)>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let memberships = connection
        .prepare_cached(
            "SELECT m.user_id, m.role FROM members AS m
             WHERE m.room_id = ?1 AND m.user_id IN (SELECT value FROM json_each(?2))",
        )?
        .query_map(params![room.to_string(), id_list_json(users)], |row| {
            Ok((id_from_sql(row.get(0)?), role_at(row, 1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(memberships)
}

pub(crate) fn remove_member(connection: &Connection, room: &RoomId, user: Id) -> Result<bool> {
    let removed = connection
        .prepare_cached("DELETE FROM members WHERE room_id = ?1 AND user_id = ?2")?
        .execute(params![room.to_string(), id_to_sql(user)])?;
    if removed == 1 {
        bump_membership_version(connection, room)?;
    }
    Ok(removed == 1)
}

/// Promotes a member to owner and records them as the room's owner. Other
/// members' roles (a previous owner's included) are left as they are.
///
/// The trait only defines this for members: for anyone else it fails with
/// `Internal` (a caller bug) and changes nothing.
pub(crate) fn set_owner(connection: &Connection, room: &RoomId, user: Id) -> Result<()> {
    let promoted = connection
        .prepare_cached("UPDATE members SET role = ?3 WHERE room_id = ?1 AND user_id = ?2")?
        .execute(params![
            room.to_string(),
            id_to_sql(user),
            role_to_sql(Role::Owner)
        ])?;
    if promoted == 0 {
        return Err(StoreError::Internal(format!(
            "cannot make user {user} the owner of room {room}: not a member"
        )));
    }
    connection
        .prepare_cached("UPDATE rooms SET owner_id = ?2 WHERE id = ?1")?
        .execute(params![room.to_string(), id_to_sql(user)])?;
    Ok(())
}

/// Members whose user row is missing cannot be described, so they are left
/// out (the foreign key makes that impossible for rows written here).
pub(crate) fn members(connection: &Connection, room: &RoomId) -> Result<Vec<MemberRecord>> {
    let members = connection
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, m.role FROM members AS m JOIN users AS u ON u.id = m.user_id
             WHERE m.room_id = ?1
             ORDER BY m.joined_at, m.user_id"
        ))?
        .query_map([room.to_string()], |row| {
            Ok(MemberRecord {
                user: user_at(row, 0)?,
                role: role_at(row, USER_COLUMN_COUNT)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(members)
}

pub(crate) fn member_ids(connection: &Connection, room: &RoomId) -> Result<Vec<Id>> {
    let ids = connection
        .prepare_cached("SELECT user_id FROM members WHERE room_id = ?1")?
        .query_map([room.to_string()], |row| row.get(0).map(id_from_sql))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

pub(crate) fn rooms_of(connection: &Connection, user: Id) -> Result<Vec<UserRoom>> {
    let rooms = connection
        .prepare_cached(&format!(
            "SELECT {ROOM_COLUMNS}, {MEMBERSHIP_COLUMNS}
             FROM members AS m JOIN rooms AS r ON r.id = m.room_id
             WHERE m.user_id = ?1
             ORDER BY m.joined_at, r.id"
        ))?
        .query_map([id_to_sql(user)], |row| {
            Ok(UserRoom {
                room: room_at(row, 0)?,
                membership: membership_at(row, ROOM_COLUMN_COUNT)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rooms)
}

/// Moves the read position forward only: `max` keeps the newer of the two.
/// SQLite counts a matched row as changed even when its value stays, so the
/// answer is exactly "is a member".
pub(crate) fn mark_read(
    connection: &Connection,
    room: &RoomId,
    user: Id,
    message: Id,
) -> Result<bool> {
    let updated = connection
        .prepare_cached(
            "UPDATE members SET last_read = max(coalesce(last_read, ?3), ?3)
             WHERE room_id = ?1 AND user_id = ?2",
        )?
        .execute(params![
            room.to_string(),
            id_to_sql(user),
            id_to_sql(message)
        ])?;
    Ok(updated == 1)
}
