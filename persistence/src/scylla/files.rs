//! Uploaded files: metadata by id, sizes by uploader (the quota), the links
//! from messages (access), and the unreferenced ones (the sweep).
//!
//! Every write is an idempotent write of fixed values to fixed keys. Linking
//! and unlinking are not transactions: a file unlinked from its last
//! message while another message links it may be left listed as
//! unreferenced; the sweep checks the links again before it deletes.

use chat_protocol::{Id, RoomId};
use scylla::DeserializeRow;

use super::ScyllaStore;
use super::rows::{id_from_cql, id_to_cql, room_id_from_cql, time_from_cql, time_to_cql};
use crate::Result;
use crate::records::FileRecord;

/// The one partition of `unreferenced_files`.
const UNREFERENCED_SHARD: i32 = 0;

#[derive(Debug, DeserializeRow)]
struct FileRow {
    id: i64,
    uploader: Option<i64>,
    name: Option<String>,
    size: Option<i64>,
    content_type: Option<String>,
    checksum: Option<String>,
    created_at: Option<i64>,
    thumbnail: Option<bool>,
}

impl FileRow {
    /// The record; a row without its uploader (a half-applied delete) is
    /// no file.
    fn decode(self) -> Option<FileRecord> {
        Some(FileRecord {
            id: id_from_cql(self.id),
            uploader: id_from_cql(self.uploader?),
            name: self.name.unwrap_or_default(),
            size: self.size.unwrap_or_default().max(0) as u64,
            content_type: self
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            checksum: self.checksum.unwrap_or_default(),
            created_at: time_from_cql(self.created_at.unwrap_or_default()),
            thumbnail: self.thumbnail.unwrap_or_default(),
        })
    }
}

impl ScyllaStore {
    pub(super) async fn insert_file_impl(&self, file: FileRecord) -> Result<()> {
        let id = id_to_cql(file.id);
        let uploader = id_to_cql(file.uploader);
        let size = file.size as i64;
        let mut batch = self.logged_batch();
        batch.append_statement(self.statements.insert_file.clone());
        batch.append_statement(self.statements.insert_file_of_uploader.clone());
        batch.append_statement(self.statements.insert_unreferenced_file.clone());
        let values = (
            (
                id,
                uploader,
                file.name.as_str(),
                size,
                file.content_type.as_str(),
                file.checksum.as_str(),
                time_to_cql(file.created_at),
                file.thumbnail,
            ),
            (uploader, id, size),
            (UNREFERENCED_SHARD, id, time_to_cql(file.created_at)),
        );
        self.session.batch(&batch, values).await?;
        Ok(())
    }

    pub(super) async fn file_impl(&self, id: Id) -> Result<Option<FileRecord>> {
        let row: Option<FileRow> = self
            .first_row(&self.statements.select_file, (id_to_cql(id),))
            .await?;
        Ok(row.and_then(FileRow::decode))
    }

    pub(super) async fn uploaded_bytes_impl(&self, uploader: Id) -> Result<u64> {
        let sizes: Vec<(Option<i64>,)> = self
            .all_rows(
                &self.statements.select_sizes_of_uploader,
                (id_to_cql(uploader),),
            )
            .await?;
        Ok(sizes
            .into_iter()
            .map(|(size,)| size.unwrap_or_default().max(0) as u64)
            .sum())
    }

    pub(super) async fn link_files_impl(
        &self,
        room: &RoomId,
        message: Id,
        files: &[Id],
    ) -> Result<()> {
        let room = room.to_string();
        for &file in files {
            let file = id_to_cql(file);
            let mut batch = self.logged_batch();
            batch.append_statement(self.statements.insert_file_link.clone());
            batch.append_statement(self.statements.delete_unreferenced_file.clone());
            let values = (
                (file, room.as_str(), id_to_cql(message)),
                (UNREFERENCED_SHARD, file),
            );
            self.session.batch(&batch, values).await?;
        }
        Ok(())
    }

    pub(super) async fn file_rooms_impl(&self, file: Id) -> Result<Vec<RoomId>> {
        let rows: Vec<(String,)> = self
            .all_rows(&self.statements.select_file_rooms, (id_to_cql(file),))
            .await?;
        let mut rooms = rows
            .iter()
            .map(|(room,)| room_id_from_cql(room))
            .collect::<Result<Vec<_>>>()?;
        rooms.dedup();
        Ok(rooms)
    }

    pub(super) async fn unlink_files_impl(
        &self,
        room: &RoomId,
        message: Id,
        files: &[Id],
        at: u64,
    ) -> Result<()> {
        let room = room.to_string();
        for &file in files {
            let file = id_to_cql(file);
            self.execute(
                &self.statements.delete_file_link,
                (file, room.as_str(), id_to_cql(message)),
            )
            .await?;
            let other: Option<(String,)> = self
                .first_row(&self.statements.select_any_file_link, (file,))
                .await?;
            if other.is_none() {
                self.execute(
                    &self.statements.insert_unreferenced_file,
                    (UNREFERENCED_SHARD, file, time_to_cql(at)),
                )
                .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn unreferenced_files_impl(
        &self,
        before: u64,
        limit: u32,
    ) -> Result<Vec<FileRecord>> {
        let rows: Vec<(i64, Option<i64>)> = self
            .all_rows(
                &self.statements.select_unreferenced_files,
                (UNREFERENCED_SHARD,),
            )
            .await?;
        let mut due: Vec<(u64, i64)> = rows
            .into_iter()
            .map(|(id, since)| (time_from_cql(since.unwrap_or_default()), id))
            .filter(|&(since, _)| since < before)
            .collect();
        due.sort_unstable();
        let mut files = Vec::new();
        for (_, id) in due.into_iter().take(limit as usize) {
            match self.file_impl(id_from_cql(id)).await? {
                Some(file) => files.push(file),
                // Metadata already gone: only the listing is left over.
                None => {
                    self.execute(
                        &self.statements.delete_unreferenced_file,
                        (UNREFERENCED_SHARD, id),
                    )
                    .await?;
                }
            }
        }
        Ok(files)
    }

    pub(super) async fn delete_file_impl(&self, id: Id) -> Result<()> {
        let Some(file) = self.file_impl(id).await? else {
            self.execute(
                &self.statements.delete_unreferenced_file,
                (UNREFERENCED_SHARD, id_to_cql(id)),
            )
            .await?;
            return Ok(());
        };
        let id = id_to_cql(id);
        let mut batch = self.logged_batch();
        batch.append_statement(self.statements.delete_file_of_uploader.clone());
        batch.append_statement(self.statements.delete_file_links.clone());
        batch.append_statement(self.statements.delete_unreferenced_file.clone());
        batch.append_statement(self.statements.delete_file.clone());
        let values = (
            (id_to_cql(file.uploader), id),
            (id,),
            (UNREFERENCED_SHARD, id),
            (id,),
        );
        self.session.batch(&batch, values).await?;
        Ok(())
    }
}
