//! Files and attachments end to end, against both kinds of object storage:
//! a directory in the data directory, and S3 as served by a real
//! S3-compatible server (moto's `moto_server`, started here on a free port
//! like the Redis harness; `.ci/run` installs it). Without `moto_server`
//! on the PATH the S3 cases say so and pass without running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use crate::harness::{Client, Server, assert_error};
use crate::ws::Ws;

// ----- storage backends ------------------------------------------------------

/// A real S3-compatible server on a free port, killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
    bucket: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts `moto_server` with a fresh bucket, or `None` (with a notice)
    /// when it is not installed.
    async fn start() -> Option<Moto> {
        let installed = Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            eprintln!("NOTICE: moto_server is not installed: the S3 file tests are SKIPPED");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: "chat-files-test".into(),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = http
                .put(format!("{}/{}", moto.endpoint, moto.bucket))
                .send()
                .await;
            if created.is_ok_and(|response| response.status().is_success()) {
                return Some(moto);
            }
            assert!(Instant::now() < deadline, "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CHAT_FILES__S3__BUCKET", self.bucket.clone()),
            ("CHAT_FILES__S3__ENDPOINT", self.endpoint.clone()),
            ("CHAT_FILES__S3__REGION", "us-east-1".into()),
            ("CHAT_FILES__S3__ACCESS_KEY_ID", "test-key-id".into()),
            ("CHAT_FILES__S3__SECRET_ACCESS_KEY", S3_SECRET.into()),
            ("CHAT_FILES__S3__ALLOW_HTTP", "true".into()),
        ]
    }

    /// Text of a bucket listing (`?list-type=2`) or of its unfinished
    /// multipart uploads (`?uploads`).
    async fn list(&self, query: &str) -> String {
        reqwest::get(format!("{}/{}?{query}", self.endpoint, self.bucket))
            .await
            .expect("list the bucket")
            .text()
            .await
            .unwrap()
    }
}

/// The secret the S3 tests configure; it must never reach the log.
const S3_SECRET: &str = "s3-secret-never-logged-7d1e";

/// Where a test server keeps the bytes of files.
enum Backend {
    Directory,
    S3(Moto),
}

/// A server with files in `backend`, its data directory, and extra settings.
struct FileServer {
    server: Server,
    data_dir: TempDir,
    backend: Backend,
}

impl FileServer {
    /// `None` when the backend is S3 and no S3 server can be had.
    async fn start(s3: bool, env: &[(&str, &str)]) -> Option<FileServer> {
        let backend = match s3 {
            false => Backend::Directory,
            true => Backend::S3(Moto::start().await?),
        };
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings: Vec<(&str, String)> = env
            .iter()
            .map(|(key, value)| (*key, (*value).to_owned()))
            .collect();
        if let Backend::S3(moto) = &backend {
            settings.extend(moto.env());
        }
        let settings: Vec<(&str, &str)> = settings
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        let server = Server::start_in(data_dir.path(), &settings);
        Some(FileServer {
            server,
            data_dir,
            backend,
        })
    }

    /// Whether the storage holds no object and no unfinished upload.
    async fn storage_is_empty(&self) -> bool {
        match &self.backend {
            Backend::Directory => files_under(&self.data_dir.path().join("files")).is_empty(),
            Backend::S3(moto) => {
                !moto.list("list-type=2").await.contains("<Key>")
                    && !moto.list("uploads").await.contains("<UploadId>")
            }
        }
    }

    /// Stores `bytes` as the object `key` behind the server's back, as a
    /// process killed between storing an upload and recording it leaves
    /// it.
    async fn put_object(&self, key: &str, bytes: &[u8]) {
        match &self.backend {
            Backend::Directory => {
                std::fs::write(self.data_dir.path().join("files").join(key), bytes).unwrap();
            }
            Backend::S3(moto) => {
                let put = reqwest::Client::new()
                    .put(format!("{}/{}/{key}", moto.endpoint, moto.bucket))
                    .body(bytes.to_vec())
                    .send()
                    .await
                    .expect("put an object");
                assert!(put.status().is_success(), "{}", put.status());
            }
        }
    }

