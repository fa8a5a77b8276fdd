//! [`Objects`]: the bytes of files in an object store, streamed both ways.
//!
//! An upload is hashed, sniffed and counted as it streams through; the
//! process holds at most one part (`PART_BYTES`) per upload, plus the
//! parts in flight. Files that fit in one part are written with a single
//! `put`; larger ones as a multipart upload. An upload that fails for any
//! reason (over its limit, the client's body broke off, storage failed, or
//! the request was dropped) leaves no object: a multipart upload is aborted,
//! and a single `put` only ever happens once all the bytes arrived.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chat_protocol::Id;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::metrics::{self, upload_outcome};
use crate::{FilesError, Result, sniff};

/// Size of one part of a multipart upload (S3's minimum is 5 MiB).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one upload sent at once.
const PARTS_IN_FLIGHT: usize = 2;

/// What an upload stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub checksum: String,
    /// Sniffed from the first bytes.
    pub content_type: &'static str,
}

/// The object store holding the bytes of files, keyed by file id.
#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
}

impl Objects {
    pub fn new(store: Arc<dyn ObjectStore>) -> Objects {
        Objects { store }
    }

    /// Streams `body` into the object of file `id`, refusing it with
    /// [`FilesError::TooLarge`] as soon as it passes `limit` bytes. On any
    /// error nothing is left stored.
    pub async fn put<S, E>(&self, id: Id, body: S, limit: u64) -> Result<Stored>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let outcome = self.put_inner(id, body, limit).await;
        let label = match &outcome {
            Ok(stored) => {
                metrics::UPLOADED_BYTES.inc_by(stored.size);
                upload_outcome::STORED
            }
            Err(FilesError::TooLarge { .. }) => upload_outcome::TOO_LARGE,
            Err(FilesError::CutOff(_)) => upload_outcome::CUT_OFF,
            Err(_) => upload_outcome::FAILED,
        };
        metrics::UPLOADS.with_label_values(&[label]).inc();
        outcome
    }

    async fn put_inner<S, E>(&self, id: Id, body: S, limit: u64) -> Result<Stored>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let path = key(id);
        let mut body = std::pin::pin!(body);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut head = BytesMut::new();
        let mut buffer = BytesMut::new();
        let mut multipart: Option<AbortOnDrop> = None;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| FilesError::CutOff(error.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(FilesError::TooLarge { limit });
            }
            hasher.update(&chunk);
            if head.len() < sniff::HEAD_BYTES {
                let wanted = (sniff::HEAD_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..wanted]);
            }
            buffer.extend_from_slice(&chunk);
            if buffer.len() >= PART_BYTES {
                if multipart.is_none() {
                    let upload = self.store.put_multipart(&path).await?;
                    multipart = Some(AbortOnDrop(Some(WriteMultipart::new_with_chunk_size(
                        upload, PART_BYTES,
                    ))));
                }
                if let Some(writer) = multipart.as_mut().and_then(|guard| guard.0.as_mut()) {
                    writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                    writer.put(buffer.split().freeze());
                }
            }
        }
        match multipart.and_then(|mut guard| guard.0.take()) {
            Some(mut writer) => {
                if !buffer.is_empty() {
                    writer.put(buffer.freeze());
                }
                if let Err(error) = writer.finish().await {
                    // finish() aborted the upload itself on failure.
                    return Err(error.into());
                }
            }
            None => {
                self.store
                    .put(&path, PutPayload::from(buffer.freeze()))
                    .await?;
            }
        }
        Ok(Stored {
            size,
            checksum: hex(&hasher.finalize()),
            content_type: sniff::content_type(&head),
        })
    }

    /// The bytes of file `id` (of `range` only, when given), as a stream.
    pub async fn get(
        &self,
        id: Id,
        range: Option<Range<u64>>,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self.store.get_opts(&key(id), options).await?;
        metrics::DOWNLOADS.inc();
        Ok(result.into_stream().map_err(FilesError::from))
    }

    /// Stores the thumbnail (a small PNG) of file `id`.
    pub async fn put_thumbnail(&self, id: Id, png: Bytes) -> Result<()> {
        self.store
            .put(&thumbnail_key(id), PutPayload::from(png))
            .await?;
        Ok(())
    }

    /// The thumbnail of file `id` and its length, as a stream.
    pub async fn get_thumbnail(
        &self,
        id: Id,
    ) -> Result<(u64, impl Stream<Item = Result<Bytes>> + Send + 'static)> {
        let result = self.store.get(&thumbnail_key(id)).await?;
        let length = result.meta.size;
        Ok((length, result.into_stream().map_err(FilesError::from)))
    }

    /// Removes the bytes of file `id` and its thumbnail; removing missing
    /// ones is harmless.
    pub async fn delete(&self, id: Id) -> Result<()> {
        for path in [key(id), thumbnail_key(id)] {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Whether the bytes of file `id` are stored (for checks and tests).
    pub async fn exists(&self, id: Id) -> Result<bool> {
        match self.store.head(&key(id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}

/// Where the bytes of file `id` are kept.
fn key(id: Id) -> Path {
    Path::from(format!("files/{id}"))
}

/// Where the thumbnail of file `id` is kept.
fn thumbnail_key(id: Id) -> Path {
    Path::from(format!("thumbnails/{id}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A multipart upload that is aborted unless it was taken out to finish:
/// an upload cut short by an error, or by the request being dropped,
/// leaves no parts behind.
struct AbortOnDrop(Option<WriteMultipart>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(error) = writer.abort().await {
                    tracing::warn!(%error, "cannot abort a multipart upload");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn objects() -> Objects {
        Objects::new(Arc::new(InMemory::new()))
    }

    fn chunks(parts: Vec<Vec<u8>>) -> impl Stream<Item = std::result::Result<Bytes, String>> {
        futures_util::stream::iter(parts.into_iter().map(|part| Ok(Bytes::from(part))))
    }

    async fn read_all(objects: &Objects, id: Id, range: Option<Range<u64>>) -> Vec<u8> {
        let stream = objects.get(id, range).await.unwrap();
        let parts: Vec<Bytes> = stream.try_collect().await.unwrap();
        parts.concat()
    }

    #[tokio::test]
    async fn small_and_multipart_files_round_trip() {
        let objects = objects();
        let big: Vec<u8> = (0..(PART_BYTES * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        for (id, bytes) in [(Id(1), b"hello".to_vec()), (Id(2), big)] {
            let body = chunks(bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect());
            let stored = objects.put(id, body, u64::MAX).await.unwrap();
            assert_eq!(stored.size, bytes.len() as u64);
            assert_eq!(stored.checksum, hex(&Sha256::digest(&bytes)));
            assert_eq!(read_all(&objects, id, None).await, bytes);
            assert_eq!(read_all(&objects, id, Some(1..4)).await, bytes[1..4]);
        }
    }

    #[tokio::test]
    async fn over_the_limit_or_cut_off_leaves_nothing() {
        let objects = objects();
        let too_big = chunks(vec![vec![0; PART_BYTES]; 3]);
        let limit = PART_BYTES as u64 * 2 + 1;
        assert!(matches!(
            objects.put(Id(3), too_big, limit).await,
            Err(FilesError::TooLarge { .. })
        ));
        assert!(!objects.exists(Id(3)).await.unwrap());

        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from(vec![1u8; PART_BYTES + 1])),
            Err("connection reset".to_owned()),
        ]);
        assert!(matches!(
            objects.put(Id(4), broken, u64::MAX).await,
            Err(FilesError::CutOff(_))
        ));
        assert!(!objects.exists(Id(4)).await.unwrap());
    }

    #[tokio::test]
    async fn deleting_is_idempotent() {
        let objects = objects();
        objects
            .put(Id(5), chunks(vec![b"x".to_vec()]), 10)
            .await
            .unwrap();
        objects.delete(Id(5)).await.unwrap();
        objects.delete(Id(5)).await.unwrap();
        assert!(!objects.exists(Id(5)).await.unwrap());
    }
}
