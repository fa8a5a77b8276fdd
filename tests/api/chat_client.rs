//! `chat-client`'s session loop, driven in-process (typed lines in through
//! a channel, shown lines out through another) against the real server,
//! which is killed and restarted mid-conversation.

use std::time::Duration;

use chat_loadtest::api::parse_server;
use chat_loadtest::client::{self, Options, Screen};
use chat_protocol::Codec;
use tokio::sync::mpsc;

use crate::harness::{Server, UNTHROTTLED};

/// A screen whose lines the test reads.
struct Captured(mpsc::UnboundedSender<String>);

impl Screen for Captured {
    fn line(&mut self, text: &str) {
        let _ = self.0.send(text.to_owned());
    }

    fn prompt(&mut self, _label: &str) {}
}

/// Everything the session has shown so far.
struct Transcript {
    incoming: mpsc::UnboundedReceiver<String>,
    lines: Vec<String>,
}

impl Transcript {
    /// Waits (up to a minute) until a line that `matches` has been shown,
    /// earlier or now.
    async fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) {
        if self.lines.iter().any(|line| matches(line)) {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(line)) => {
                    let found = matches(&line);
                    self.lines.push(line);
                    if found {
                        return;
                    }
                }
                Ok(None) => panic!("the session ended before {what}:\n{}", self.text()),
                Err(_) => panic!("no {what} within a minute:\n{}", self.text()),
            }
        }
    }

    /// How many shown lines end with `<sender> content`.
    fn messages(&self, sender: &str, content: &str) -> usize {
        let shown = format!("<{sender}> {content}");
        self.lines
            .iter()
            .filter(|line| line.ends_with(&shown))
            .count()
    }

    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// `chat-client` for `user` (password "password123") in the room
/// "general", running in-process once it shows it is connected: what it
/// shows, where to type, and its task.
async fn start_client(
    server: &Server,
    user: &str,
) -> (
    Transcript,
    mpsc::Sender<String>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (shown, incoming) = mpsc::unbounded_channel();
    let mut transcript = Transcript {
        incoming,
        lines: Vec::new(),
    };
    let options = Options {
        server: parse_server(&server.base).unwrap(),
        user: user.into(),
        password: "password123".into(),
        register: false,
        room: "general".into(),
        codec: Codec::Json,
    };
    let session = client::open(options, Captured(shown)).await.unwrap();
    let (typed, lines) = mpsc::channel(16);
    let running = tokio::spawn(session.run(lines));
    let connected = format!("* connected as {user}");
    transcript
        .wait_for("the connected line", |line| line.starts_with(&connected))
        .await;
    (transcript, typed, running)
}

fn is_message(sender: &str, content: &str) -> impl Fn(&str) -> bool {
    let shown = format!("<{sender}> {content}");
    move |line: &str| line.ends_with(&shown)
}

