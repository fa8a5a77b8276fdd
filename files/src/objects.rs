//! [`Objects`]: the bytes of files in an object store, streamed both ways.
//!
//! An upload is hashed, sniffed and counted as it streams through; the
//! process holds at most one part (`PART_BYTES`) per upload, plus the
//! parts in flight. Files that fit in one part are written with a single
//! `put`; larger ones as a multipart upload. An upload that fails for any
//! reason (over its limit, the client's body broke off, storage failed, or
//! the request was dropped) leaves no object: a multipart upload is aborted,
//! and a single `put` only ever happens once all the bytes arrived.
//!
//! A bucket and a directory ([`Backing`]) differ in two ways. A download
//! streams one request from a bucket, but reads a directory one chunk at a
//! time, so that a download waiting on a slow client holds no open file.
//! And a file written to a directory is flushed to disk before its upload
//! counts as stored, as a bucket's is once its `PUT` is answered.

use std::collections::BinaryHeap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chat_protocol::Id;
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::in_progress::{Unrecorded, Uploading, Uploads, is_uploading};
use crate::listing::{Listed, Page, file_of};
use crate::metrics::{self, upload_outcome};
use crate::{FilesError, Result, directory, sniff};

/// Size of one part of a multipart upload (S3's minimum is 5 MiB).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one upload sent at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes read at once by a download that reads chunk by chunk: large
/// enough that opening the file is a small part of reading it, small
/// enough that a download waiting on its client holds little memory.
const CHUNK_BYTES: u64 = 64 * 1024;
/// Chunk reads in progress at once, per process: how many files downloads
/// from a directory hold open at any moment, whatever their number. A
/// read from the page cache takes microseconds, so this many keep up with
/// far more downloads than a network can carry.
const CHUNK_READS_AT_ONCE: usize = 32;

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
    backing: Backing,
    /// Permits for chunk reads (`CHUNK_READS_AT_ONCE`), shared by clones.
    chunk_reads: Arc<Semaphore>,
    /// The files whose objects (bytes or thumbnail) this process is
    /// writing or has not recorded yet, which the sweep leaves alone; a
    /// count, as one upload marks its file more than once at a time.
    uploading: Uploads,
}

/// What holds the objects, where that changes how they are read and
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// A bucket (or any store but a directory; an in-memory one in tests).
    /// A download is one streamed read, held open until the client has
    /// taken every byte: each read is a request, billed and tens of
    /// milliseconds away. An object is durable once its `PUT` is
    /// answered.
    Bucket,
    /// A directory on this machine: the store's root, under which an
    /// object's path names its file.
    ///
    /// A download is one ranged read per chunk (`CHUNK_BYTES`), each
    /// opening the file and closing it again, at most
    /// `CHUNK_READS_AT_ONCE` at once. A streamed read would hold an open
    /// file for as long as its client is slow, a descriptor beside the
    /// connection's, and slow downloads could use up the descriptors that
    /// the connection cap keeps back for the process's own files. Opening
    /// a file costs microseconds.
    ///
    /// A file written is flushed to disk, with the directory entry naming
    /// it, before the write counts as done: the store behind it commits
    /// durably, and a message must not outlive its attachment's bytes in a
    /// power cut. (`object_store` writes and renames without flushing.)
    Directory(PathBuf),
}

impl Objects {
    pub fn new(store: Arc<dyn ObjectStore>, backing: Backing) -> Objects {
        Objects {
            store,
            backing,
            chunk_reads: Arc::new(Semaphore::new(CHUNK_READS_AT_ONCE)),
            uploading: Arc::default(),
        }
    }

    /// What holds the objects.
    pub fn backing(&self) -> &Backing {
        &self.backing
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
        let _uploading = Uploading::new(&self.uploading, id);
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
        self.flush(&path).await?;
        Ok(Stored {
            size,
            checksum: hex(&hasher.finalize()),
            content_type: sniff::content_type(&head),
        })
    }

    /// The bytes of file `id` (of `range` only, when given), as a stream;
    /// [`FilesError::NotFound`] when there are none.
    pub async fn get(
        &self,
        id: Id,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let (_, stream) = self.read(key(id), range).await?;
        metrics::DOWNLOADS.inc();
        Ok(stream)
    }

