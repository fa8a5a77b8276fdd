//! Starts the real `chatd` binary and talks to it over HTTP, as a client
//! would.
//!
//! Each server listens on port 0 and the harness reads the bound address
//! from its log, so tests never race for ports. Servers are killed when
//! dropped; `stop` asks for a graceful shutdown instead.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The secret every test server signs tokens with, so tests can forge and
/// expire tokens on purpose.
pub const JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// Settings that lift the send rate limit and the action budget.
pub const UNTHROTTLED: &[(&str, &str)] = &[
    ("CHAT_RATES__SEND_PER_SECOND", "100000"),
    ("CHAT_RATES__SEND_BURST", "100000"),
    ("CHAT_RATES__ACTIONS_PER_SECOND", "100000"),
    ("CHAT_RATES__ACTION_BURST", "100000"),
];

/// A running `chatd serve`.
pub struct Server {
    child: Child,
    pub base: String,
    _owned_dir: Option<TempDir>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// The value of one series (`name` or `name{labels}`, exactly as
    /// `/metrics` prints it) from this server's `/metrics`; 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    }

    /// A server on a fresh, temporary data directory.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server whose send rate limit is high enough for tests that post in
    /// bulk (the limit itself has its own tests).
    pub fn start_unthrottled() -> Server {
        Server::start_with(UNTHROTTLED)
    }

    /// A server on a fresh, temporary data directory, with extra
    /// environment variables.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_in(dir.path(), env);
        server._owned_dir = Some(dir);
        server
    }

    /// A server on `data_dir`, with extra environment variables.
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_role("serve", data_dir, env)
    }

    /// `chatd serve` on a fresh, temporary data directory, run with an
    /// open-file limit (soft and hard) of `limit`.
    pub fn start_with_open_file_limit(limit: u64, env: &[(&str, &str)]) -> Server {
        use std::os::unix::process::CommandExt;

        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server::spawn("serve", dir.path(), env, |command| {
            let set_limit = move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    limit,
                    limit,
                )
                .map_err(std::io::Error::from)
            };
            // SAFETY: the closure only calls setrlimit(2), which is
            // async-signal-safe, and allocates nothing.
            unsafe { command.pre_exec(set_limit) };
        });
        server._owned_dir = Some(dir);
        server
    }

    /// `chatd <role>` (serve, gateway, router or persist) on `data_dir`.
    pub fn start_role(role: &str, data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn(role, data_dir, env, |_| {})
    }

    /// `chatd <role>` on `data_dir`, its command adjusted by `adjust`
    /// before it is spawned.
    fn spawn(
        role: &str,
        data_dir: &Path,
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatd"));
        command
            .arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHAT_LISTEN", "127.0.0.1:0")
            .env("CHAT_DATA_DIR", data_dir)
            .env("CHAT_JWT_SECRET", JWT_SECRET)
            .env("CHAT_LOG_FORMAT", "pretty")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        adjust(&mut command);
        let mut child = command.spawn().expect("spawn chatd");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let address = line.split("listening on http://").nth(1).map(|rest| {
                    rest.chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect::<String>()
                });
                // Logged before the address is handed over: a test that
                // has the address sees the line that gave it.
                log_writer.lock().unwrap().push(line);
                if let Some(address) = address {
                    let _ = address_tx.send(address);
                }
            }
        });
        let address = match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("chatd did not start:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        Server {
            child,
            base: format!("http://{address}"),
            _owned_dir: None,
            log,
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// An anonymous client of this server.
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.base.clone(),
            token: None,
        }
    }

    /// Registers `username` (password "password123") and answers a client
    /// that carries its token, and the user's id.
    pub async fn user(&self, username: &str) -> (Client, String) {
        let (status, body) = self
            .client()
            .post(
                "/api/v1/auth/register",
                json!({"username": username, "password": "password123"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {username}: {body}");
        let client = self.client().with_token(body["token"].as_str().unwrap());
        (client, body["user"]["id"].as_str().unwrap().to_owned())
    }

    /// SIGTERM, then waits for the process to exit; answers its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "chatd did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id, to look at the process from outside.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for the process to exit on its own; answers
    /// its exit status, or `None` if it still runs.
    pub fn wait_for_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGSTOP: the process does nothing more until [`Server::resume`]d
    /// (or killed), as if the machine had frozen it.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// SIGCONT, after [`Server::pause`].
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal");
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client of one server, optionally authenticated.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// An anonymous client of the server at `base` (`http://host:port`),
    /// e.g. a node started in-process.
    pub fn new(base: String) -> Client {
        Client {
            http: reqwest::Client::new(),
            base,
            token: None,
        }
    }

    /// The same client (and token) pointed at another server, e.g. a
    /// restarted one.
    pub fn at(&self, server: &Server) -> Client {
        Client {
            base: server.base.clone(),
            ..self.clone()
        }
    }

    /// The bearer token this client carries.
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("an authenticated client")
    }

    pub fn with_token(mut self, token: &str) -> Client {
        self.token = Some(token.to_owned());
        self
    }

    /// Sends a request and answers the status and the JSON body (`Null`
    /// when the body is empty).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        decode(response).await
    }

    /// Sends a raw body with a content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        decode(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn post_empty(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::POST, path, None).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, None).await
    }

    /// Creates a room and answers its id.
    pub async fn create_room(&self, name: &str, visibility: &str, member_ids: &[&str]) -> String {
        let (status, body) = self
            .post(
                "/api/v1/rooms",
                json!({"name": name, "visibility": visibility, "member_ids": member_ids}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create room: {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Posts a message and answers it.
    pub async fn send(&self, room: &str, content: &str) -> Value {
        let (status, body) = self
            .post(
                &format!("/api/v1/rooms/{room}/messages"),
                json!({"content": content}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "send: {body}");
        body
    }
}

async fn decode(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{status}: body is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, body)
}

/// Asserts the protocol's error body with `code` and the HTTP status that goes with it.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: u16, code: &str) {
    let (actual_status, body) = answer;
    assert_eq!(actual_status.as_u16(), status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "code of {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "a human message in {body}"
    );
}

/// The id of the DM room of two users, given as decimal ids.
pub fn dm_id(a: &str, b: &str) -> String {
    let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
    format!("dm:{}:{}", a.min(b), a.max(b))
}

/// An HS256 token for `user` signed with `secret`, expiring
/// `exp_offset_secs` from now (negative: already expired), to forge and
/// expire tokens on purpose.
pub fn signed_token(user: &str, secret: &str, exp_offset_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": user, "iat": now, "exp": now + exp_offset_secs, "sid": "1"}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}
