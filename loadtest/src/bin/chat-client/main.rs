//! `chat-client`: an interactive terminal client for a two-terminal demo of
//! chatd, speaking only the public protocol.
//!
//! It signs in over REST (`--register` creates the account), finds or
//! creates the room given with `--room` (a name among your rooms, else a new
//! public room of that name; or a room id, which it joins), opens `/ws` and
//! then prints what arrives while sending each line typed as a `send` frame.
//! It reconnects by itself when the server restarts; see
//! [`chat_loadtest::client`], where all of it lives.

use chat_loadtest::api::parse_server;
use chat_loadtest::client::{self, Options, Terminal};
use chat_protocol::Codec;
use clap::{Parser, ValueEnum};
use tokio::sync::mpsc;

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
    /// Your password; defaults to `<user>-password` (a demo, not a secret).
    #[arg(long, env = "CHAT_PASSWORD", hide_env_values = true)]
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

/// Typed lines waiting for the session.
const TYPED_LINES: usize = 64;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = Options {
        server: parse_server(&args.server)?,
        password: args
            .password
            .clone()
            .unwrap_or_else(|| format!("{}-password", args.user)),
        user: args.user,
        register: args.register,
        room: args.room,
        codec: match args.codec {
            CodecArg::Json => Codec::Json,
            CodecArg::Msgpack => Codec::MsgPack,
        },
    };
    let session = client::open(options, Terminal::stdout()).await?;
    let (typed, lines) = mpsc::channel(TYPED_LINES);
    read_stdin(typed.clone());
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = typed.send("/quit".to_owned()).await;
        }
    });
    session.run(lines).await
}

/// Feeds stdin's lines to the session from a thread of its own (a blocking
/// read that the process may exit in the middle of); end of input closes
/// the channel, which quits.
fn read_stdin(typed: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if typed.blocking_send(line).is_err() {
                break;
            }
        }
    });
}
