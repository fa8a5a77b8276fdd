//! The rules about files: who may upload how much, who may download a file,
//! and which files a message may carry.
//!
//! - Uploads are rate-limited per user (in the bus's shared state, so the
//!   limit holds across gateways) and bounded by a per-user storage quota.
//!   Two uploads racing for the last of a quota may both fit the check: the
//!   overshoot is bounded by the file size limit per upload in flight.
//! - A file can be read by its uploader and by the members of every room in
//!   which a message carries it; to everyone else it does not exist (404).
//! - A message carries at most [`MAX_ATTACHMENTS`] files, each uploaded by
//!   its sender (so no one can attach, and thereby expose, someone else's
//!   file). The link from message to file is recorded when the message is
//!   accepted, before it is stored: a message that is then lost leaves its
//!   sender's file readable in that room, which the sender asked for. A
//!   retry of a `send` (its `client_id` used already) links nothing new
//!   unless its original was never stored and it is written in its place.
//! - Deleting a message unlinks its files; those no other message carries
//!   are removed by the sweep after the grace period (`chat_files::sweep`).

use chat_bus::{Bucket, RateDecision};
use chat_persistence::{FileRecord, Store, StoreError};
use chat_protocol::{File, Id, Message, RoomId};

use crate::limits::bus_error;
use crate::{Chat, Error, Result};

/// Most files one message carries.
pub const MAX_ATTACHMENTS: usize = 10;

/// Limits on uploads, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadPolicy {
    /// Largest file, in bytes.
    pub max_file_bytes: u64,
    /// Most bytes of files one user may have stored.
    pub quota_bytes: u64,
    /// Sustained uploads per minute per user.
    pub uploads_per_minute: u32,
    /// Uploads a user may make in a burst.
    pub upload_burst: u32,
}

/// How much one upload may store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// Bytes the upload may have.
    pub max_bytes: u64,
    /// Whether the quota, not the file size limit, sets `max_bytes`.
    pub by_quota: bool,
}

impl Allowance {
    /// The error for an upload that went past this allowance.
    pub fn exceeded(&self) -> Error {
        if self.by_quota {
            Error::TooLarge(format!(
                "storage quota exceeded: {} bytes left",
                self.max_bytes
            ))
        } else {
            Error::TooLarge(format!("file is over the {} byte limit", self.max_bytes))
        }
    }
}

impl Chat {
    /// Checks that `user` may upload now and answers how many bytes the
    /// upload may have; takes one upload from their rate budget.
    pub async fn upload_allowance(&self, user: Id, policy: &UploadPolicy) -> Result<Allowance> {
        let per_second = f64::from(policy.uploads_per_minute.max(1)) / 60.0;
        let bucket = Bucket::new(
            format!("rate:upload:{user}"),
            per_second,
            policy.upload_burst.max(1),
        );
        let decision = self
            .bus
            .state
            .take_token(&bucket)
            .await
            .map_err(bus_error)?;
        if let RateDecision::Limited { retry_after } = decision {
            crate::metrics::RATE_LIMITED
                .with_label_values(&[crate::metrics::action::UPLOAD])
                .inc();
            return Err(Error::RateLimited {
                retry_after_ms: retry_after.as_millis().max(1) as u64,
            });
        }
        let used = self.store.uploaded_bytes(user).await?;
        let left = policy.quota_bytes.saturating_sub(used);
        if left == 0 {
            return Err(Error::TooLarge("storage quota exceeded".into()));
        }
        Ok(Allowance {
            max_bytes: left.min(policy.max_file_bytes),
            by_quota: left < policy.max_file_bytes,
        })
    }

    /// A fresh id for a file about to be uploaded.
    pub fn new_file_id(&self) -> Result<Id> {
        self.mint_id()
    }

    /// Records the metadata of a file whose bytes are stored.
    pub async fn record_upload(&self, file: FileRecord) -> Result<File> {
        let shown = file.to_file();
        self.store.insert_file(file).await?;
        Ok(shown)
    }

    /// The file, if `user` may read it: its uploader, or a member of a room
    /// in which a message carries it. `not_found` otherwise, the same as
    /// for a file that does not exist.
    pub async fn readable_file(&self, user: Id, id: Id) -> Result<FileRecord> {
        let file = self.store.file(id).await?.ok_or(Error::NotFound("file"))?;
        if file.uploader == user {
            return Ok(file);
        }
        for room in self.store.file_rooms(id).await? {
            if self.store.membership(&room, user).await?.is_some() {
                return Ok(file);
            }
        }
        Err(Error::NotFound("file"))
    }

    /// The files `sender` attaches with `ids`: at most
    /// [`MAX_ATTACHMENTS`], no repeats, each uploaded by `sender`.
    pub(crate) async fn attachments(&self, sender: Id, ids: &[Id]) -> Result<Vec<File>> {
        if ids.len() > MAX_ATTACHMENTS {
            return Err(Error::bad_request(format!(
                "attachment_ids: at most {MAX_ATTACHMENTS} files per message"
            )));
        }
        let mut files: Vec<File> = Vec::with_capacity(ids.len());
        for &id in ids {
            if files.iter().any(|file| file.id == id) {
                return Err(Error::bad_request("attachment_ids: a file is named twice"));
            }
            match self.store.file(id).await? {
                Some(file) if file.uploader == sender => files.push(file.to_file()),
                // Someone else's file is as unknown as a missing one.
                _ => return Err(Error::bad_request("attachment_ids: unknown file")),
            }
        }
        Ok(files)
    }

    /// Unlinks the attachments of `original`, which was just deleted. A
    /// failure leaves the files readable to the room a while longer (the
    /// tombstone no longer shows them), so it is logged, not returned.
    pub(crate) async fn release_attachments(&self, room: &RoomId, original: &Message) {
        if original.attachments.is_empty() {
            return;
        }
        let ids: Vec<Id> = original.attachments.iter().map(|file| file.id).collect();
        if let Err(error) = self
            .store
            .unlink_files(room, original.id, &ids, self.now_ms())
            .await
        {
            tracing::warn!(%error, message = %original.id, "cannot unlink a deleted message's files");
        }
    }
}

/// Records that `message` carries its attachments, which makes them
/// readable to its room: done before the message is stored, for a new
/// message and for a retry written under its original's id alike.
pub(crate) async fn link_attachments(
    store: &dyn Store,
    message: &Message,
) -> std::result::Result<(), StoreError> {
    if message.attachments.is_empty() {
        return Ok(());
    }
    let ids: Vec<Id> = message.attachments.iter().map(|file| file.id).collect();
    store.link_files(&message.room_id, message.id, &ids).await
}
