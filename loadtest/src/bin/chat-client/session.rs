//! The connected part of `chat-client`: one WebSocket, stdin lines, and a
//! readable line for every frame that matters to a person.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chat_loadtest::api::Api;
use chat_loadtest::ws::{self, Incoming};
use chat_protocol::frames::{ClientAction, ClientFrame, SendMessage, ServerFrame};
use chat_protocol::rest::AuthResponse;
use chat_protocol::{Codec, Message, RoomId, RoomKind};
use futures_util::{SinkExt, StreamExt};
use reqwest::Url;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::attachments::attachment_line;
use crate::commands::{self, Command};
use crate::names::{Names, clock};

struct Session {
    api: Api,
    names: Names,
    codec: Codec,
    room: RoomId,
    /// Send times of messages not acked yet, by client_id.
    pending: HashMap<String, Instant>,
    next_client_id: u64,
    /// Makes this process's client_ids distinct from an earlier run's
    /// (the server treats a repeated client_id as a retry).
    client_prefix: String,
}

/// Connects and runs until the user quits or the server closes.
pub async fn run(
    server: &Url,
    api: Api,
    auth: AuthResponse,
    names: Names,
    room: RoomId,
    codec: Codec,
) -> anyhow::Result<()> {
    let socket = ws::connect(server, &auth.token, codec).await?;
    let (mut sink, mut stream) = socket.split();
    let mut session = Session {
        api,
        names,
        codec,
        room,
        pending: HashMap::new(),
        next_client_id: 0,
        client_prefix: format!(
            "cli-{}-{}",
            std::process::id(),
            chat_protocol::id::now_ms() % 1_000_000
        ),
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut closed_by_server = false;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let line = match line {
                    Ok(Some(line)) => line,
                    Ok(None) => break, // Ctrl-D
                    Err(error) => {
                        println!("! stdin: {error}");
                        break;
                    }
                };
                match session.command(commands::parse(&line)).await {
                    Step::Continue => {}
                    Step::Send(frame) => {
                        if let Err(error) = sink.send(ws::encode(session.codec, &frame)).await {
                            println!("! send failed: {error}");
                            break;
                        }
                    }
                    Step::Quit => break,
                }
            }
            next = stream.next() => {
                let message = match next {
                    None => {
                        println!("! connection ended");
                        closed_by_server = true;
                        break;
                    }
                    Some(Err(error)) => {
                        println!("! connection failed: {error}");
                        closed_by_server = true;
                        break;
                    }
                    Some(Ok(message)) => message,
                };
                match ws::decode(&message) {
                    Incoming::Frame(frame) => session.show(*frame).await,
                    Incoming::Undecodable(error) => println!("! undecodable frame: {error}"),
                    Incoming::Closed(code, reason) => {
                        println!("! server closed the connection: {code} {reason}");
                        closed_by_server = true;
                        break;
                    }
                    Incoming::Control => {}
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    if !closed_by_server {
        let _ = sink.send(ws::close_normal()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(ws::decode(&message), Incoming::Closed(..)) {
                    break;
                }
            }
        })
        .await;
        println!("bye");
    }
    Ok(())
}

enum Step {
    Continue,
    Send(ClientFrame),
    Quit,
}

impl Session {
    async fn command(&mut self, command: Command) -> Step {
        match command {
            Command::Nothing => {}
            Command::Say(text) => {
                self.next_client_id += 1;
                let client_id = format!("{}-{}", self.client_prefix, self.next_client_id);
                self.pending.insert(client_id.clone(), Instant::now());
                return Step::Send(ClientFrame {
                    reference: None,
                    action: ClientAction::Send(SendMessage {
                        room_id: self.room,
                        content: text,
                        client_id: Some(client_id),
                        reply_to: None,
                        attachment_ids: Vec::new(),
                    }),
                });
            }
            Command::Help => println!("{}", commands::HELP),
            Command::Quit => return Step::Quit,
            Command::Unknown(why) => println!("! {why}"),
            Command::Rooms => self.list_rooms().await,
            Command::Who => self.who().await,
            Command::History(n) => self.history(n).await,
            Command::Join(spec) => {
                match crate::resolve_room(&self.api, &mut self.names, &spec).await {
                    Ok(room) => self.switch(room).await,
                    Err(error) => println!("! {error:#}"),
                }
            }
            Command::Dm(username) => match self.find_user(&username).await {
                Ok(user) => match self.api.open_dm(user.id).await {
                    Ok(room) => self.switch(room.id).await,
                    Err(error) => println!("! {error}"),
                },
                Err(error) => println!("! {error}"),
            },
            Command::Invite(username) => match self.find_user(&username).await {
                Ok(user) => match self.api.add_member(&self.room, user.id).await {
                    Ok(()) => {
                        let room = self.names.room(self.room).await;
                        println!("* added {} to {room}", user.username);
                    }
                    Err(error) => println!("! {error}"),
                },
                Err(error) => println!("! {error}"),
            },
        }
        Step::Continue
    }

    async fn switch(&mut self, room: RoomId) {
        self.room = room;
        let label = self.names.room(room).await;
        println!("* now talking in {label} ({room})");
        self.history(10).await;
    }

    async fn find_user(&mut self, username: &str) -> anyhow::Result<chat_protocol::User> {
        let users = self.api.search_users(username, 10).await?;
        let user = users
            .into_iter()
            .find(|u| u.username.eq_ignore_ascii_case(username))
            .ok_or_else(|| anyhow::anyhow!("no user named {username}"))?;
        self.names.learn_user(&user);
        Ok(user)
    }

