//! `POST /files` and `GET /files/{file_id}`: uploads streamed into object
//! storage and downloads streamed back, safely.
//!
//! Uploads: one multipart part named `file`, streamed (never held whole)
//! into the object store within the caller's allowance (size limit, quota,
//! rate: `chat_router::files`) and no slower than a floor
//! ([`super::upload_pace`]); the metadata is stored only once the bytes
//! are, and the bytes are removed again if it cannot be. Downloads: the
//! sniffed type, `nosniff`, a sandboxing CSP, and `attachment` for anything
//! a browser could run (see `chat_files::sniff`); `Range`, `ETag` and
//! `If-None-Match` are honoured. Uploads, and downloads from a bucket, take
//! places to stream ([`super::places`]). Images get a thumbnail on upload
//! (`chat_files::thumbnail`), served by `GET /files/{file_id}/thumbnail`
//! under the same access rules.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_files::range::{Requested, requested};
use chat_files::{Backing, FilesError, Objects, Thumbnails, names, sniff};
use chat_persistence::FileRecord;
use chat_protocol::File;
use chat_router::files::{Allowance, UploadPolicy};
use futures_util::StreamExt;

use super::places::Places;
use super::upload_pace::{MinPace, Paced};
use crate::auth::AuthUser;
use crate::extract::{PathParams, id};
use crate::{ApiError, AppState};

/// After refusing an upload for its size, at most this much of the rest of
/// the body is read and discarded (for this long at most), so that the
/// client, still sending, gets to read the 413 instead of a reset.
const DRAIN_AFTER_REFUSAL_BYTES: u64 = 16 * 1024 * 1024;
const DRAIN_AFTER_REFUSAL_TIME: Duration = Duration::from_secs(5);

/// What the file endpoints share.
pub struct FileService {
    pub objects: Objects,
    pub policy: UploadPolicy,
    /// Places for uploads to stream, per process and per user.
    uploads: Arc<Places>,
    /// Places for downloads from a bucket to stream, the same way.
    downloads: Arc<Places>,
    /// How slowly an upload holding a place may arrive.
    pace: MinPace,
    /// Image previews, made by half the cores at most: uploads of images
    /// must not starve the chat of CPU.
    thumbnails: Thumbnails,
}

impl FileService {
    /// `uploads` bounds the uploads streaming at once (see
    /// [`Places::new`]), `pace` how slowly each may arrive; `downloads`
    /// bounds the downloads streaming from a bucket.
    pub fn new(
        objects: Objects,
        policy: UploadPolicy,
        uploads: Places,
        pace: MinPace,
        downloads: Places,
    ) -> FileService {
        FileService {
            objects,
            policy,
            uploads: Arc::new(uploads),
            downloads: Arc::new(downloads),
            pace,
            thumbnails: Thumbnails::new(
                std::thread::available_parallelism().map_or(1, |cores| cores.get() / 2),
            ),
        }
    }
}

pub async fn upload(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<File>), ApiError> {
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::bad_request(format!("expected multipart/form-data: {rejection}"))
    })?;
    let allowance = state.chat.upload_allowance(me, &state.files.policy).await?;
    let mut field = multipart
        .next_field()
        .await
        .map_err(|error| ApiError::bad_request(format!("malformed multipart body: {error}")))?
        .ok_or_else(|| ApiError::bad_request("no part named \"file\""))?;
    if field.name() != Some("file") {
        return Err(ApiError::bad_request(
            "expected one part, named \"file\", first",
        ));
    }
    let name = names::safe_name(field.file_name());
    let service = &state.files;
    let streaming = service.uploads.wait_for_place(me).await?;
    let id = state.chat.new_file_id()?;
    let body = Paced::new(&mut field, service.pace);
    let stored = match service.objects.put(id, body, allowance.max_bytes).await {
        Ok(stored) => stored,
        Err(FilesError::TooLarge { .. }) => {
            drain(&mut field).await;
            return Err(refused_for_size(&allowance));
        }
        Err(FilesError::CutOff(detail)) => {
            return Err(ApiError::bad_request(format!("upload cut off: {detail}")));
        }
        Err(error) => return Err(ApiError::Unavailable(error.to_string())),
    };
    // Until its metadata is written, the upload's objects are removed if
    // it ends, by an error or by its request being dropped (its client
    // hung up while the thumbnail was made).
    let unrecorded = service.objects.until_recorded(id);
    // The upload's stream permit is not needed while decoding.
    drop(streaming);
    let thumbnail = service
        .thumbnails
        .make(&service.objects, id, stored.content_type, stored.size)
        .await;
    let record = FileRecord {
        id,
        uploader: me,
        name,
        size: stored.size,
        content_type: stored.content_type.to_owned(),
        checksum: stored.checksum,
        created_at: id.unix_ms(),
        thumbnail,
    };
    let file = state.chat.record_upload(record).await?;
    unrecorded.recorded();
    Ok((StatusCode::CREATED, Json(file)))
}