    /// Reads `range` (the whole object when `None`) of the object at
    /// `path`, the way its [`Backing`] reads: the object's whole size and
    /// the bytes.
    async fn read(
        &self,
        path: Path,
        range: Option<Range<u64>>,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        match self.backing {
            Backing::Bucket => {
                let options = GetOptions {
                    range: range.map(GetRange::Bounded),
                    ..GetOptions::default()
                };
                let result = self.store.get_opts(&path, options).await?;
                let size = result.meta.size;
                Ok((size, result.into_stream().map_err(FilesError::from).boxed()))
            }
            Backing::Directory(_) => {
                // Looked up first, so that a missing object is an error
                // here and not in the middle of a response.
                let size = self.store.head(&path).await?.size;
                let range = range.unwrap_or(0..size);
                let (store, reads) = (Arc::clone(&self.store), Arc::clone(&self.chunk_reads));
                let chunks = stream::try_unfold(range.start, move |start| {
                    let (store, reads, path) =
                        (Arc::clone(&store), Arc::clone(&reads), path.clone());
                    async move {
                        if start >= range.end {
                            return Ok(None);
                        }
                        let end = range.end.min(start.saturating_add(CHUNK_BYTES));
                        // Never closed, so acquiring cannot fail.
                        let _reading = reads.acquire().await;
                        let chunk = store.get_range(&path, start..end).await?;
                        Ok(Some((chunk, end)))
                    }
                });
                Ok((size, chunks.boxed()))
            }
        }
    }

    /// Stores the thumbnail (a small PNG) of file `id`.
    pub async fn put_thumbnail(&self, id: Id, png: Bytes) -> Result<()> {
        let path = thumbnail_key(id);
        let _writing = Uploading::new(&self.uploading, id);
        self.store.put(&path, PutPayload::from(png)).await?;
        self.flush(&path).await
    }

    /// Removes the unfinished objects of uploads that died with their
    /// process (killed in the middle of writing to a directory), once
    /// nothing has written to them for `idle`; answers how many.
    ///
    /// `object_store` writes an object to a directory as `<object>#<n>`
    /// and renames it into place when complete; an upload cut short in the
    /// process removes its own, but one whose process died leaves it for
    /// ever. Those of this process's uploads in progress are left alone,
    /// and `idle` (the sweep's grace, a day) spares another process's
    /// sharing the directory. A bucket keeps no such objects (an
    /// unfinished multipart upload there is for a lifecycle rule to
    /// abort).
    pub async fn remove_unfinished(&self, idle: Duration) -> usize {
        let Backing::Directory(root) = &self.backing else {
            return 0;
        };
        let (root, uploading) = (root.clone(), Arc::clone(&self.uploading));
        let removed = tokio::task::spawn_blocking(move || {
            directory::remove_unfinished(&root, &FOLDERS, idle, |id| is_uploading(&uploading, id))
        })
        .await
        .unwrap_or(0);
        metrics::LEFTOVERS
            .with_label_values(&[metrics::leftover::UNFINISHED])
            .inc_by(removed as u64);
        removed
    }

    /// Makes the object just written at `path` durable (see [`Backing`]);
    /// one that cannot be is removed again, so that a failed write leaves
    /// nothing.
    async fn flush(&self, path: &Path) -> Result<()> {
        let Backing::Directory(root) = &self.backing else {
            return Ok(());
        };
        let file = root.join(path.as_ref());
        let flushed = tokio::task::spawn_blocking(move || directory::flush_to_disk(&file))
            .await
            .unwrap_or_else(|panicked| Err(std::io::Error::other(panicked)));
        if let Err(error) = flushed {
            if let Err(cleanup) = self.store.delete(path).await {
                tracing::warn!(%cleanup, %path, "cannot remove a file that was not flushed");
            }
            return Err(FilesError::Storage(format!(
                "cannot flush {path} to disk: {error}"
            )));
        }
        Ok(())
    }

    /// The thumbnail of file `id` and its length, as a stream.
    pub async fn get_thumbnail(&self, id: Id) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        self.read(thumbnail_key(id), None).await
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

    /// Guards the objects of file `id`, just stored, until the upload's
    /// metadata is written ([`Unrecorded::recorded`]): dropped before that
    /// (the metadata could not be written, or the request was dropped
    /// because its client hung up while the thumbnail was made), it
    /// removes them, so that no object is left that no metadata names.
    /// Meanwhile the sweep leaves them alone. (A request dropped in the
    /// last moments of [`Objects::put`] can still leave an object, for the
    /// sweep to find after its grace period.)
    pub fn until_recorded(&self, id: Id) -> Unrecorded {
        Unrecorded::new(self.clone(), &self.uploading, id)
    }

