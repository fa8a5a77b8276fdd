//! A small REST client for `/api/v1`, typed with the `chat-protocol` bodies.
//!
//! Every call returns [`ApiError`] on failure, which keeps the protocol's
//! error `code` so that callers can switch on it (`conflict` on register,
//! `unauthorized` on login, …).

use chat_protocol::rest::{
    AddMemberRequest, AuthResponse, CreateRoomRequest, HistoryResponse, LoginRequest, Member,
    MembersResponse, NotificationsResponse, OpenDmRequest, PublicRoomsResponse,
    ReadNotificationsRequest, RegisterRequest, RoomsResponse, UsersResponse,
};
use chat_protocol::{ErrorBody, ErrorCode, File, Id, Room, RoomId, User, Visibility};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a REST call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status.
    #[error("{method} {path}: HTTP {status}{}: {message}", code.map(|c| format!(" {}", c.as_str())).unwrap_or_default())]
    Status {
        method: Method,
        path: String,
        status: u16,
        /// The protocol error code, when the body carried one.
        code: Option<ErrorCode>,
        message: String,
    },
    /// The request never got an answer (connection refused, timeout, …).
    #[error("{method} {path}: {source}")]
    Transport {
        method: Method,
        path: String,
        source: reqwest::Error,
    },
    /// The answer was not the expected body.
    #[error("{method} {path}: unexpected answer: {message}")]
    Decode {
        method: Method,
        path: String,
        message: String,
    },
}

impl ApiError {
    /// The protocol error code of an error answer.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiError::Status { code, .. } => *code,
            _ => None,
        }
    }
}

