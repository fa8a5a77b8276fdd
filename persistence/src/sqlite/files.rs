//! The SQL of uploaded files: metadata, the quota sum, which messages carry
//! a file, and the sweep's candidates.

use chat_protocol::{Id, RoomId};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{FILE_COLUMNS, file_at, id_list_json, id_to_sql, room_id_at, time_to_sql};
use crate::Result;
use crate::records::FileRecord;

pub(crate) fn insert(connection: &Connection, file: &FileRecord) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO files (id, uploader, name, size, content_type, checksum, created_at,
                                thumbnail, unreferenced_since)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            id_to_sql(file.id),
            id_to_sql(file.uploader),
            file.name,
            file.size as i64,
            file.content_type,
            file.checksum,
            time_to_sql(file.created_at),
            file.thumbnail,
        ])?;
    Ok(())
}

pub(crate) fn by_id(connection: &Connection, id: Id) -> Result<Option<FileRecord>> {
    let file = connection
        .prepare_cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"))?
        .query_row([id_to_sql(id)], file_at)
        .optional()?;
    Ok(file)
}

pub(crate) fn uploaded_bytes(connection: &Connection, uploader: Id) -> Result<u64> {
    let total: i64 = connection
        .prepare_cached("SELECT COALESCE(SUM(size), 0) FROM files WHERE uploader = ?1")?
        .query_row([id_to_sql(uploader)], |row| row.get(0))?;
    Ok(total as u64)
}

pub(crate) fn link(
    connection: &Connection,
    room: &RoomId,
    message: Id,
    files: &[Id],
) -> Result<()> {
    let room = room.to_string();
    let mut insert = connection.prepare_cached(
        "INSERT OR IGNORE INTO file_links (file_id, room_id, message_id) VALUES (?1, ?2, ?3)",
    )?;
    for &file in files {
        insert.execute(params![id_to_sql(file), room, id_to_sql(message)])?;
    }
    connection
        .prepare_cached(
            "UPDATE files SET unreferenced_since = NULL
             WHERE id IN (SELECT value FROM json_each(?1))",
        )?
        .execute([id_list_json(files)])?;
    Ok(())
}

pub(crate) fn rooms(connection: &Connection, file: Id) -> Result<Vec<RoomId>> {
    let rooms = connection
        .prepare_cached("SELECT DISTINCT room_id FROM file_links WHERE file_id = ?1")?
        .query_map([id_to_sql(file)], |row| room_id_at(row, 0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rooms)
}

pub(crate) fn unlink(
    connection: &Connection,
    room: &RoomId,
    message: Id,
    files: &[Id],
    at: u64,
) -> Result<()> {
    connection
        .prepare_cached(
            "DELETE FROM file_links
             WHERE room_id = ?1 AND message_id = ?2
               AND file_id IN (SELECT value FROM json_each(?3))",
        )?
        .execute(params![
            room.to_string(),
            id_to_sql(message),
            id_list_json(files)
        ])?;
    connection
        .prepare_cached(
            "UPDATE files SET unreferenced_since = ?2
             WHERE id IN (SELECT value FROM json_each(?1))
               AND unreferenced_since IS NULL
               AND NOT EXISTS (SELECT 1 FROM file_links WHERE file_id = files.id)",
        )?
        .execute(params![id_list_json(files), time_to_sql(at)])?;
    Ok(())
}

pub(crate) fn unreferenced(
    connection: &Connection,
    before: u64,
    limit: u32,
) -> Result<Vec<FileRecord>> {
    let files = connection
        .prepare_cached(&format!(
            "SELECT {FILE_COLUMNS} FROM files
             WHERE unreferenced_since IS NOT NULL AND unreferenced_since < ?1
             ORDER BY unreferenced_since LIMIT ?2"
        ))?
        .query_map(params![time_to_sql(before), limit], file_at)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(files)
}

pub(crate) fn delete(connection: &Connection, id: Id) -> Result<()> {
    connection
        .prepare_cached("DELETE FROM file_links WHERE file_id = ?1")?
        .execute([id_to_sql(id)])?;
    connection
        .prepare_cached("DELETE FROM files WHERE id = ?1")?
        .execute([id_to_sql(id)])?;
    Ok(())
}