#[tokio::test]
async fn the_client_reconnects_resumes_and_sends_what_was_typed_offline_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), UNTHROTTLED);
    let address = server.base.trim_start_matches("http://").to_owned();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;

    let (mut transcript, typed, running) = start_client(&server, "alice").await;
    typed.send("hello before the restart".into()).await.unwrap();
    transcript
        .wait_for(
            "alice's first message",
            is_message("alice", "hello before the restart"),
        )
        .await;
    bob.send(&room, "bob before the restart").await;
    transcript
        .wait_for(
            "bob's first message",
            is_message("bob", "bob before the restart"),
        )
        .await;

    server.kill();
    transcript
        .wait_for("the disconnection", |line| {
            line.starts_with("! disconnected")
        })
        .await;
    typed.send("typed while offline".into()).await.unwrap();
    transcript
        .wait_for("the line queued", |line| line.contains("offline: the line"))
        .await;
    let env = [
        ("CHAT_LISTEN", address.as_str()),
        UNTHROTTLED[0],
        UNTHROTTLED[1],
    ];
    let server = Server::start_in(dir.path(), &env);
    let bob = bob.at(&server);
    bob.send(&room, "bob while alice was away").await;

    transcript
        .wait_for(
            "the line typed offline",
            is_message("alice", "typed while offline"),
        )
        .await;
    transcript
        .wait_for(
            "bob's message sent meanwhile",
            is_message("bob", "bob while alice was away"),
        )
        .await;
    typed.send("after the restart".into()).await.unwrap();
    transcript
        .wait_for(
            "alice's last message",
            is_message("alice", "after the restart"),
        )
        .await;

    assert!(
        transcript
            .lines
            .iter()
            .any(|line| line.starts_with("* reconnected")),
        "{}",
        transcript.text()
    );
    for (sender, content) in [
        ("alice", "hello before the restart"),
        ("bob", "bob before the restart"),
        ("alice", "typed while offline"),
        ("bob", "bob while alice was away"),
        ("alice", "after the restart"),
    ] {
        assert_eq!(
            transcript.messages(sender, content),
            1,
            "{sender}: {content} is shown once:\n{}",
            transcript.text()
        );
    }
    let (_, history) = alice
        .at(&server)
        .get(&format!("/api/v1/rooms/{room}/messages?limit=100"))
        .await;
    let stored = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["content"] == "typed while offline")
        .count();
    assert_eq!(
        stored, 1,
        "the line typed offline is stored once: {history}"
    );

    // What was shown is reported read, so nothing is left unread.
    let alice = alice.at(&server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, rooms) = alice.get("/api/v1/rooms").await;
        let unread = rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|summary| summary["id"] == room.as_str())
            .map(|summary| summary["unread_count"].clone());
        if unread == Some(serde_json::json!(0)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still unread: {rooms}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    drop(typed);
    running.await.unwrap().unwrap();
    transcript.wait_for("bye", |line| line == "bye").await;
}

#[tokio::test]
async fn logout_ends_the_clients_session_on_the_server_and_exits() {
    let server = Server::start_with(&[("CHAT_ADMINS", "[\"root\"]")]);
    let (root, _) = server.user("root").await;
    let (alice, alice_id) = server.user("alice").await;
    alice.create_room("general", "public", &[]).await;
    let (mut transcript, typed, running) = start_client(&server, "alice").await;
    typed.send("/logout".into()).await.unwrap();
    transcript
        .wait_for("the logout", |line| line == "logged out")
        .await;
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the client exits after /logout")
        .unwrap()
        .unwrap();
    // The server ended the client's session (audited), not the others.
    let (status, _) = alice.get("/api/v1/users/me").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, audit) = root
            .get(&format!(
                "/api/v1/admin/audit?kind=logout&user_id={alice_id}"
            ))
            .await;
        if audit["events"].as_array().is_some_and(|e| e.len() == 1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no logout: {audit}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_client_lists_notifications_and_the_room_directory() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (_, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    alice.create_room("Rustaceans", "public", &[]).await;
    alice.create_room("rust secrets", "private", &[]).await;
    // Bob is offline when alice mentions him.
    alice.send(&room, "@bob are you there?").await;

    let (mut transcript, typed, running) = start_client(&server, "bob").await;
    typed.send("/notifications".into()).await.unwrap();
    transcript
        .wait_for("the stored mention", |line| {
            line.starts_with("• alice mentioned you in")
        })
        .await;
    typed.send("/rooms public RUST".into()).await.unwrap();
    transcript
        .wait_for("the public room", |line| line.contains("Rustaceans"))
        .await;
    // Listed read the second time.
    typed.send("/notifications".into()).await.unwrap();
    transcript
        .wait_for("the mention, now read", |line| {
            line.starts_with("  alice mentioned you in")
        })
        .await;
    assert!(
        !transcript.text().contains("rust secrets"),
        "private rooms are not listed:\n{}",
        transcript.text()
    );
    drop(typed);
    running.await.unwrap().unwrap();
}