    async fn list_rooms(&mut self) {
        match self.api.rooms().await {
            Ok(answer) => {
                for summary in answer.rooms {
                    self.names.learn_room(&summary.room);
                    let label = self.names.room(summary.room.id).await;
                    let marker = if summary.room.id == self.room {
                        "*"
                    } else {
                        " "
                    };
                    let kind = match summary.room.kind {
                        RoomKind::Group => format!("{} members", summary.room.member_count),
                        RoomKind::Dm => "direct".into(),
                    };
                    println!(
                        "{marker} {label:<24} {kind:<12} unread {:<5} id {}",
                        summary.unread_count, summary.room.id
                    );
                }
            }
            Err(error) => println!("! {error}"),
        }
    }

    async fn who(&mut self) {
        match self.api.members(&self.room).await {
            Ok(members) => {
                let list: Vec<String> = members
                    .iter()
                    .map(|m| {
                        self.names.learn_user(&m.user);
                        format!("{} ({})", m.user.username, m.role.as_str())
                    })
                    .collect();
                println!("* members: {}", list.join(", "));
            }
            Err(error) => println!("! {error}"),
        }
    }

    async fn history(&mut self, n: u32) {
        match self.api.history(&self.room, n).await {
            Ok(page) => {
                if page.messages.is_empty() {
                    println!("* no messages yet");
                }
                for message in page.messages {
                    let line = self.message_line(&message).await;
                    println!("{line}");
                }
            }
            Err(error) => println!("! {error}"),
        }
    }

    async fn message_line(&mut self, message: &Message) -> String {
        let room = self.names.room(message.room_id).await;
        let sender = self.names.user(message.sender_id).await;
        let body = if message.deleted {
            "(deleted)".to_string()
        } else {
            message.content.clone()
        };
        let edited = if message.edited_at.is_some() {
            " (edited)"
        } else {
            ""
        };
        let mut line = format!(
            "[{}] {room} <{sender}> {body}{edited}",
            clock(message.created_at)
        );
        for file in &message.attachments {
            line.push('\n');
            line.push_str(&attachment_line(file));
        }
        line
    }

    /// Prints one frame from the server.
    async fn show(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Ready {
                user,
                rooms,
                heartbeat_interval_ms,
                ..
            } => {
                for summary in &rooms {
                    self.names.learn_room(&summary.room);
                }
                let here = self.names.room(self.room).await;
                println!(
                    "* connected as {} ({} rooms, heartbeat {} s); talking in {here}. /help for commands",
                    user.username,
                    rooms.len(),
                    heartbeat_interval_ms / 1000
                );
                self.history(10).await;
            }
            ServerFrame::Message { message } => {
                let line = self.message_line(&message).await;
                println!("{line}");
            }
            ServerFrame::Ack {
                client_id,
                message_id,
                ..
            } => {
                let took = client_id
                    .as_ref()
                    .and_then(|id| self.pending.remove(id))
                    .map(|sent| format!(" in {:.1} ms", sent.elapsed().as_secs_f64() * 1000.0))
                    .unwrap_or_default();
                println!("  ✓ ack {message_id}{took}");
            }
            ServerFrame::Mention {
                room_id,
                sender_id,
                content,
                ..
            } => {
                let room = self.names.room(room_id).await;
                let sender = self.names.user(sender_id).await;
                println!("! {sender} mentioned you in {room}: {content}");
            }
            ServerFrame::MessageUpdated { message } => {
                let line = self.message_line(&message).await;
                println!("{line}");
            }
            ServerFrame::MessageDeleted {
                room_id,
                message_id,
            } => {
                let room = self.names.room(room_id).await;
                println!("* message {message_id} deleted in {room}");
            }
            ServerFrame::Typing {
                room_id,
                user_id,
                typing,
            } => {
                if typing {
                    let room = self.names.room(room_id).await;
                    let user = self.names.user(user_id).await;
                    println!("* {user} is typing in {room}");
                }
            }
            ServerFrame::Presence {
                user_id, online, ..
            } => {
                let user = self.names.user(user_id).await;
                let state = if online { "online" } else { "offline" };
                println!("* {user} is {state}");
            }
            ServerFrame::Read { .. } | ServerFrame::Pong { .. } => {}
            ServerFrame::MemberJoined { room_id, user_id } => {
                let room = self.names.room(room_id).await;
                let user = self.names.user(user_id).await;
                println!("* {user} joined {room}");
            }
            ServerFrame::MemberLeft { room_id, user_id } => {
                let room = self.names.room(room_id).await;
                let user = self.names.user(user_id).await;
                println!("* {user} left {room}");
            }
            ServerFrame::RoomAdded { room } => {
                self.names.learn_room(&room.room);
                let label = self.names.room(room.room.id).await;
                println!("* you are now in {label} ({})", room.room.id);
            }
            ServerFrame::RoomRemoved { room_id } => {
                let label = self.names.room(room_id).await;
                println!("* you are no longer in {label}");
            }
            ServerFrame::History { .. } | ServerFrame::Resumed { .. } => {}
            ServerFrame::Notice { content } => println!("! notice: {content}"),
            ServerFrame::Error(error) => {
                if let Some(id) = &error.client_id {
                    self.pending.remove(id);
                }
                let retry = error
                    .retry_after_ms
                    .map(|ms| format!(" (retry after {ms} ms)"))
                    .unwrap_or_default();
                println!("! error {}: {}{retry}", error.code.as_str(), error.message);
            }
        }
    }
}
