//! The connected part of `chat-client`: typed lines in, one WebSocket at a
//! time, a readable line out for every frame that matters to a person.
//!
//! The session outlives its connections. When one ends (a restart's 1012,
//! a crash, a network cut) the session reconnects by itself, with
//! [`Backoff`], and then resumes every room from the last message it
//! showed. What the user types meanwhile is kept in the outbox and sent on
//! the next connection; every send carries a `client_id`, and the outbox
//! keeps it until its `ack`, so a send that reached the server before the
//! cut is not stored twice (the server answers the original `ack`).
//! Messages are shown once each ([`Seen`]) and reported read as they are
//! shown.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_protocol::frames::{ClientAction, ClientFrame, SendMessage, ServerFrame, close_code};
use chat_protocol::{Codec, File, Id, Message, RoomId, RoomKind, RoomSummary};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use reqwest::Url;
use tokio::sync::mpsc;

use super::attachments::attachment_line;
use super::backoff::Backoff;
use super::commands::{self, Command};
use super::names::{self, Names, clock};
use super::screen::Screen;
use super::seen::Seen;
use crate::api::Api;
use crate::ws::{self, Incoming, Socket};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often read positions of shown messages are reported.
const READ_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A signed-in user's chat, across connections.
pub struct Session<S: Screen> {
    server: Url,
    api: Api,
    username: String,
    password: String,
    names: Names,
    codec: Codec,
    /// Where typed lines go; the prompt shows it.
    room: RoomId,
    screen: S,
    /// Sends not acked yet, in the order typed.
    outbox: Vec<Pending>,
    seen: Seen,
    /// The rooms this client knows it is in (to tell new ones on reconnect).
    rooms: HashSet<RoomId>,
    /// Whether a connection has been ready before (the next is a reconnect).
    connected_before: bool,
    next_client_id: u64,
    /// Makes this process's client_ids distinct from an earlier run's
    /// (the server treats a repeated client_id as a retry).
    client_prefix: String,
}

/// A typed line on its way to the server.
struct Pending {
    client_id: String,
    frame: ClientFrame,
    typed_at: Instant,
}

/// How a connection ended.
enum Ended {
    /// The user quit.
    Quit,
    /// The connection is gone; `restarting` when the server said so (1012).
    Lost { restarting: bool },
}

/// What a typed line asks of the connection.
enum Step {
    Continue,
    /// Send the newest outbox entry.
    SendQueued,
    Quit,
}

type Sink = SplitSink<Socket, ws::Message>;
type Stream = SplitStream<Socket>;

impl<S: Screen> Session<S> {
    /// A session for a signed-in user, talking in `room`; nothing is
    /// connected until [`Session::run`].
    #[allow(clippy::too_many_arguments)] // each is a distinct part of the sign-in
    pub fn new(
        server: Url,
        api: Api,
        username: String,
        password: String,
        names: Names,
        room: RoomId,
        codec: Codec,
        screen: S,
    ) -> Session<S> {
        Session {
            server,
            api,
            username,
            password,
            names,
            codec,
            room,
            screen,
            outbox: Vec::new(),
            seen: Seen::default(),
            rooms: HashSet::new(),
            connected_before: false,
            next_client_id: 0,
            client_prefix: format!(
                "cli-{}-{}",
                std::process::id(),
                chat_protocol::id::now_ms() % 1_000_000
            ),
        }
    }

    /// Runs until the user quits (`/quit`, or `lines` closes): connects,
    /// and reconnects whenever the connection is lost.
    pub async fn run(mut self, mut lines: mpsc::Receiver<String>) -> anyhow::Result<()> {
        let mut backoff = Backoff::default();
        backoff.go_at_once();
        loop {
            let Some(socket) = self.connect(&mut lines, &mut backoff).await else {
                break;
            };
            match self.converse(socket, &mut lines).await {
                Ended::Quit => break,
                Ended::Lost { restarting } => {
                    if restarting {
                        backoff.go_at_once();
                    }
                }
            }
        }
        if !self.outbox.is_empty() {
            let lines = names::counted(self.outbox.len(), "typed line");
            self.say(format!("! {lines} not acknowledged by the server"));
        }
        self.say("bye");
        Ok(())
    }