    /// How many objects the storage holds.
    async fn objects(&self) -> usize {
        match &self.backend {
            Backend::Directory => files_under(&self.data_dir.path().join("files")).len(),
            Backend::S3(moto) => moto.list("list-type=2").await.matches("<Key>").count(),
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

// ----- HTTP helpers ----------------------------------------------------------

const BOUNDARY: &str = "chat-test-boundary-5f1c";

/// The start of a multipart part `file` named `name`, up to its bytes.
fn part_head(name: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
}

/// A multipart body with one part `file` named `name`.
pub(crate) fn multipart(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = part_head(name).into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The head of an upload by `client` whose multipart body is `length`
/// bytes, for a client that sends its body by hand over a socket.
pub(crate) fn upload_head(client: &Client, length: usize) -> String {
    format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n",
        client.token()
    )
}

/// Starts an upload by `client` of the multipart `body` over a socket of
/// its own, sending only its first `sent` bytes; answers the socket.
async fn upload_by_hand(
    server: &Server,
    client: &Client,
    body: &[u8],
    sent: usize,
) -> tokio::net::TcpStream {
    let address = server.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket
        .write_all(upload_head(client, body.len()).as_bytes())
        .await
        .unwrap();
    socket.write_all(&body[..sent]).await.unwrap();
    socket.flush().await.unwrap();
    socket
}

async fn upload(client: &Client, name: &str, bytes: &[u8]) -> (StatusCode, Value) {
    client
        .raw(
            reqwest::Method::POST,
            "/api/v1/files",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart(name, bytes),
        )
        .await
}

pub(crate) async fn uploaded(client: &Client, name: &str, bytes: &[u8]) -> Value {
    let (status, file) = upload(client, name, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "upload {name}: {file}");
    file
}

/// GET of a file with extra headers: status, headers, body.
pub(crate) async fn download(
    server: &Server,
    client: &Client,
    id: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .get(format!("{}/api/v1/files/{id}", server.base))
        .bearer_auth(client.token());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("download");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// Bytes that no sniffer mistakes for a known format.
pub(crate) fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8 | 0x80
        })
        .collect()
}

async fn post_with_files(client: &Client, room: &str, ids: &[&str]) -> (StatusCode, Value) {
    client
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "see attached", "attachment_ids": ids}),
        )
        .await
}

/// Deletes a message as `client` (over the WebSocket, the one way to
/// delete) and waits until the room has heard of it.
async fn delete_message(server: &Server, client: &Client, room: &str, message: &Value) {
    let mut ws = Ws::connect(server, client.token()).await;
    ws.send(json!({"type": "delete", "room_id": room, "message_id": message["id"]}))
        .await;
    let deleted = ws.next_of("message_deleted").await;
    assert_eq!(deleted["message_id"], message["id"]);
}

/// Polls `condition` until it holds, for up to 20 s.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ----- the cases, for each backend -------------------------------------------

