//! The interactive chat client behind `chat-client`, as a library so that
//! its session loop can be driven in-process by tests.
//!
//! [`open`] signs in over REST (registering first if asked), finds or
//! creates the room to talk in, and answers a [`Session`]; its
//! [`Session::run`] takes typed lines from a channel and writes to a
//! [`Screen`] until the user quits, reconnecting whenever the connection is
//! lost.
//!
//! - [`commands`]: what a typed line means;
//! - [`attachments`]: how attached files are shown;
//! - [`names`]: usernames and room labels for ids;
//! - [`seen`]: what was shown, where to resume, what to report read;
//! - [`backoff`]: when to try reconnecting;
//! - [`screen`]: the output, with a prompt naming the current room;
//! - [`session`]: the connections and how frames are shown.

pub mod attachments;
pub mod backoff;
pub mod commands;
pub mod names;
pub mod screen;
pub mod seen;
pub mod session;

use anyhow::Context;
use chat_protocol::rest::AuthResponse;
use chat_protocol::{Codec, ErrorCode, RoomId, RoomKind};
use reqwest::Url;

pub use screen::{Screen, Terminal};
pub use session::Session;

use crate::api::Api;
use names::Names;

/// Who signs in, where, and into which room.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL, as from [`crate::api::parse_server`].
    pub server: Url,
    pub user: String,
    pub password: String,
    /// Create the account first (logs in instead if the name is taken).
    pub register: bool,
    /// A name among the user's rooms (created as a public room if none),
    /// or a room id (joined if public).
    pub room: String,
    pub codec: Codec,
}

/// Signs in and finds the room; the session is not connected yet.
pub async fn open<S: Screen>(options: Options, mut screen: S) -> anyhow::Result<Session<S>> {
    let api = Api::new(&options.server)?;
    let auth = sign_in(
        &api,
        &options.user,
        &options.password,
        options.register,
        &mut screen,
    )
    .await?;
    let api = api.with_token(auth.token.clone());
    screen.line(&format!(
        "signed in as {} (id {})",
        auth.user.username, auth.user.id
    ));
    let mut names = Names::new(api.clone(), &auth.user);
    let room = resolve_room(&api, &mut names, &options.room, &mut screen).await?;
    Ok(Session::new(
        options.server,
        api,
        auth.user.username,
        options.password,
        names,
        room,
        options.codec,
        screen,
    ))
}

/// Logs in, or registers first with `register` (falling back to login if
/// the name is taken).
async fn sign_in(
    api: &Api,
    user: &str,
    password: &str,
    register: bool,
    screen: &mut impl Screen,
) -> anyhow::Result<AuthResponse> {
    if register {
        match api.register(user, password).await {
            Ok(auth) => {
                screen.line(&format!("registered {user}"));
                return Ok(auth);
            }
            Err(error) if error.code() == Some(ErrorCode::Conflict) => {
                screen.line(&format!("{user} already exists; logging in"));
            }
            Err(error) => return Err(error).context("registering"),
        }
    }
    match api.login(user, password).await {
        Ok(auth) => Ok(auth),
        Err(error) if error.code() == Some(ErrorCode::Unauthorized) && !register => Err(error)
            .context(format!(
                "logging in as {user} (no such account? add --register to create it)"
            )),
        Err(error) => Err(error).context("logging in"),
    }
}

/// The room `spec` names: a room id (joined when it is a group room), the
/// caller's group room of that name, or a new public room of that name.
async fn resolve_room(
    api: &Api,
    names: &mut Names,
    spec: &str,
    screen: &mut impl Screen,
) -> anyhow::Result<RoomId> {
    let spec = spec.trim().trim_start_matches('#');
    if let Ok(id) = spec.parse::<RoomId>() {
        let room = if id.is_dm() {
            api.room(&id).await
        } else {
            api.join(&id).await
        }
        .with_context(|| format!("room {id}"))?;
        names.learn_room(&room);
        return Ok(room.id);
    }
    let mine = api.rooms().await.context("listing your rooms")?.rooms;
    let found = mine
        .iter()
        .filter(|s| s.room.kind == RoomKind::Group)
        .find(|s| s.room.name == spec)
        .or_else(|| {
            mine.iter()
                .filter(|s| s.room.kind == RoomKind::Group)
                .find(|s| s.room.name.eq_ignore_ascii_case(spec))
        });
    if let Some(summary) = found {
        names.learn_room(&summary.room);
        return Ok(summary.room.id);
    }
    let room = api
        .create_room(spec)
        .await
        .with_context(|| format!("creating room {spec:?}"))?;
    names.learn_room(&room);
    let label = names.room(room.id).await;
    screen.line(&format!(
        "created public room {label} with id {}; others join it with --room {}",
        room.id, room.id
    ));
    Ok(room.id)
}