/// Checks a server base URL such as `http://127.0.0.1:8080` and returns it
/// normalised (no path). Only `http` is accepted: these tools are built
/// without TLS.
pub fn parse_server(server: &str) -> anyhow::Result<Url> {
    let mut url =
        Url::parse(server).map_err(|e| anyhow::anyhow!("bad --server {server:?}: {e}"))?;
    match url.scheme() {
        "http" => {}
        "https" => anyhow::bail!("--server {server}: https is not supported (built without TLS)"),
        other => anyhow::bail!("--server {server}: scheme {other:?} is not http"),
    }
    if url.host_str().is_none() {
        anyhow::bail!("--server {server}: no host");
    }
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// A REST client for one server, optionally signed in.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Api {
    /// A client for the server at `server` (see [`parse_server`]).
    pub fn new(server: &Url) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        Ok(Api {
            http,
            base: server.join("api/v1/")?,
            token: None,
        })
    }

    /// The same client, signed in with `token`. Shares the connection pool.
    pub fn with_token(&self, token: impl Into<String>) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            token: Some(token.into()),
        }
    }

    /// The bearer token this client sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// One call. `path` is relative to `/api/v1/` (or absolute with a
    /// leading `/`). Answers without a body
    /// (204) decode from `null`, so `T = ()` works for them.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(dyn erased::Body + Sync)>,
    ) -> Result<T, ApiError> {
        let url = self.base.join(path).map_err(|e| ApiError::Decode {
            method: method.clone(),
            path: path.to_string(),
            message: format!("bad path: {e}"),
        })?;
        let mut request = self.http.request(method.clone(), url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_json());
        }
        self.answer(request, method, path).await
    }

    /// Sends `request` and decodes its answer: `T` on success, the error
    /// body's code and message otherwise.
    async fn answer<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        method: Method,
        path: &str,
    ) -> Result<T, ApiError> {
        let transport = |source| ApiError::Transport {
            method: method.clone(),
            path: path.to_string(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => (Some(body.error.code), body.error.message),
                Err(_) => (None, String::from_utf8_lossy(&bytes).into_owned()),
            };
            return Err(ApiError::Status {
                method,
                path: path.to_string(),
                status: status.as_u16(),
                code,
                message,
            });
        }
        let bytes: &[u8] = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            b"null"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map_err(|e| ApiError::Decode {
            method,
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call(Method::GET, path, None).await
    }

    async fn post<T: DeserializeOwned, B: Serialize + Sync>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `POST /files`: uploads `bytes` as a file named `name` (multipart
    /// part `file`), answering its `File` for `attachment_ids`.
    pub async fn upload_file(&self, name: &str, bytes: Vec<u8>) -> Result<File, ApiError> {
        let path = "files";
        let url = self.base.join(path).map_err(|e| ApiError::Decode {
            method: Method::POST,
            path: path.to_string(),
            message: format!("bad path: {e}"),
        })?;
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
        let mut request = self
            .http
            .post(url)
            .multipart(reqwest::multipart::Form::new().part("file", part));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        self.answer(request, Method::POST, path).await
    }

    /// `GET /healthz` (outside `/api/v1`): whether the server answers.
    pub async fn health(&self) -> Result<(), ApiError> {
        let _: serde_json::Value = self.get("/healthz").await?;
        Ok(())
    }

    /// `POST /auth/register`.
    pub async fn register(&self, username: &str, password: &str) -> Result<AuthResponse, ApiError> {
        let body = RegisterRequest {
            username: username.to_string(),
            password: password.to_string(),
            display_name: None,
        };
        self.post("auth/register", &body).await
    }

    /// `POST /auth/login`.
    pub async fn login(&self, username: &str, password: &str) -> Result<AuthResponse, ApiError> {
        let body = LoginRequest {
            username: username.to_string(),
            password: password.to_string(),
        };
        self.post("auth/login", &body).await
    }

    /// `GET /users/{id}`.
    pub async fn user(&self, id: Id) -> Result<User, ApiError> {
        self.get(&format!("users/{id}")).await
    }

    /// `GET /users?prefix=…&limit=…`.
    pub async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<User>, ApiError> {
        // The username charset needs no escaping; anything else matches
        // nobody, so there is no need to ask.
        if !prefix.bytes().all(chat_protocol::limits::is_username_byte) {
            return Ok(Vec::new());
        }
        let path = format!("users?prefix={prefix}&limit={limit}");
        let answer: UsersResponse = self.get(&path).await?;
        Ok(answer.users)
    }

    /// `GET /rooms`: the caller's rooms, DMs included.
    pub async fn rooms(&self) -> Result<RoomsResponse, ApiError> {
        self.get("rooms").await
    }

    /// `GET /rooms/{id}`.
    pub async fn room(&self, room: &RoomId) -> Result<Room, ApiError> {
        self.get(&format!("rooms/{room}")).await
    }

    /// `POST /rooms`: a public group room owned by the caller.
    pub async fn create_room(&self, name: &str) -> Result<Room, ApiError> {
        let body = CreateRoomRequest {
            name: name.to_string(),
            visibility: Visibility::Public,
            member_ids: Vec::new(),
            max_members: None,
        };
        self.post("rooms", &body).await
    }

    /// `POST /auth/logout`: ends this token's session (`all`: every
    /// session of the user).
    pub async fn logout(&self, all: bool) -> Result<(), ApiError> {
        let body = chat_protocol::accounts::LogoutRequest { all };
        self.post("auth/logout", &body).await
    }

    /// `POST /rooms/{id}/join`.
    pub async fn join(&self, room: &RoomId) -> Result<Room, ApiError> {
        self.call(Method::POST, &format!("rooms/{room}/join"), None)
            .await
    }

    /// `POST /rooms/{id}/members`.
    pub async fn add_member(&self, room: &RoomId, user: Id) -> Result<(), ApiError> {
        let body = AddMemberRequest { user_id: user };
        self.post(&format!("rooms/{room}/members"), &body).await
    }

    /// `GET /rooms/public?prefix=…&limit=…`: the first page of the room
    /// directory.
    pub async fn public_rooms(&self, prefix: &str, limit: u32) -> Result<Vec<Room>, ApiError> {
        let path = format!("rooms/public?prefix={}&limit={limit}", query_escape(prefix));
        let answer: PublicRoomsResponse = self.get(&path).await?;
        Ok(answer.rooms)
    }

    /// `GET /notifications?limit=…`: the newest stored mentions.
    pub async fn notifications(&self, limit: u32) -> Result<NotificationsResponse, ApiError> {
        self.get(&format!("notifications?limit={limit}")).await
    }

    /// `POST /notifications/read`: everything up to `up_to` is read.
    pub async fn read_notifications(&self, up_to: Id) -> Result<(), ApiError> {
        let body = ReadNotificationsRequest { up_to };
        self.post("notifications/read", &body).await
    }

    /// `GET /rooms/{id}/members`, the first page (by user id).
    pub async fn members(&self, room: &RoomId) -> Result<Vec<Member>, ApiError> {
        let answer: MembersResponse = self.get(&format!("rooms/{room}/members")).await?;
        Ok(answer.members)
    }

    /// `POST /dms`: the DM room with `user`, created if needed.
    pub async fn open_dm(&self, user: Id) -> Result<Room, ApiError> {
        let body = OpenDmRequest { user_id: user };
        self.post("dms", &body).await
    }

    /// `GET /rooms/{id}/messages?limit=…`: the newest page.
    pub async fn history(&self, room: &RoomId, limit: u32) -> Result<HistoryResponse, ApiError> {
        self.get(&format!("rooms/{room}/messages?limit={limit}"))
            .await
    }
}

/// Request bodies as a trait object, so that [`Api::call`] is not generic
/// over the body type.
mod erased {
    use serde::Serialize;

    pub trait Body {
        fn to_json(&self) -> Vec<u8>;
    }

    impl<T: Serialize> Body for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("request bodies always serialize")
        }
    }
}

/// `text` percent-encoded for a query string value: every byte but ASCII
/// letters, digits and `-_.~`.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