    /// Up to `limit` stored objects (bytes and thumbnails), in key order,
    /// from the first after `after` (from the first of all with `None`).
    pub async fn list_page(&self, after: Option<&Path>, limit: usize) -> Result<Page> {
        let listing = match after {
            Some(after) => self.store.list_with_offset(None, after),
            None => self.store.list(None),
        };
        let listed: Vec<(Path, i64)> = match &self.backing {
            // A bucket lists in key order (S3 promises it): its first
            // `limit` are the page, and the rest is not asked for.
            Backing::Bucket => {
                listing
                    .take(limit)
                    .map_ok(|meta| (meta.location, meta.last_modified.timestamp_millis()))
                    .try_collect()
                    .await?
            }
            // A directory lists in no order: walk it all, keeping the
            // first `limit` in key order.
            Backing::Directory(_) => {
                let mut first = BinaryHeap::with_capacity(limit + 1);
                let mut listing = listing;
                while let Some(meta) = listing.try_next().await? {
                    first.push((meta.location, meta.last_modified.timestamp_millis()));
                    if first.len() > limit {
                        first.pop();
                    }
                }
                first.into_sorted_vec()
            }
        };
        let next = match listed.last() {
            Some((last, _)) if listed.len() >= limit => Some(last.clone()),
            _ => None,
        };
        let objects = listed
            .into_iter()
            .filter_map(|(location, modified)| {
                let file = file_of(&location)?;
                Some(Listed {
                    file,
                    modified_ms: u64::try_from(modified).unwrap_or_default(),
                    in_progress: is_uploading(&self.uploading, file),
                })
            })
            .collect();
        Ok(Page { objects, next })
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
pub(crate) fn key(id: Id) -> Path {
    Path::from(format!("{FILES}/{id}"))
}

/// Where the thumbnail of file `id` is kept.
pub(crate) fn thumbnail_key(id: Id) -> Path {
    Path::from(format!("{THUMBNAILS}/{id}"))
}

/// The folders objects are kept in: `<folder>/<file id>`.
const FILES: &str = "files";
const THUMBNAILS: &str = "thumbnails";
pub(crate) const FOLDERS: [&str; 2] = [FILES, THUMBNAILS];

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
        Objects::new(Arc::new(InMemory::new()), Backing::Bucket)
    }