/// Upload, download (whole, ranged, revalidated), attach, deliver, and who
/// may read the file at each step.
async fn round_trip_attachments_and_access(s3: bool) {
    let Some(files) = FileServer::start(s3, &[]).await else {
        return;
    };
    let server = &files.server;
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (carol, _) = server.user("carol").await;
    let (dave, dave_id) = server.user("dave").await;
    let room = alice
        .create_room("general", "private", &[&bob_id, &dave_id])
        .await;

    // Over one multipart part (5 MiB), so S3 stores it in parts.
    let bytes = noise(6 * 1024 * 1024 + 12_345);
    let file = uploaded(&alice, "../photos/big.bin", &bytes).await;
    let id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(file["name"], "big.bin", "the path is dropped");
    assert_eq!(file["size"], bytes.len() as u64);
    assert_eq!(file["content_type"], "application/octet-stream");
    assert!(file["created_at"].as_u64().unwrap() > 0);

    let (status, headers, body) = download(server, &alice, &id, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == bytes, "the bytes come back unchanged");
    assert_eq!(header(&headers, "content-length"), bytes.len().to_string());
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert!(
        header(&headers, "content-disposition").starts_with("attachment; filename=\"big.bin\"")
    );
    let etag = header(&headers, "etag").to_owned();
    assert_eq!(etag.len(), 66, "a quoted SHA-256: {etag}");

    let (status, headers, part) =
        download(server, &alice, &id, &[("range", "bytes=100-199")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, bytes[100..200]);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 100-199/{}", bytes.len())
    );
    let (status, headers, all) = download(server, &alice, &id, &[("range", "bytes=0-")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT, "a range of every byte");
    assert!(all == bytes);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 0-{}/{}", bytes.len() - 1, bytes.len())
    );
    let (status, _, tail) = download(server, &alice, &id, &[("range", "bytes=-10")]).await;
    assert_eq!(
        (status, tail.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &bytes[bytes.len() - 10..])
    );
    let (status, headers, _) =
        download(server, &alice, &id, &[("range", "bytes=999999999-")]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes */{}", bytes.len())
    );
    let (status, _, _) = download(server, &alice, &id, &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // Not yet shared: only the uploader may read it.
    for outsider in [&bob, &carol] {
        let (status, _, _) = download(server, outsider, &id, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _, _) = download(server, &alice, "12345", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Someone else's file, too many files, a repeated file: refused.
    assert_error(
        &post_with_files(&bob, &room, &[&id]).await,
        400,
        "bad_request",
    );
    let eleven = vec![id.as_str(); 11];
    assert_error(
        &post_with_files(&alice, &room, &eleven).await,
        400,
        "bad_request",
    );
    assert_error(
        &post_with_files(&alice, &room, &[&id, &id]).await,
        400,
        "bad_request",
    );

    // Attached: delivered live and in history with the File.
    let mut bob_ws = Ws::connect(server, bob.token()).await;
    let (status, message) = post_with_files(&alice, &room, &[&id]).await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    assert_eq!(message["attachments"], json!([file]));
    let live = bob_ws.next_of("message").await;
    assert_eq!(live["message"]["attachments"], json!([file]));
    let (_, history) = bob.get(&format!("/api/v1/rooms/{room}/messages")).await;
    assert_eq!(history["messages"][0]["attachments"], json!([file]));

    // Members of the room may read it now; others still may not.
    let (status, _, body) = download(server, &bob, &id, &[]).await;
    assert!(status == StatusCode::OK && body == bytes);
    let (status, _, _) = download(server, &carol, &id, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A removed member loses it.
    let (status, _) = alice
        .delete(&format!("/api/v1/rooms/{room}/members/{bob_id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = download(server, &bob, &id, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A deleted message drops the file from view for the room.
    let (status, _, _) = download(server, &dave, &id, &[]).await;
    assert_eq!(status, StatusCode::OK);
    delete_message(server, &alice, &room, &message).await;
    let (_, history) = dave.get(&format!("/api/v1/rooms/{room}/messages")).await;
    assert_eq!(history["messages"][0]["attachments"], json!([]));
    let (status, _, _) = download(server, &dave, &id, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert!(
        !server.log().contains(S3_SECRET),
        "the S3 secret reached the log"
    );
}

/// What a browser could run is never served inline.
async fn markup_is_served_as_an_attachment(s3: bool) {
    let Some(files) = FileServer::start(s3, &[]).await else {
        return;
    };
    let server = &files.server;
    let (alice, _) = server.user("alice").await;
    let cases: [(&str, &[u8], &str, &str); 3] = [
        (
            "innocent.png",
            b"<!DOCTYPE html><script>alert(document.cookie)</script>",
            "text/html",
            "attachment",
        ),
        (
            "logo.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
            "image/svg+xml",
            "attachment",
        ),
        (
            "dot.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
            "image/png",
            "inline",
        ),
    ];
    for (name, bytes, content_type, disposition) in cases {
        let file = uploaded(&alice, name, bytes).await;
        assert_eq!(file["content_type"], content_type, "{name}");
        let id = file["id"].as_str().unwrap();
        let (status, headers, _) = download(server, &alice, id, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "content-type"), content_type);
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert!(
            header(&headers, "content-disposition").starts_with(disposition),
            "{name}: {headers:?}"
        );
    }
}

/// The size limit hit mid-stream, an upload cut off half-way: nothing is
/// left behind, and neither counts against the quota.
async fn failed_uploads_leave_nothing(s3: bool) {
    const MIB: usize = 1024 * 1024;
    let Some(files) = FileServer::start(
        s3,
        &[
            ("CHAT_FILES__MAX_FILE_BYTES", "8388608"),
            ("CHAT_FILES__QUOTA_BYTES_PER_USER", "9437184"),
        ],
    )
    .await
    else {
        return;
    };
    let server = &files.server;
    let (alice, _) = server.user("alice").await;

    // Over the limit after the first multipart part went out.
    let answer = upload(&alice, "huge.bin", &noise(9 * MIB)).await;
    assert_error(&answer, 413, "too_large");
    eventually("the refused upload is cleaned up", || {
        files.storage_is_empty()
    })
    .await;

    // Cut off after 6 MiB of a declared 7.5 MiB.
    let body = multipart("cut.bin", &noise(7 * MIB + MIB / 2));
    drop(upload_by_hand(server, &alice, &body, 6 * MIB).await);
    eventually("the server saw the cut-off upload", || async {
        server
            .metric("chat_file_uploads_total{outcome=\"cut_off\"}")
            .await
            >= 1.0
    })
    .await;
    eventually("the cut-off upload is cleaned up", || {
        files.storage_is_empty()
    })
    .await;

    // Neither failure used the quota: 1 MiB fits, then 8.5 MiB is over it.
    uploaded(&alice, "small.bin", &noise(MIB)).await;
    assert_eq!(files.objects().await, 1);
    let answer = upload(&alice, "over-quota.bin", &noise(8 * MIB + MIB / 2)).await;
    assert_error(&answer, 413, "too_large");
    eventually("only the stored file is left", || async {
        files.objects().await == 1
    })
    .await;
}

/// The sweep, after the grace period (2 s here, time enough to send the
/// files before they count as unsent): the bytes of a deleted message's
/// file go, and so do bytes and a thumbnail that no metadata names (a
/// process was killed between storing an upload and recording it); a file
/// still carried by a message stays, with its thumbnail.
async fn unused_objects_are_swept(s3: bool) {
    let Some(files) = FileServer::start(
        s3,
        &[
            ("CHAT_FILES__SWEEP_GRACE_SECS", "2"),
            ("CHAT_FILES__SWEEP_INTERVAL_SECS", "1"),
        ],
    )
    .await
    else {
        return;
    };
    let server = &files.server;
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let kept = uploaded(&alice, "kept.png", &png_of(40, 40)).await;
    let doomed = uploaded(&alice, "doomed.txt", b"doomed").await;
    let (kept_id, doomed_id) = (kept["id"].as_str().unwrap(), doomed["id"].as_str().unwrap());
    let (status, _) = post_with_files(&alice, &room, &[kept_id]).await;
    assert_eq!(status, StatusCode::CREATED);
    // This one over the WebSocket, the other way to send.
    let mut ws = Ws::connect(server, alice.token()).await;
    ws.send(json!({"type": "send", "room_id": room, "content": "doomed", "attachment_ids": [doomed_id]}))
        .await;
    let message = ws.next_of("message").await["message"].clone();
    assert_eq!(message["attachments"], json!([doomed]));
    delete_message(server, &alice, &room, &message).await;
    files.put_object("files/1", b"no metadata").await;
    files.put_object("thumbnails/1", b"none either").await;
    eventually("the unused objects are swept", || async {
        download(server, &alice, doomed_id, &[]).await.0 == StatusCode::NOT_FOUND
            && files.objects().await == 2
    })
    .await;
    assert!(
        server
            .metric("chat_file_leftovers_removed_total{kind=\"unrecorded\"}")
            .await
            >= 1.0
    );
    assert!(server.log().contains("whose metadata was never written"));
    let (status, _, body) = download(server, &alice, kept_id, &[]).await;
    assert_eq!((status, body), (StatusCode::OK, png_of(40, 40)));
    let (status, _, _) = fetch(server, &alice, kept["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

/// An upload whose client hangs up once its bytes are stored, while its
/// thumbnail is made: the request is dropped before the metadata is
/// written, and takes the upload's objects with it.
async fn an_upload_dropped_before_it_is_recorded_leaves_nothing(s3: bool) {
    let Some(files) = FileServer::start(s3, &[]).await else {
        return;
    };
    let server = &files.server;
    let (alice, _) = server.user("alice").await;
    // 23 megapixels: under the thumbnail's limit, and long enough to
    // decode that the hang-up is seen first.
    let body = multipart("large.png", &png_of(4800, 4800));
    let socket = upload_by_hand(server, &alice, &body, body.len()).await;
    // The bytes are stored about 300 ms before the answer would be (the
    // thumbnail takes that long here): watched closely, not every 100 ms.
    let stored = "chat_file_uploads_total{outcome=\"stored\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.metric(stored).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the upload's bytes were never stored"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(socket);
    eventually("and removed once the client hung up", || async {
        server
            .metric("chat_file_leftovers_removed_total{kind=\"unrecorded\"}")
            .await
            == 1.0
            && files.storage_is_empty().await
    })
    .await;
    // The server goes on storing uploads whole.
    let next = uploaded(&alice, "next.png", &png_of(40, 40)).await;
    let (status, _, _) = fetch(server, &alice, next["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn directory_an_upload_dropped_before_it_is_recorded_leaves_nothing() {
    an_upload_dropped_before_it_is_recorded_leaves_nothing(false).await;
}

#[tokio::test]
async fn s3_an_upload_dropped_before_it_is_recorded_leaves_nothing() {
    an_upload_dropped_before_it_is_recorded_leaves_nothing(true).await;
}

/// A retried send (its `client_id` used already) links its files to no
/// new message: once the original is deleted, the room cannot read them.
/// (Links are the store's, whatever keeps the bytes.)
#[tokio::test]
async fn a_retried_send_links_its_files_to_nothing_new() {
    let Some(files) = FileServer::start(false, &[]).await else {
        return;
    };
    let server = &files.server;
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "private", &[&bob_id]).await;
    let file = uploaded(&alice, "notes.txt", b"notes").await;
    let id = file["id"].as_str().unwrap();
    let path = format!("/api/v1/rooms/{room}/messages");
    let send = json!({"content": "see attached", "client_id": "c-1", "attachment_ids": [id]});
    let (status, message) = alice.post(&path, send.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    let (status, retried) = alice.post(&path, send).await;
    assert_eq!((status, &retried), (StatusCode::CREATED, &message));
    assert_eq!(download(server, &bob, id, &[]).await.0, StatusCode::OK);
    delete_message(server, &alice, &room, &message).await;
    assert_eq!(
        download(server, &bob, id, &[]).await.0,
        StatusCode::NOT_FOUND,
        "the retry left a link to its files"
    );
}

/// A `width`×`height` PNG of one colour.
fn png_of(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([20, 120, 220]));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode a PNG");
    bytes
}

/// A decompression bomb: a 20000×20000 PNG of zeros (400 megapixels, 1.6
/// GB as RGBA) that compresses to a few hundred KB; written row by row, so
/// the test never holds it decoded either.
fn png_bomb() -> Vec<u8> {
    const SIDE: u32 = 20_000;
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(std::io::Cursor::new(&mut bytes), SIDE, SIDE);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder.write_header().expect("PNG header");
    let mut rows = writer.stream_writer().expect("PNG stream");
    let row = vec![0u8; SIDE as usize / 8];
    for _ in 0..SIDE {
        std::io::Write::write_all(&mut rows, &row).expect("PNG row");
    }
    rows.finish().expect("PNG data");
    writer.finish().expect("PNG end");
    bytes
}

/// GET of `path` as `client`: status, headers, body.
async fn fetch(server: &Server, client: &Client, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(client.token())
        .send()
        .await
        .expect("GET");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.unwrap().to_vec())
}

async fn images_get_thumbnails_and_bombs_do_not(s3: bool) {
    let Some(files) = FileServer::start(s3, &[]).await else {
        return;
    };
    let server = &files.server;
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (carol, _) = server.user("carol").await;

    let photo = uploaded(&alice, "photo.png", &png_of(1200, 600)).await;
    let id = photo["id"].as_str().unwrap();
    let url = photo["thumbnail_url"]
        .as_str()
        .expect("an image has a thumbnail");
    assert_eq!(url, format!("/api/v1/files/{id}/thumbnail"));
    let (status, headers, body) = fetch(server, &alice, url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    let thumbnail = image::load_from_memory_with_format(&body, image::ImageFormat::Png)
        .expect("the thumbnail is a PNG");
    assert_eq!((thumbnail.width(), thumbnail.height()), (256, 128));

    // Same access as the file: a stranger gets 404 until the file is
    // posted in a room they are in.
    let (status, _, _) = fetch(server, &bob, url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let room = alice.create_room("pictures", "private", &[&bob_id]).await;
    let (status, message) = post_with_files(&alice, &room, &[id]).await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    assert_eq!(message["attachments"][0]["thumbnail_url"], url);
    let (status, _, _) = fetch(server, &bob, url).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = fetch(server, &carol, url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Not an image: no thumbnail.
    let text = uploaded(&alice, "notes.txt", b"just text").await;
    assert!(text.get("thumbnail_url").is_none(), "{text}");
    let (status, _, _) = fetch(
        server,
        &alice,
        &format!("/api/v1/files/{}/thumbnail", text["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The bomb is stored as a file (its bytes are small) but never decoded.
    let bomb_bytes = png_bomb();
    assert!(bomb_bytes.len() < 1024 * 1024, "{} bytes", bomb_bytes.len());
    let bomb = uploaded(&alice, "bomb.png", &bomb_bytes).await;
    assert!(bomb.get("thumbnail_url").is_none(), "{bomb}");
    assert_eq!(bomb["content_type"], "image/png");
    let (status, _, body) = download(server, &alice, bomb["id"].as_str().unwrap(), &[]).await;
    assert_eq!((status, body.len()), (StatusCode::OK, bomb_bytes.len()));
    assert_eq!(
        server
            .metric("chat_file_thumbnails_total{outcome=\"refused\"}")
            .await,
        1.0
    );
    // And the server goes on making thumbnails.
    let next = uploaded(&alice, "next.png", &png_of(40, 40)).await;
    let (status, _, body) = fetch(server, &alice, next["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let small = image::load_from_memory_with_format(&body, image::ImageFormat::Png).unwrap();
    assert_eq!((small.width(), small.height()), (40, 40), "never enlarged");
}

#[tokio::test]
async fn directory_images_get_thumbnails_and_bombs_do_not() {
    images_get_thumbnails_and_bombs_do_not(false).await;
}

#[tokio::test]
async fn s3_images_get_thumbnails_and_bombs_do_not() {
    images_get_thumbnails_and_bombs_do_not(true).await;
}

#[tokio::test]
async fn directory_round_trip_attachments_and_access() {
    round_trip_attachments_and_access(false).await;
}

#[tokio::test]
async fn s3_round_trip_attachments_and_access() {
    round_trip_attachments_and_access(true).await;
}

#[tokio::test]
async fn directory_markup_is_served_as_an_attachment() {
    markup_is_served_as_an_attachment(false).await;
}

#[tokio::test]
async fn s3_markup_is_served_as_an_attachment() {
    markup_is_served_as_an_attachment(true).await;
}

#[tokio::test]
async fn directory_failed_uploads_leave_nothing() {
    failed_uploads_leave_nothing(false).await;
}

#[tokio::test]
async fn s3_failed_uploads_leave_nothing() {
    failed_uploads_leave_nothing(true).await;
}

#[tokio::test]
async fn directory_unused_objects_are_swept() {
    unused_objects_are_swept(false).await;
}

#[tokio::test]
async fn s3_unused_objects_are_swept() {
    unused_objects_are_swept(true).await;
}

#[tokio::test]
async fn uploads_are_rate_limited_and_need_a_file_part() {
    let server = Server::start_with(&[
        ("CHAT_FILES__UPLOADS_PER_MINUTE", "1"),
        ("CHAT_FILES__UPLOAD_BURST", "2"),
    ]);
    let (alice, _) = server.user("alice").await;
    let answer = alice
        .raw(
            reqwest::Method::POST,
            "/api/v1/files",
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    assert_error(&answer, 400, "bad_request");
    uploaded(&alice, "a.txt", b"a").await;
    uploaded(&alice, "b.txt", b"b").await;
    let answer = upload(&alice, "c.txt", b"c").await;
    assert_error(&answer, 429, "rate_limited");
    let (status, _) = server.client().get("/api/v1/files/1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Starts an upload of `client` that is sent a byte every 100 ms and never
/// ends (it declares 1 MiB): it holds its place to stream, without ever
/// stalling for the body idle timeout, until the task is aborted (which
/// cuts it off) or the floor under its pace cuts it (a minute on, by
/// default). Answers where the server's answer arrives, and the task.
async fn trickled_upload(
    server: &Server,
    client: &Client,
) -> (tokio::net::tcp::OwnedReadHalf, tokio::task::JoinHandle<()>) {
    let address = server.base.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (answer, mut body) = socket.into_split();
    let head = upload_head(client, 1024 * 1024) + &part_head("slow.bin");
    body.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        while body.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (answer, trickle)
}

#[tokio::test]
async fn slow_uploads_of_one_user_cannot_take_every_place_to_stream() {
    let server = Server::start_with(&[
        ("CHAT_FILES__CONCURRENT_UPLOADS", "2"),
        ("CHAT_FILES__CONCURRENT_UPLOADS_PER_USER", "1"),
        ("CHAT_LIMITS__BODY_IDLE_TIMEOUT_MS", "1500"),
    ]);
    let (mallory, _) = server.user("mallory").await;
    let (bob, _) = server.user("bob").await;
    let (carol, _) = server.user("carol").await;
    let (dave, _) = server.user("dave").await;
    let streaming = |count: f64| {
        let server = &server;
        move || async move { server.metric("chat_file_uploads_streaming").await == count }
    };

    // Mallory's endless upload holds her one place; her next one waits for
    // it, for as long as a stalled body would, and is refused.
    let (_, mallorys) = trickled_upload(&server, &mallory).await;
    eventually("mallory's upload streams", streaming(1.0)).await;
    let answer = upload(&mallory, "second.bin", b"more").await;
    assert_error(&answer, 429, "rate_limited");
    assert!(answer.1["error"]["retry_after_ms"].as_u64().is_some());
    // Others still have a place.
    uploaded(&bob, "bob.txt", b"bob's").await;

    // With every place held by slow uploads, others wait, and are told to
    // come back instead of hanging.
    let (_, carols) = trickled_upload(&server, &carol).await;
    eventually("carol's upload streams", streaming(2.0)).await;
    let answer = upload(&dave, "dave.txt", b"dave's").await;
    assert_error(&answer, 503, "unavailable");
    assert!(answer.1["error"]["retry_after_ms"].as_u64().is_some());

    // A place given back is taken again.
    mallorys.abort();
    eventually("mallory's upload is cut off", streaming(1.0)).await;
    uploaded(&dave, "dave.txt", b"dave's").await;
    carols.abort();
    eventually("no upload streams", streaming(0.0)).await;
    for (by, refused) in [("user", 1.0), ("server", 1.0)] {
        let series = format!("chat_file_uploads_refused_total{{by=\"{by}\"}}");
        assert_eq!(server.metric(&series).await, refused, "{series}");
    }
}

#[tokio::test]
async fn an_upload_slower_than_the_floor_is_cut_off_and_gives_back_its_place() {
    let server = Server::start_with(&[
        ("CHAT_FILES__CONCURRENT_UPLOADS_PER_USER", "1"),
        // One second's head start, then 2000 bytes for each further second.
        ("CHAT_LIMITS__BODY_TIMEOUT_MS", "1000"),
        ("CHAT_FILES__MIN_UPLOAD_BYTES_PER_SECOND", "2000"),
    ]);
    let (mallory, _) = server.user("mallory").await;
    let address = server.base.trim_start_matches("http://").to_owned();

    // A byte every 100 ms, never idle for the body idle timeout (30 s):
    // cut off once its head start and the few bytes it sent have run out,
    // keeping nothing.
    let started = Instant::now();
    let (mut answer, trickle) = trickled_upload(&server, &mallory).await;
    let refused = crate::limits::answered_and_closed(&mut answer).await;
    let waited = started.elapsed();
    trickle.abort();
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(refused.contains("\"bad_request\""), "{refused}");
    assert!(
        refused.contains("slower than 2000 bytes per second"),
        "{refused}"
    );
    assert!(waited >= Duration::from_secs(1), "cut after {waited:?}");
    let cut_off = "chat_file_uploads_total{outcome=\"cut_off\"}";
    assert_eq!(server.metric(cut_off).await, 1.0);
    assert_eq!(server.metric("chat_file_uploads_streaming").await, 0.0);
    // Her one place is hers again (with it held, this would wait and get
    // 429).
    let file = uploaded(&mallory, "next.txt", b"next").await;
    assert_eq!(file["size"], 4);

    // Slower than the head start but well above the floor (20 KB/s for
    // 2 s): stored whole.
    let bytes = vec![b'y'; 40_000];
    let body = multipart("steady.bin", &bytes);
    let mut steady = tokio::net::TcpStream::connect(&address).await.unwrap();
    steady
        .write_all(upload_head(&mallory, body.len()).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    for chunk in body.chunks(body.len() / 8 + 1) {
        steady.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
    let (status, _) = crate::limits::read_response(&mut steady).await;
    assert!(status.contains(" 201 "), "{status}");
    assert_eq!(server.metric(cut_off).await, 1.0);
}

#[tokio::test]
async fn an_upload_cut_short_by_a_killed_server_is_swept_after_the_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let settings = [
        ("CHAT_FILES__SWEEP_INTERVAL_SECS", "1"),
        ("CHAT_FILES__SWEEP_GRACE_SECS", "2"),
    ];
    let server = Server::start_in(data_dir.path(), &settings);
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let kept = uploaded(&alice, "kept.txt", b"kept").await;
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    let (status, _) = post_with_files(&alice, &room, &[&kept_id]).await;
    assert_eq!(status, StatusCode::CREATED);

    // An upload of 12 MiB, of which 6 arrive: its first 5 MiB part is
    // written to disk, unfinished, when the server is killed.
    let bytes = noise(12 * 1024 * 1024);
    let body = multipart("big.bin", &bytes);
    let upload = upload_by_hand(&server, &alice, &body, 6 * 1024 * 1024).await;
    let folder = data_dir.path().join("files").join("files");
    let unfinished = || {
        files_under(&folder)
            .into_iter()
            .filter(|path| path.to_string_lossy().contains('#'))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while unfinished().is_empty() {
        assert!(Instant::now() < deadline, "no part was written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    drop(upload);
    let left = unfinished();
    assert_eq!(left.len(), 1, "{left:?}");

    // Restarted, the server's sweep removes it once it has been idle for
    // the grace period; the sent file stays.
    let server = Server::start_in(data_dir.path(), &settings);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !unfinished().is_empty() {
        assert!(Instant::now() < deadline, "still there: {:?}", unfinished());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains("removed uploads left unfinished"));
    let alice = alice.at(&server);
    let (status, _, body) = download(&server, &alice, &kept_id, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"kept");
}

/// Downloads from a bucket hold a connection to it while their clients
/// are slow, so they take places as uploads do; from a directory they do
/// not.
async fn downloads_take_places_only_from_a_bucket(s3: bool) {
    let Some(files) = FileServer::start(
        s3,
        &[
            ("CHAT_FILES__CONCURRENT_DOWNLOADS", "3"),
            ("CHAT_FILES__CONCURRENT_DOWNLOADS_PER_USER", "2"),
            // How long a download waits for a place.
            ("CHAT_LIMITS__BODY_IDLE_TIMEOUT_MS", "1000"),
        ],
    )
    .await
    else {
        return;
    };
    let server = &files.server;
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (carol, carol_id) = server.user("carol").await;
    let room = alice
        .create_room("shared", "private", &[&bob_id, &carol_id])
        .await;
    // More than the socket buffers hold, so a download whose client stops
    // reading stays unfinished.
    let bytes = noise(16 * 1024 * 1024);
    let file = uploaded(&alice, "big.bin", &bytes).await;
    let id = file["id"].as_str().unwrap();
    let (status, _) = post_with_files(&alice, &room, &[id]).await;
    assert_eq!(status, StatusCode::CREATED);
    let small_buffer = crate::limits::download_to_a_small_buffer;

    // Alice's two stopped downloads hold her places.
    let alice_first = small_buffer(server, &alice, &file).await;
    let _alice_second = small_buffer(server, &alice, &file).await;
    let (status, headers, body) = download(server, &alice, id, &[]).await;
    if !s3 {
        // From a directory nothing waits: she gets her third.
        assert_eq!(status, StatusCode::OK);
        assert!(body == bytes);
        assert_eq!(server.metric("chat_file_downloads_streaming").await, 0.0);
        return;
    }
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_error(&(status, answer), 429, "rate_limited");
    assert!(!header(&headers, "retry-after").is_empty());
    assert_eq!(refused_downloads(server, "user").await, 1.0);

    // Bob takes the server's third; Carol finds none.
    let _bob = small_buffer(server, &bob, &file).await;
    let (status, headers, body) = download(server, &carol, id, &[]).await;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_error(&(status, answer), 503, "unavailable");
    assert!(!header(&headers, "retry-after").is_empty());
    assert_eq!(refused_downloads(server, "server").await, 1.0);
    assert_eq!(server.metric("chat_file_downloads_streaming").await, 3.0);

    // One of Alice's gone, Carol's download has its place, and is whole.
    drop(alice_first);
    let started = Instant::now();
    loop {
        let (status, _, body) = download(server, &carol, id, &[]).await;
        if status == StatusCode::OK {
            assert!(body == bytes);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
    }
    assert_eq!(server.metric("chat_file_downloads_streaming").await, 2.0);
}

async fn refused_downloads(server: &Server, by: &str) -> f64 {
    let series = format!("chat_file_downloads_refused_total{{by=\"{by}\"}}");
    server.metric(&series).await
}

#[tokio::test]
async fn directory_downloads_take_no_places() {
    downloads_take_places_only_from_a_bucket(false).await;
}

#[tokio::test]
async fn s3_downloads_take_places_per_user_and_per_server() {
    downloads_take_places_only_from_a_bucket(true).await;
}