fn refused_for_size(allowance: &Allowance) -> ApiError {
    ApiError::Chat(allowance.exceeded())
}

/// Reads and discards what is left of the part, within bounds.
async fn drain(field: &mut Field<'_>) {
    let _ = tokio::time::timeout(DRAIN_AFTER_REFUSAL_TIME, async {
        let mut drained: u64 = 0;
        while let Ok(Some(chunk)) = field.chunk().await {
            drained += chunk.len() as u64;
            if drained > DRAIN_AFTER_REFUSAL_BYTES {
                return;
            }
        }
    })
    .await;
}

pub async fn download(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathParams(file_id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file_id = id(&file_id)?;
    let file = state.chat.readable_file(me, file_id).await?;
    let etag = format!("\"{}\"", file.checksum);
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
    };
    if header_text(header::IF_NONE_MATCH).is_some_and(|tags| {
        tags.split(',')
            .any(|tag| tag.trim() == etag || tag.trim() == "*")
    }) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    // A range is only for the version the client has (If-Range).
    let range_header = match header_text(header::IF_RANGE) {
        Some(tag) if tag.trim() != etag => None,
        _ => header_text(header::RANGE),
    };
    let (status, range) = match requested(range_header, file.size) {
        Requested::Whole => (StatusCode::OK, None),
        Requested::Part(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        Requested::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{}", file.size))],
            )
                .into_response());
        }
    };
    let length = range
        .as_ref()
        .map_or(file.size, |range| range.end - range.start);
    // A download from a bucket holds a connection to it until its client
    // has taken every byte; one from a directory holds nothing between
    // chunks.
    let place = match state.files.objects.backing() {
        Backing::Bucket => Some(state.files.downloads.wait_for_place(me).await?),
        Backing::Directory(_) => None,
    };
    let bytes = match state.files.objects.get(file_id, range.clone()).await {
        // The place is given back when the body is done with or dropped.
        Ok(bytes) => bytes.inspect(move |_| {
            let _ = &place;
        }),
        Err(FilesError::NotFound) => {
            tracing::error!(file = %file_id, "file metadata without bytes");
            return Err(ApiError::Chat(chat_router::Error::NotFound("file")));
        }
        Err(error) => return Err(ApiError::Unavailable(error.to_string())),
    };
    let inline = sniff::is_inline(&file.content_type);
    let mut response = Response::new(Body::from_stream(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut set = |name, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, file.content_type.clone());
    set(header::CONTENT_LENGTH, length.to_string());
    set(header::ETAG, etag);
    set(header::ACCEPT_RANGES, "bytes".into());
    set(
        header::CONTENT_DISPOSITION,
        names::content_disposition(&file.name, inline),
    );
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff".into());
    // Even if a browser rendered it, nothing in it could run or load.
    set(
        header::CONTENT_SECURITY_POLICY,
        "sandbox; default-src 'none'; img-src 'self'; media-src 'self'".into(),
    );
    // Access can be lost (a member removed): revalidate every time.
    set(header::CACHE_CONTROL, "private, no-cache".into());
    if let Some(range) = range {
        set(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", range.start, range.end - 1, file.size),
        );
    }
    Ok(response)
}

/// `GET /files/{file_id}/thumbnail`: the preview of an image, to whoever
/// may read the file; 404 when there is none.
pub async fn thumbnail(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathParams(file_id): PathParams<String>,
) -> Result<Response, ApiError> {
    let file_id = id(&file_id)?;
    let file = state.chat.readable_file(me, file_id).await?;
    if !file.thumbnail {
        return Err(ApiError::Chat(chat_router::Error::NotFound("thumbnail")));
    }
    let (length, bytes) = match state.files.objects.get_thumbnail(file_id).await {
        Ok(found) => found,
        Err(FilesError::NotFound) => {
            return Err(ApiError::Chat(chat_router::Error::NotFound("thumbnail")));
        }
        Err(error) => return Err(ApiError::Unavailable(error.to_string())),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/png".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_owned(),
            ),
            (header::CACHE_CONTROL, "private, no-cache".to_owned()),
        ],
        Body::from_stream(bytes),
    )
        .into_response())
}