    /// Objects in a new directory, read chunk by chunk as `chatd serve`
    /// reads them.
    fn in_directory() -> (tempfile::TempDir, Objects) {
        let dir = tempfile::tempdir().unwrap();
        let objects = crate::Storage::Directory(dir.path().to_owned())
            .open()
            .unwrap();
        assert!(matches!(objects.backing, Backing::Directory(_)));
        for folder in FOLDERS {
            assert!(dir.path().join(folder).is_dir(), "{folder}");
        }
        (dir, objects)
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
    async fn small_and_multipart_files_round_trip_read_either_way() {
        let (_dir, in_directory) = in_directory();
        let big: Vec<u8> = (0..(PART_BYTES * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        let chunk = CHUNK_BYTES as usize;
        for objects in [objects(), in_directory] {
            for (id, bytes) in [
                (Id(1), b"hello".to_vec()),
                (Id(2), big.clone()),
                (Id(3), vec![]),
            ] {
                let body = chunks(bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect());
                let stored = objects.put(id, body, u64::MAX).await.unwrap();
                assert_eq!(stored.size, bytes.len() as u64);
                assert_eq!(stored.checksum, hex(&Sha256::digest(&bytes)));
                assert_eq!(read_all(&objects, id, None).await, bytes);
            }
            assert_eq!(read_all(&objects, Id(1), Some(1..4)).await, b"ell");
            // Ranges that start, end and cross chunk boundaries.
            for range in [0..chunk, chunk - 1..chunk + 1, chunk..3 * chunk + 5] {
                let expected = &big[range.clone()];
                let range = range.start as u64..range.end as u64;
                assert_eq!(read_all(&objects, Id(2), Some(range)).await, expected);
            }
            assert!(matches!(
                objects.get(Id(9), None).await.err(),
                Some(FilesError::NotFound)
            ));
        }
    }

    /// The paths of the files this process has open.
    fn open_files() -> Vec<std::path::PathBuf> {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .collect()
    }

    #[tokio::test]
    async fn a_download_from_a_directory_holds_no_open_file_between_chunks() {
        let (dir, objects) = in_directory();
        let bytes = vec![7u8; 3 * CHUNK_BYTES as usize];
        objects
            .put(Id(1), chunks(vec![bytes.clone()]), u64::MAX)
            .await
            .unwrap();
        let file = dir.path().join("files").join("1").canonicalize().unwrap();
        let streamed = Objects::new(Arc::clone(&objects.store), Backing::Bucket);

        // A streamed read keeps the file open while its reader waits...
        let mut download = streamed.get(Id(1), None).await.unwrap();
        download.next().await.unwrap().unwrap();
        assert!(open_files().contains(&file));
        drop(download);
        assert!(!open_files().contains(&file));

        // ...one chunk by chunk does not, and reads it all.
        let mut download = objects.get(Id(1), None).await.unwrap();
        let mut read = download.next().await.unwrap().unwrap().to_vec();
        assert_eq!(read.len(), CHUNK_BYTES as usize);
        assert!(!open_files().contains(&file));
        while let Some(chunk) = download.next().await {
            read.extend_from_slice(&chunk.unwrap());
            assert!(!open_files().contains(&file));
        }
        assert_eq!(read, bytes);
    }

    #[tokio::test]
    async fn only_the_unfinished_objects_of_dead_uploads_are_removed() {
        let (dir, objects) = in_directory();
        objects
            .put(Id(7), chunks(vec![b"whole".to_vec()]), u64::MAX)
            .await
            .unwrap();
        let files = dir.path().join(FILES);
        for name in ["5#1", "6#2", "8#x"] {
            std::fs::write(files.join(name), b"half").unwrap();
        }
        std::fs::write(dir.path().join(THUMBNAILS).join("9#3"), b"half").unwrap();
        let _in_progress = Uploading::new(&objects.uploading, Id(6));

        // Written too recently: kept.
        assert_eq!(objects.remove_unfinished(Duration::from_secs(60)).await, 0);
        // Idle long enough: the dead ones go, the one this process is
        // still writing and anything not named as unfinished stay.
        assert_eq!(objects.remove_unfinished(Duration::ZERO).await, 2);
        let mut left: Vec<String> = std::fs::read_dir(&files)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["6#2", "7", "8#x"]);
        assert!(!dir.path().join(THUMBNAILS).join("9#3").exists());

        // A bucket has none.
        assert_eq!(self::objects().remove_unfinished(Duration::ZERO).await, 0);
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

    #[tokio::test]
    async fn an_unrecorded_upload_is_removed_unless_recorded() {
        let objects = objects();
        for id in [Id(10), Id(11)] {
            objects
                .put(id, chunks(vec![b"bytes".to_vec()]), 10)
                .await
                .unwrap();
            objects
                .put_thumbnail(id, Bytes::from_static(b"png"))
                .await
                .unwrap();
        }
        let kept = objects.until_recorded(Id(10));
        let dropped = objects.until_recorded(Id(11));
        // Both are in progress until their guards go; a nested mark (the
        // thumbnail's, say) does not end that.
        drop(Uploading::new(&objects.uploading, Id(11)));
        assert!(is_uploading(&objects.uploading, Id(10)));
        assert!(is_uploading(&objects.uploading, Id(11)));

        kept.recorded();
        drop(dropped);
        assert!(!is_uploading(&objects.uploading, Id(10)));
        assert!(!is_uploading(&objects.uploading, Id(11)));
        // The removal runs on the runtime, after the drop.
        for _ in 0..100 {
            if !objects.exists(Id(11)).await.unwrap() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(!objects.exists(Id(11)).await.unwrap());
        assert!(objects.get_thumbnail(Id(11)).await.is_err());
        assert!(objects.exists(Id(10)).await.unwrap());
        assert!(objects.get_thumbnail(Id(10)).await.is_ok());
    }

    /// Pages from each backing: in key order, `limit` at a time, each from
    /// where the last stopped, skipping what is not a file's object.
    async fn lists_in_pages(objects: Objects) {
        let ids = [Id(300), Id(100), Id(200), Id(400)];
        for id in ids {
            objects
                .put(id, chunks(vec![b"x".to_vec()]), 10)
                .await
                .unwrap();
        }
        objects
            .put_thumbnail(Id(200), Bytes::from_static(b"png"))
            .await
            .unwrap();
        objects
            .store
            .put(
                &Path::from("files/not-an-id"),
                PutPayload::from_static(b"x"),
            )
            .await
            .unwrap();
        let in_progress = objects.until_recorded(Id(400));

        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = objects.list_page(after.as_ref(), 2).await.unwrap();
            seen.extend(page.objects.iter().map(|o| (o.file, o.in_progress)));
            for object in &page.objects {
                let age = chat_protocol::id::now_ms().saturating_sub(object.modified_ms);
                assert!(age < 60_000, "modified {age} ms ago");
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        // Key order: "files/100" < ... < "files/not-an-id" < "thumbnails/200".
        let expected = [
            (Id(100), false),
            (Id(200), false),
            (Id(300), false),
            (Id(400), true),
            (Id(200), false),
        ];
        assert_eq!(seen, expected);
        in_progress.recorded();

        // From the middle, as a pass that starts at a random place does.
        let page = objects.list_page(Some(&key(Id(250))), 10).await.unwrap();
        let files: Vec<Id> = page.objects.iter().map(|o| o.file).collect();
        assert_eq!(files, [Id(300), Id(400), Id(200)]);
        assert_eq!(page.next, None);
    }

    #[tokio::test]
    async fn a_bucket_lists_in_pages() {
        lists_in_pages(objects()).await;
    }

    #[tokio::test]
    async fn a_directory_lists_in_pages() {
        let (_dir, objects) = in_directory();
        lists_in_pages(objects).await;
    }
}