    /// Opens a connection, waiting as [`Backoff`] says between attempts
    /// while still taking typed lines. `None` when the user quits.
    async fn connect(
        &mut self,
        lines: &mut mpsc::Receiver<String>,
        backoff: &mut Backoff,
    ) -> Option<Socket> {
        // Said once per outage, and again only when the reason changes.
        let mut last_failure = String::new();
        loop {
            let delay = backoff.next_delay();
            let wait = tokio::time::sleep(delay);
            tokio::pin!(wait);
            // Without a wait, lines typed meanwhile stay in the channel
            // until the connection takes them.
            while !delay.is_zero() {
                self.show_prompt().await;
                tokio::select! {
                    () = &mut wait => break,
                    line = lines.recv() => {
                        let line = line?;
                        self.screen.line_typed();
                        match self.command(commands::parse(&line)).await {
                            Step::Quit => return None,
                            Step::SendQueued => {
                                self.say("* offline: the line will be sent once reconnected");
                            }
                            Step::Continue => {}
                        }
                    }
                }
            }
            let token = self.api.token().unwrap_or_default().to_owned();
            let attempt = ws::connect(&self.server, &token, self.codec);
            let failure = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
                Ok(Ok(socket)) => {
                    backoff.succeeded();
                    return Some(socket);
                }
                Ok(Err(error)) => format!("{error:#}"),
                Err(_) => "no answer in 10 s".to_owned(),
            };
            if failure != last_failure {
                self.say(format!("! cannot connect: {failure}; retrying"));
                last_failure = failure;
            }
        }
    }

    /// Talks over one connection until it ends.
    async fn converse(&mut self, socket: Socket, lines: &mut mpsc::Receiver<String>) -> Ended {
        let (mut sink, mut stream) = socket.split();
        let mut ready = false;
        let mut report_reads = tokio::time::interval(READ_REPORT_INTERVAL);
        report_reads.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            self.show_prompt().await;
            tokio::select! {
                line = lines.recv() => {
                    let Some(line) = line else {
                        return self.close(sink, stream).await;
                    };
                    self.screen.line_typed();
                    match self.command(commands::parse(&line)).await {
                        Step::Continue => {}
                        Step::Quit => return self.close(sink, stream).await,
                        // Before `ready`, the whole outbox goes out with it.
                        Step::SendQueued if !ready => {}
                        Step::SendQueued => {
                            let frame = self.outbox.last().map(|pending| pending.frame.clone());
                            if let Some(frame) = frame
                                && !self.send(&mut sink, &frame).await
                            {
                                return Ended::Lost { restarting: false };
                            }
                        }
                    }
                }
                next = stream.next() => {
                    let message = match next {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => return self.lost(format!("connection failed: {error}"), false),
                        None => return self.lost("connection ended".into(), false),
                    };
                    match ws::decode(&message) {
                        Incoming::Frame(frame) => {
                            let is_ready = matches!(*frame, ServerFrame::Ready { .. });
                            let replies = self.show(*frame).await;
                            ready |= is_ready;
                            for reply in replies {
                                if !self.send(&mut sink, &reply).await {
                                    return Ended::Lost { restarting: false };
                                }
                            }
                        }
                        Incoming::Undecodable(error) => self.say(format!("! undecodable frame: {error}")),
                        Incoming::Closed(code, reason) => {
                            if code == close_code::TOKEN_EXPIRED {
                                self.log_in_again().await;
                            }
                            let restarting = code == close_code::RESTARTING;
                            return self.lost(format!("{code} {reason}"), restarting);
                        }
                        Incoming::Control => {}
                    }
                }
                _ = report_reads.tick(), if ready => {
                    for (room_id, message_id) in self.seen.reads_due() {
                        let frame = ClientFrame {
                            reference: None,
                            action: ClientAction::Read { room_id, message_id },
                        };
                        if !self.send(&mut sink, &frame).await {
                            return Ended::Lost { restarting: false };
                        }
                        self.seen.reported(room_id, message_id);
                    }
                }
            }
        }
    }

    /// Sends one frame; false (with a line saying so) if the connection is
    /// gone.
    async fn send(&mut self, sink: &mut Sink, frame: &ClientFrame) -> bool {
        match sink.send(ws::encode(self.codec, frame)).await {
            Ok(()) => true,
            Err(error) => {
                self.lost(format!("send failed: {error}"), false);
                false
            }
        }
    }

    /// Says once that the connection is gone and what happens next.
    fn lost(&mut self, why: String, restarting: bool) -> Ended {
        self.say(format!(
            "! disconnected ({why}); reconnecting. Lines typed meanwhile are sent once reconnected"
        ));
        Ended::Lost { restarting }
    }

    /// Closes the connection normally, at the user's request.
    async fn close(&mut self, mut sink: Sink, mut stream: Stream) -> Ended {
        let _ = sink.send(ws::close_normal()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(ws::decode(&message), Incoming::Closed(..)) {
                    break;
                }
            }
        })
        .await;
        Ended::Quit
    }

    /// A new token after the old one expired (4001).
    async fn log_in_again(&mut self) {
        match self.api.login(&self.username, &self.password).await {
            Ok(auth) => {
                self.api = self.api.with_token(auth.token);
                self.names.set_api(self.api.clone());
                self.say("* token expired; logged in again");
            }
            Err(error) => self.say(format!(
                "! token expired, and logging in again failed: {error}"
            )),
        }
    }

    fn say(&mut self, text: impl AsRef<str>) {
        self.screen.line(text.as_ref());
    }

    async fn show_prompt(&mut self) {
        let label = self.names.room(self.room).await;
        self.screen.prompt(&label);
    }

    /// Queues a `send` to the current room; it goes out now if connected,
    /// else on reconnect, and stays queued until acked (its `client_id`
    /// makes a repeat harmless).
    fn queue_send(&mut self, content: String, attachment_ids: Vec<Id>) {
        self.next_client_id += 1;
        let client_id = format!("{}-{}", self.client_prefix, self.next_client_id);
        self.outbox.push(Pending {
            client_id: client_id.clone(),
            frame: ClientFrame {
                reference: None,
                action: ClientAction::Send(SendMessage {
                    room_id: self.room,
                    content,
                    client_id: Some(client_id),
                    reply_to: None,
                    attachment_ids,
                }),
            },
            typed_at: Instant::now(),
        });
    }

    /// Uploads the file at `path` (read whole: the server's own limit, 25 MiB
    /// by default, is far below what a terminal client needs to stream).
    async fn upload(&mut self, path: &str) -> anyhow::Result<File> {
        const MAX_READ: u64 = 256 * 1024 * 1024;
        let size = tokio::fs::metadata(path)
            .await
            .with_context(|| format!("cannot read {path}"))?
            .len();
        anyhow::ensure!(size <= MAX_READ, "{path} is larger than 256 MiB");
        let bytes = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read {path}"))?;
        let name = std::path::Path::new(path).file_name().map_or_else(
            || path.to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let file = self.api.upload_file(&name, bytes).await?;
        self.say(format!("* uploaded {name}"));
        Ok(file)
    }

    async fn command(&mut self, command: Command) -> Step {
        match command {
            Command::Nothing => {}
            Command::Say(text) => {
                self.queue_send(text, Vec::new());
                return Step::SendQueued;
            }
            Command::Upload(path) => match self.upload(&path).await {
                Ok(file) => {
                    self.queue_send(file.name, vec![file.id]);
                    return Step::SendQueued;
                }
                Err(error) => self.say(format!("! {error:#}")),
            },
            Command::Help => self.say(commands::HELP),
            Command::Quit => return Step::Quit,
            Command::Logout { all } => match self.api.logout(all).await {
                Ok(()) => {
                    self.say(if all {
                        "logged out everywhere"
                    } else {
                        "logged out"
                    });
                    return Step::Quit;
                }
                Err(error) => self.say(format!("! cannot log out: {error}")),
            },
            Command::Unknown(why) => self.say(format!("! {why}")),
            Command::Rooms => self.list_rooms().await,
            Command::PublicRooms(prefix) => self.list_public_rooms(&prefix).await,
            Command::Notifications => self.list_notifications().await,
            Command::Who => self.who().await,
            Command::History(n) => self.history(n).await,
            Command::Join(spec) => {
                match super::resolve_room(&self.api, &mut self.names, &spec, &mut self.screen).await
                {
                    Ok(room) => self.switch(room).await,
                    Err(error) => self.say(format!("! {error:#}")),
                }
            }
            Command::Dm(username) => match self.find_user(&username).await {
                Ok(user) => match self.api.open_dm(user.id).await {
                    Ok(room) => self.switch(room.id).await,
                    Err(error) => self.say(format!("! {error}")),
                },
                Err(error) => self.say(format!("! {error}")),
            },
            Command::Invite(username) => match self.find_user(&username).await {
                Ok(user) => match self.api.add_member(&self.room, user.id).await {
                    Ok(()) => {
                        let room = self.names.room(self.room).await;
                        self.say(format!("* added {} to {room}", user.username));
                    }
                    Err(error) => self.say(format!("! {error}")),
                },
                Err(error) => self.say(format!("! {error}")),
            },
        }
        Step::Continue
    }

    /// Makes `room` the one typed lines go to, and shows its latest lines.
    async fn switch(&mut self, room: RoomId) {
        self.room = room;
        // Its own `room_added`, if it is new, would say the same again.
        self.rooms.insert(room);
        let label = self.names.room(room).await;
        self.say(format!("* now talking in {label} ({room})"));
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
                        RoomKind::Group => {
                            names::counted(summary.room.member_count as usize, "member")
                        }
                        RoomKind::Dm => "direct".into(),
                    };
                    self.say(format!(
                        "{marker} {label:<24} {kind:<12} unread {:<5} @{:<4} id {}",
                        summary.unread_count, summary.mention_count, summary.room.id
                    ));
                }
            }
            Err(error) => self.say(format!("! {error}")),
        }
    }

    /// The first page of the room directory (`/join <id>` joins one).
    async fn list_public_rooms(&mut self, prefix: &str) {
        match self.api.public_rooms(prefix, 20).await {
            Ok(rooms) if rooms.is_empty() => self.say("* no public room matches"),
            Ok(rooms) => {
                for room in rooms {
                    self.names.learn_room(&room);
                    let members = names::counted(room.member_count as usize, "member");
                    self.say(format!("  {:<24} {members:<12} id {}", room.name, room.id));
                }
            }
            Err(error) => self.say(format!("! {error}")),
        }
    }

    /// The latest stored mentions, newest first; then marks them read.
    async fn list_notifications(&mut self) {
        let answer = match self.api.notifications(20).await {
            Ok(answer) => answer,
            Err(error) => return self.say(format!("! {error}")),
        };
        if answer.notifications.is_empty() {
            return self.say("* no notifications");
        }
        for notification in &answer.notifications {
            let room = self.names.room(notification.room_id).await;
            let sender = self.names.user(notification.sender_id).await;
            let new = if notification.read { " " } else { "•" };
            self.say(format!(
                "{new} {sender} mentioned you in {room} (message {})",
                notification.message_id
            ));
        }
        if let Some(newest) = answer.notifications.first()
            && let Err(error) = self.api.read_notifications(newest.id).await
        {
            self.say(format!("! {error}"));
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
                self.say(format!("* members: {}", list.join(", ")));
            }
            Err(error) => self.say(format!("! {error}")),
        }
    }

    /// Shows the last `n` messages of the current room (they count as seen).
    async fn history(&mut self, n: u32) {
        match self.api.history(&self.room, n).await {
            Ok(page) => {
                if page.messages.is_empty() {
                    self.say("* no messages yet");
                }
                for message in page.messages {
                    self.seen.show(&message);
                    let line = self.message_line(&message).await;
                    self.say(line);
                }
            }
            Err(error) => self.say(format!("! {error}")),
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

    /// The rooms of a `ready`: the first time, where to start; after a
    /// reconnect, the `resume` of every known room. Answers the frames to
    /// send: the resume, then every unacked typed line, in order.
    async fn ready(
        &mut self,
        username: &str,
        rooms: &[RoomSummary],
        heartbeat_ms: u64,
    ) -> Vec<ClientFrame> {
        let mut known = Vec::new();
        for summary in rooms {
            self.names.learn_room(&summary.room);
            let id = summary.room.id;
            if self.rooms.contains(&id) {
                known.push(id);
                continue;
            }
            if let Some(last) = &summary.last_message {
                self.seen.start_after(id, last.id);
            }
            if self.connected_before {
                let label = self.names.room(id).await;
                self.say(format!(
                    "* you are now in {label} ({} unread)",
                    summary.unread_count
                ));
            }
            self.rooms.insert(id);
        }
        let mut frames = Vec::new();
        let here = self.names.room(self.room).await;
        if self.connected_before {
            self.say(format!(
                "* reconnected; resuming {}, sending {} typed meanwhile",
                names::counted(known.len(), "room"),
                names::counted(self.outbox.len(), "line"),
            ));
            if !known.is_empty() {
                frames.push(ClientFrame {
                    reference: None,
                    action: ClientAction::Resume {
                        rooms: self.seen.resume_points(known),
                    },
                });
            }
        } else {
            self.say(format!(
                "* connected as {username} ({}, heartbeat {} s); talking in {here}. /help for commands",
                names::counted(rooms.len(), "room"),
                heartbeat_ms / 1000
            ));
            self.history(10).await;
            self.connected_before = true;
        }
        frames.extend(self.outbox.iter().map(|pending| pending.frame.clone()));
        frames
    }

    /// Shows one frame from the server; answers the frames it calls for.
    async fn show(&mut self, frame: ServerFrame) -> Vec<ClientFrame> {
        match frame {
            ServerFrame::Ready {
                user,
                rooms,
                heartbeat_interval_ms,
                ..
            } => {
                return self
                    .ready(&user.username, &rooms, heartbeat_interval_ms)
                    .await;
            }
            ServerFrame::Message { message } => {
                if self.seen.show(&message) {
                    let line = self.message_line(&message).await;
                    self.say(line);
                }
            }
            ServerFrame::Ack {
                client_id,
                message_id,
                ..
            } => {
                let took = client_id
                    .as_deref()
                    .and_then(|id| self.take_pending(id))
                    .map(|pending| {
                        let ms = pending.typed_at.elapsed().as_secs_f64() * 1000.0;
                        format!(" in {ms:.1} ms")
                    })
                    .unwrap_or_default();
                self.say(format!("  ✓ ack {message_id}{took}"));
            }
            ServerFrame::Mention {
                room_id,
                sender_id,
                content,
                ..
            } => {
                let room = self.names.room(room_id).await;
                let sender = self.names.user(sender_id).await;
                self.say(format!("! {sender} mentioned you in {room}: {content}"));
            }
            // The `mention` beside it already told the user; the stored
            // copy is for `/notifications`.
            ServerFrame::Notification { .. } => {}
            ServerFrame::MessageUpdated { message } => {
                let line = self.message_line(&message).await;
                self.say(line);
            }
            ServerFrame::MessageDeleted {
                room_id,
                message_id,
            } => {
                let room = self.names.room(room_id).await;
                self.say(format!("* message {message_id} deleted in {room}"));
            }
            ServerFrame::Typing {
                room_id,
                user_id,
                typing,
            } => {
                if typing {
                    let room = self.names.room(room_id).await;
                    let user = self.names.user(user_id).await;
                    self.say(format!("* {user} is typing in {room}"));
                }
            }
            ServerFrame::Presence {
                user_id, online, ..
            } => {
                let user = self.names.user(user_id).await;
                let state = if online { "online" } else { "offline" };
                self.say(format!("* {user} is {state}"));
            }
            ServerFrame::Read { .. } | ServerFrame::Pong { .. } | ServerFrame::History { .. } => {}
            ServerFrame::MemberJoined { room_id, user_id } => {
                let room = self.names.room(room_id).await;
                let user = self.names.user(user_id).await;
                self.say(format!("* {user} joined {room}"));
            }
            ServerFrame::MemberLeft { room_id, user_id } => {
                let room = self.names.room(room_id).await;
                let user = self.names.user(user_id).await;
                self.say(format!("* {user} left {room}"));
            }
            ServerFrame::RoomAdded { room } => {
                self.names.learn_room(&room.room);
                let id = room.room.id;
                if let Some(last) = &room.last_message {
                    self.seen.start_after(id, last.id);
                }
                if self.rooms.insert(id) {
                    let label = self.names.room(id).await;
                    self.say(format!("* you are now in {label} ({id})"));
                }
            }
            ServerFrame::RoomRemoved { room_id } => {
                self.rooms.remove(&room_id);
                let label = self.names.room(room_id).await;
                self.say(format!("* you are no longer in {label}"));
            }
            ServerFrame::Resumed { rooms, .. } => {
                for (room_id, resumed) in rooms {
                    if !resumed.complete {
                        let label = self.names.room(room_id).await;
                        self.say(format!(
                            "* more was missed in {label} than replayed: /join it and /history"
                        ));
                    }
                }
            }
            ServerFrame::Notice { content, .. } => self.say(format!("! notice: {content}")),
            ServerFrame::Error(error) => {
                if let Some(id) = &error.client_id {
                    self.take_pending(id);
                }
                let retry = error
                    .retry_after_ms
                    .map(|ms| format!(" (retry after {ms} ms)"))
                    .unwrap_or_default();
                self.say(format!(
                    "! error {}: {}{retry}",
                    error.code.as_str(),
                    error.message
                ));
            }
        }
        Vec::new()
    }

    /// Removes the outbox entry of `client_id`: answered.
    fn take_pending(&mut self, client_id: &str) -> Option<Pending> {
        let index = self
            .outbox
            .iter()
            .position(|pending| pending.client_id == client_id)?;
        Some(self.outbox.remove(index))
    }
}
