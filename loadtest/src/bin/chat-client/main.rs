//! `chat-client`: an interactive terminal client for a two-terminal demo of
//! chatd, speaking only the public protocol.
//!
//! It signs in over REST (`--register` creates the account), finds or
//! creates the room given with `--room` (a name among your rooms, else a new
//! public room of that name; or a room id, which it joins), opens `/ws` and
//! then prints what arrives while sending each line typed as a `send` frame.
//!
//! - [`commands`]: what a typed line means;
//! - [`names`]: usernames and room labels for ids;
//! - [`session`]: the connection loop and how frames are shown.

mod attachments;
mod commands;
mod names;
mod session;

use anyhow::Context;
use chat_loadtest::api::{Api, parse_server};
use chat_protocol::{Codec, ErrorCode, RoomId, RoomKind};
use clap::{Parser, ValueEnum};

/// Interactive chat client for chatd (REST + WebSocket).
#[derive(Debug, Parser)]
#[command(name = "chat-client", version)]
struct Args {
    /// Base URL of the server (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Your username.
    #[arg(long)]
    user: String,
    /// Your password; defaults to "<user>-password" (a demo, not a secret).
    #[arg(long, env = "CHAT_PASSWORD")]
    password: Option<String>,
    /// Create the account first (logs in instead if the name is taken).
    #[arg(long)]
    register: bool,
    /// The room: a name among your rooms (created as a public room if you
    /// have none of that name), or a room id (joined if public).
    #[arg(long)]
    room: String,
    /// Wire codec of the WebSocket.
    #[arg(long, value_enum, default_value_t = CodecArg::Json)]
    codec: CodecArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CodecArg {
    Json,
    Msgpack,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = parse_server(&args.server)?;
    let api = Api::new(&server)?;
    let password = args
        .password
        .clone()
        .unwrap_or_else(|| format!("{}-password", args.user));

    let auth = sign_in(&api, &args.user, &password, args.register).await?;
    let api = api.with_token(auth.token.clone());
    println!("signed in as {} (id {})", auth.user.username, auth.user.id);

    let mut names = names::Names::new(api.clone(), &auth.user);
    let room = resolve_room(&api, &mut names, &args.room).await?;
    let codec = match args.codec {
        CodecArg::Json => Codec::Json,
        CodecArg::Msgpack => Codec::MsgPack,
    };
    session::run(&server, api, auth, names, room, codec).await
}

/// Logs in, or registers first with `register` (falling back to login if
/// the name is taken).
async fn sign_in(
    api: &Api,
    user: &str,
    password: &str,
    register: bool,
) -> anyhow::Result<chat_protocol::rest::AuthResponse> {
    if register {
        match api.register(user, password).await {
            Ok(auth) => {
                println!("registered {user}");
                return Ok(auth);
            }
            Err(error) if error.code() == Some(ErrorCode::Conflict) => {
                println!("{user} already exists; logging in");
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
pub async fn resolve_room(
    api: &Api,
    names: &mut names::Names,
    spec: &str,
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
    println!(
        "created public room #{} with id {}; others join it with --room {}",
        room.name, room.id, room.id
    );
    Ok(room.id)
}
