//! Limits against hostile clients (PROTOCOL.md v1.1 Rules): the per-user
//! action budget, login limits, connection caps and the request-header,
//! body and keep-alive timeouts, each shown to stop the abuser while other
//! users go on.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Client, Server, assert_error};
use crate::ws::Ws;

/// A small budget, so that a test floods it quickly.
const SMALL_BUDGET: &[(&str, &str)] = &[
    ("CHAT_RATES__ACTIONS_PER_SECOND", "0.5"),
    ("CHAT_RATES__ACTION_BURST", "20"),
];

/// A REST GET with `token`; answers the status, `Retry-After` and body.
async fn get_with_headers(
    server: &Server,
    token: &str,
    path: &str,
) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_flooding_user_is_limited_while_another_user_chats() {
    let server = Server::start_with(SMALL_BUDGET);
    let (mallory, _) = server.user("mallory").await;
    let (bob, _) = server.user("bob").await;
    let (carol, carol_id) = server.user("carol").await;
    let noisy = mallory.create_room("noisy", "public", &[]).await;
    let quiet = bob.create_room("quiet", "public", &[&carol_id]).await;
    let mut m = Ws::connect(&server, mallory.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    let mut c = Ws::connect(&server, carol.token()).await;

    // Actions that had no limit of their own: history, read, join, ping.
    for i in 0..60 {
        let frame = match i % 4 {
            0 => json!({"type": "history", "ref": format!("f{i}"), "room_id": noisy}),
            1 => json!({"type": "join", "ref": format!("f{i}"), "room_id": noisy}),
            2 => json!({"type": "ping", "ref": format!("f{i}")}),
            _ => json!({"type": "leave", "ref": format!("f{i}"), "room_id": quiet}),
        };
        m.send(frame).await;
    }
    let limited = m.next_of("error").await;
    let limited = if limited["code"] == "rate_limited" {
        limited
    } else {
        // Leaving a room she is not in is refused on its own; look on.
        loop {
            let next = m.next_of("error").await;
            if next["code"] == "rate_limited" {
                break next;
            }
        }
    };
    assert!(limited["retry_after_ms"].as_u64().unwrap() > 0, "{limited}");
    assert!(limited["ref"].as_str().unwrap().starts_with('f'));

    // The budget is one for REST and WebSocket alike.
    let (status, retry_after, body) =
        get_with_headers(&server, mallory.token(), "/api/v1/rooms").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // However spent her budget, mallory can still end her session.
    let (status, body) = mallory.post_empty("/api/v1/auth/logout").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, _) = get_with_headers(&server, mallory.token(), "/api/v1/rooms").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Meanwhile bob's sends in another room are acked and delivered.
    for i in 0..3 {
        let content = format!("still here {i}");
        b.send(
            json!({"type": "send", "ref": format!("b{i}"), "room_id": quiet, "content": content}),
        )
        .await;
        assert_eq!(b.next_of("ack").await["ref"], format!("b{i}"));
        let delivered = c.next_of("message").await;
        assert_eq!(delivered["message"]["content"], content);
    }
    let (status, _) = bob.get("/api/v1/rooms").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn typing_over_budget_is_dropped_not_refused() {
    let server = Server::start_with(SMALL_BUDGET);
    let (mallory, _) = server.user("mallory").await;
    let room = mallory.create_room("noisy", "public", &[]).await;
    let mut m = Ws::connect(&server, mallory.token()).await;
    for i in 0..40 {
        m.send(json!({"type": "typing", "ref": format!("t{i}"), "room_id": room, "typing": true}))
            .await;
    }
    let frames = m
        .frames_within(Duration::from_millis(500), &["presence", "typing", "ack"])
        .await;
    assert!(
        frames.iter().all(|f| f["type"] != "error"),
        "typing is dropped silently: {frames:?}"
    );
}

/// Stopping typing and sending bad messages count against the budget like
/// every action: a flood of either is refused `rate_limited` past it, and
/// the stops stop reaching the room.
#[tokio::test]
async fn typing_stops_and_bad_sends_over_budget_are_refused() {
    let server = Server::start_with(SMALL_BUDGET);
    let (mallory, _) = server.user("mallory").await;
    let (trudy, trudy_id) = server.user("trudy").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = mallory
        .create_room("noisy", "public", &[&bob_id, &trudy_id])
        .await;
    let mut b = Ws::connect(&server, bob.token()).await;
    let mut m = Ws::connect(&server, mallory.token()).await;
    let mut t = Ws::connect(&server, trudy.token()).await;
    // 80 of each against a burst of 20 (a token back every 2 s).
    for i in 0..80 {
        m.send(json!({"type": "typing", "ref": format!("t{i}"), "room_id": room, "typing": false}))
            .await;
        t.send(json!({"type": "send", "ref": format!("s{i}"), "room_id": room, "content": ""}))
            .await;
    }
    let codes = |frames: Vec<Value>| -> Vec<String> {
        frames
            .iter()
            .filter(|f| f["type"] == "error")
            .map(|f| f["code"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let window = Duration::from_secs(2);
    let stops_refused = codes(m.frames_within(window, &["presence"]).await);
    assert!(
        stops_refused.len() >= 55 && stops_refused.iter().all(|c| c == "rate_limited"),
        "{stops_refused:?}"
    );
    let heard = b.frames_within(window, &["presence"]).await;
    let stops_heard = heard.iter().filter(|f| f["type"] == "typing").count();
    assert!(stops_heard <= 25, "bob heard {stops_heard} stops");
    let sends_refused = codes(t.frames_within(window, &["presence"]).await);
    assert_eq!(
        sends_refused.len(),
        80,
        "every send answered: {sends_refused:?}"
    );
    let over_budget = sends_refused
        .iter()
        .filter(|c| *c == "rate_limited")
        .count();
    assert!(over_budget >= 55, "{sends_refused:?}");
    assert!(
        sends_refused
            .iter()
            .all(|c| c == "rate_limited" || c == "bad_request"),
        "{sends_refused:?}"
    );
}

/// Logs `username` in from `address` (through a trusted proxy).
async fn login_from(server: &Server, address: &str, username: &str, password: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.base))
        .header("x-forwarded-for", address)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("request")
        .status()
}

#[tokio::test]
async fn login_guessing_is_cut_off_per_address_and_per_username() {
    let server = Server::start_with(&[
        ("CHAT_TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
        // One attempt back per 12 s for either: far more than the test
        // takes between running out and trying again, however loaded the
        // machine (at 20 per minute, a token came back within 3 s).
        ("CHAT_RATES__LOGIN_PER_ADDRESS_PER_MINUTE", "5"),
        ("CHAT_RATES__LOGIN_PER_USERNAME_PER_MINUTE", "5"),
    ]);
    server.user("alice").await;
    server.user("bob").await;
    server.user("carol").await;

    // Guessing alice's password: cut off after the username's budget (5,
    // one of which her registration took).
    let mut statuses = Vec::new();
    for i in 0..8 {
        let address = format!("198.51.100.{i}");
        statuses.push(login_from(&server, &address, "alice", "wrong-guess").await);
    }
    assert!(
        statuses[..4].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[4..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Even the right password waits now: the guesser cannot tell.
    assert_eq!(
        login_from(&server, "198.51.100.99", "alice", "password123").await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // One address guessing many usernames: cut off after its budget.
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(login_from(&server, "203.0.113.66", &format!("guess{i}"), "x").await);
    }
    assert_eq!(
        statuses,
        [
            [StatusCode::UNAUTHORIZED; 5].as_slice(),
            &[StatusCode::TOO_MANY_REQUESTS]
        ]
        .concat()
    );
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/register", server.base))
        .header("x-forwarded-for", "203.0.113.66")
        .json(&json!({"username": "newcomer", "password": "password123"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_error(&(StatusCode::TOO_MANY_REQUESTS, body), 429, "rate_limited");

    // Another user from another address still logs in.
    assert_eq!(
        login_from(&server, "192.0.2.10", "bob", "password123").await,
        StatusCode::OK
    );
    assert_eq!(
        login_from(&server, "192.0.2.11", "carol", "password123").await,
        StatusCode::OK
    );
}

/// A stolen token guessing its user's password through a password change
/// is cut off by the username's login budget, which a login then finds
/// spent as well.
#[tokio::test]
async fn password_guessing_through_a_password_change_is_cut_off_like_a_login() {
    let server = Server::start_with(&[
        ("CHAT_RATES__LOGIN_PER_ADDRESS_PER_MINUTE", "1000"),
        // One attempt back per 12 s, as above.
        ("CHAT_RATES__LOGIN_PER_USERNAME_PER_MINUTE", "5"),
    ]);
    let (stolen, _) = server.user("dave").await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let guess =
            json!({"current_password": format!("guess-{i}"), "new_password": "mine-now-123"});
        let (status, _) = stolen.post("/api/v1/users/me/password", guess).await;
        statuses.push(status);
    }
    // Registration took one of the five.
    assert_eq!(
        statuses,
        [
            [StatusCode::UNAUTHORIZED; 4].as_slice(),
            &[StatusCode::TOO_MANY_REQUESTS; 2]
        ]
        .concat()
    );
    assert_eq!(
        login_from(&server, "192.0.2.20", "dave", "password123").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Connecting counts against the action budget: reconnecting in a loop is
/// refused 429 with `Retry-After` once it is spent.
#[tokio::test]
async fn reconnecting_in_a_loop_is_cut_off_by_the_budget() {
    let server = Server::start_with(SMALL_BUDGET);
    let (mallory, _) = server.user("mallory").await;
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let opened = Ws::open(
            &server,
            Some(mallory.token()),
            chat_protocol::Codec::Json,
            crate::ws::TokenIn::Header,
        )
        .await;
        match opened {
            Ok(ws) => {
                ws.close().await;
                statuses.push(101);
            }
            Err(status) => statuses.push(status),
        }
    }
    // A burst of 20, a token back every 2 s.
    let opened = statuses.iter().filter(|s| **s == 101).count();
    assert!((20..=21).contains(&opened), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 101 || *s == 429),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_eleventh_connection_of_a_user_is_refused() {
    let server = Server::start();
    let (mallory, _) = server.user("mallory").await;
    let (bob, _) = server.user("bob").await;
    let mut open = Vec::new();
    for _ in 0..10 {
        open.push(Ws::connect(&server, mallory.token()).await);
    }
    let refused = Ws::open(
        &server,
        Some(mallory.token()),
        chat_protocol::Codec::Json,
        crate::ws::TokenIn::Header,
    )
    .await;
    assert_eq!(refused.err(), Some(429));
    // Another user is not affected.
    let _bob = Ws::connect(&server, bob.token()).await;
    // A closed connection gives its place back.
    open.pop().expect("ten connections").close().await;
    let mut again = None;
    for _ in 0..50 {
        match Ws::open(
            &server,
            Some(mallory.token()),
            chat_protocol::Codec::Json,
            crate::ws::TokenIn::Header,
        )
        .await
        {
            Ok(ws) => {
                again = Some(ws);
                break;
            }
            Err(status) => {
                assert_eq!(status, 429);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(again.is_some(), "the place was never given back");
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_timeout_while_others_chat() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::start_with(&[("CHAT_LIMITS__HEADER_TIMEOUT_MS", "1000")]);
    let (bob, _) = server.user("bob").await;
    let (carol, carol_id) = server.user("carol").await;
    let room = bob.create_room("quiet", "public", &[&carol_id]).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stalled.push(tcp);
    }
    // Others connect and chat while those connections hang.
    let mut b = Ws::connect(&server, bob.token()).await;
    let mut c = Ws::connect(&server, carol.token()).await;
    b.send(json!({"type": "send", "ref": "b1", "room_id": room, "content": "hello"}))
        .await;
    assert_eq!(b.next_of("ack").await["ref"], "b1");
    assert_eq!(c.next_of("message").await["message"]["content"], "hello");

    // Every half-sent request is closed by the server (end of stream or a
    // reset), none answered.
    for mut tcp in stalled {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("the server closed the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    b.send(json!({"type": "send", "ref": "b2", "room_id": room, "content": "still here"}))
        .await;
    assert_eq!(b.next_of("ack").await["ref"], "b2");
    assert_eq!(
        c.next_of("message").await["message"]["content"],
        "still here"
    );
}

#[tokio::test]
async fn a_stalled_or_trickled_body_fails_its_request_and_a_slow_one_does_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::start_with(&[
        ("CHAT_LIMITS__BODY_IDLE_TIMEOUT_MS", "500"),
        ("CHAT_LIMITS__BODY_TIMEOUT_MS", "2000"),
    ]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let head = |length: usize| {
        format!(
            "POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    // Half a body, then silence: refused once the body has been idle for
    // the timeout, and the connection is closed.
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(format!("{}{{\"username\"", head(100)).as_bytes())
        .await
        .unwrap();
    let refused = answered_and_closed(&mut stalled).await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(refused.contains("\"bad_request\""), "{refused}");

    // A body trickled a byte every 100 ms, never idle for long but due to
    // take 100 s in all: refused once the whole-body deadline has passed,
    // and the connection is closed.
    let mut trickled = tokio::net::TcpStream::connect(&address).await.unwrap();
    trickled.write_all(head(1000).as_bytes()).await.unwrap();
    let (mut from_server, mut to_server) = trickled.into_split();
    let trickle = tokio::spawn(async move {
        while to_server.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = std::time::Instant::now();
    let refused = answered_and_closed(&mut from_server).await;
    trickle.abort();
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(refused.contains("did not arrive in time"), "{refused}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1500), "after {waited:?}");

    // A body that takes longer than the idle timeout in all, but never
    // goes quiet for that long and is whole within the deadline, is read.
    let body = json!({"username": "slowpoke", "password": "password123"}).to_string();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(head(body.len()).as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(body.len() / 4 + 1) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        slow.write_all(chunk).await.unwrap();
    }
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let created = String::from_utf8_lossy(&buf[..n]);
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
}

/// Everything the server says on `tcp` until it closes the connection.
pub(crate) async fn answered_and_closed(tcp: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    use tokio::io::AsyncReadExt;

    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("the server answers and closes the connection");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads one HTTP/1.1 response with a `Content-Length` from `tcp`: its
/// status line and body length.
pub(crate) async fn read_response(tcp: &mut tokio::net::TcpStream) -> (String, usize) {
    use tokio::io::AsyncReadExt;

    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if received.len() >= end + 4 + length {
                let status = head.lines().next().unwrap_or_default().to_owned();
                return (status, length);
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("the response arrives")
            .expect("the connection stays open until it is answered");
        assert_ne!(read, 0, "closed before the response was complete");
        received.extend_from_slice(&buf[..read]);
    }
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed_and_busy_ones_are_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::start_with(&[("CHAT_LIMITS__KEEP_ALIVE_TIMEOUT_MS", "1000")]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    // One request, then silence: closed unanswered about a second after
    // the response, not at once (the margin is for a loaded machine, where
    // this task may read the response late).
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(healthz).await.unwrap();
    assert!(read_response(&mut idle).await.0.contains(" 200 "));
    let answered = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
        .await
        .expect("the server closes the idle connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let idled = answered.elapsed();
    assert!(
        idled >= Duration::from_millis(500),
        "closed after {idled:?}"
    );
    let idle_closed = server
        .metric(r#"chat_handshakes_closed_total{reason="idle"}"#)
        .await;
    assert!(idle_closed >= 1.0, "{idle_closed} idle connections counted");

    // Requests closer together than the timeout keep a connection open for
    // longer than it: the deadline counts from each response.
    let mut busy = tokio::net::TcpStream::connect(&address).await.unwrap();
    for _ in 0..12 {
        busy.write_all(healthz).await.unwrap();
        assert!(read_response(&mut busy).await.0.contains(" 200 "));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A download to a client that stops reading for longer than the
    // timeout is not cut: the deadline does not run while a response is
    // being sent. (A small receive buffer keeps most of the file waiting
    // on the server side.)
    let (alice, _) = server.user("alice").await;
    const SIZE: usize = 16 * 1024 * 1024;
    let file = crate::files::uploaded(&alice, "big.bin", &crate::files::noise(SIZE)).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(address.parse().unwrap()).await.unwrap();
    slow.write_all(
        format!(
            "GET /api/v1/files/{} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            file["id"].as_str().unwrap(),
            alice.token()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut first = [0u8; 1024];
    let read = slow.read(&mut first).await.unwrap();
    assert_ne!(read, 0);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut received = first[..read].to_vec();
    let mut buf = vec![0u8; 1 << 16];
    let mut body_start = None;
    loop {
        if body_start.is_none() {
            body_start = received
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|end| end + 4);
        }
        if body_start.is_some_and(|start| received.len() - start >= SIZE) {
            break;
        }
        let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
            .await
            .expect("the download goes on")
            .expect("the download is not cut");
        assert_ne!(
            read,
            0,
            "the download was cut after {} bytes",
            received.len()
        );
        received.extend_from_slice(&buf[..read]);
    }

    // A WebSocket quiet for longer than the timeout is not an idle HTTP
    // connection: it is upgraded, out of the deadline's reach.
    let (bob, _) = server.user("bob").await;
    let room = bob.create_room("quiet", "public", &[]).await;
    let mut ws = Ws::connect(&server, bob.token()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.send(json!({"type": "send", "ref": "late", "room_id": room, "content": "still here"}))
        .await;
    assert_eq!(ws.next_of("ack").await["ref"], "late");
}

#[tokio::test]
async fn connections_beyond_what_the_open_file_limit_leaves_are_closed_and_the_server_keeps_working()
 {
    // 200 descriptors: 64 are kept back for the process's own (its store,
    // its listeners, files being uploaded), so the listener takes 136
    // connections at most.
    let server = Server::start_with_open_file_limit(
        200,
        // Idle new connections stay for the test's length.
        &[("CHAT_LIMITS__HEADER_TIMEOUT_MS", "60000")],
    );
    assert!(
        server.log().contains("max_open_connections=136"),
        "{}",
        server.log()
    );
    let (alice, _) = server.user("alice").await;
    // Alice's connection is open (and pooled) before the flood; the one
    // that registered her is closed.
    assert_eq!(alice.get("/api/v1/users/me").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let address = server.base.trim_start_matches("http://").to_owned();
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let closed = futures_util::future::join_all(flood.iter_mut().map(closed_by_server))
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count();
    // 135 taken beside Alice's; the rest closed at once, not left waiting
    // in the backlog for descriptors that are gone. (One more is taken if
    // the server has not yet seen the registering connection close.)
    assert!((64..=65).contains(&closed), "{closed} of 200 closed");

    // The descriptors kept back are there: Alice's upload is written to
    // disk.
    let file = crate::files::uploaded(&alice, "kept.txt", b"kept back").await;

    // Once the flood is gone, new connections are taken again.
    drop(flood);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let full = server
        .metric(r#"chat_handshakes_closed_total{reason="full"}"#)
        .await;
    assert_eq!(full, closed as f64);
    let id = file["id"].as_str().unwrap();
    let (status, _, body) = crate::files::download(&server, &alice, id, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"kept back");
}

#[tokio::test]
async fn downloads_waiting_on_slow_clients_leave_the_descriptors_kept_back() {
    // 136 connections at most, 64 descriptors kept back (see above). 120
    // downloads whose clients stop reading: a download that kept its file
    // open would take a descriptor beside its connection, 240 in all.
    const DOWNLOADS: usize = 120;
    let server =
        Server::start_with_open_file_limit(200, &[("CHAT_LIMITS__HEADER_TIMEOUT_MS", "60000")]);
    let (alice, _) = server.user("alice").await;
    let bytes = crate::files::noise(4 * 1024 * 1024);
    let file = crate::files::uploaded(&alice, "big.bin", &bytes).await;
    let mut stopped = Vec::new();
    for _ in 0..DOWNLOADS {
        stopped.push(download_to_a_small_buffer(&server, &alice, &file).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // While they wait, Alice uploads (a file on disk) and downloads on
    // new connections.
    let kept = crate::files::uploaded(&alice, "kept.txt", b"kept back").await;
    let (status, _, body) =
        crate::files::download(&server, &alice, kept["id"].as_str().unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"kept back");

    // And every waiting download, read at last, is whole.
    for (n, tcp) in stopped.iter_mut().enumerate() {
        let body = read_pausing(tcp, bytes.len(), usize::MAX, Duration::ZERO).await;
        assert!(
            body == bytes,
            "download {n}: {} of {} bytes",
            body.len(),
            bytes.len()
        );
    }
}

/// A download of `file` by `client` on a new connection with a small
/// receive buffer (4 KiB), so that the server's writes wait on it as soon
/// as it stops reading; returned once the answer's head (200) is in.
pub(crate) async fn download_to_a_small_buffer(
    server: &Server,
    client: &Client,
    file: &Value,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let request = format!(
        "GET /api/v1/files/{} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        file["id"].as_str().unwrap(),
        client.token()
    );
    let address: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(address).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
    })
    .await
    .expect("the download was never answered");
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tcp
}

/// Reads a body from `tcp`, pausing `pause` after every `every` bytes,
/// until the server closes it or `whole` bytes are in.
async fn read_pausing(
    tcp: &mut tokio::net::TcpStream,
    whole: usize,
    every: usize,
    pause: Duration,
) -> Vec<u8> {
    use tokio::io::AsyncReadExt;

    let mut body = Vec::with_capacity(whole);
    let mut buf = vec![0u8; 64 * 1024];
    let mut since_pause = 0;
    while body.len() < whole {
        match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => {
                body.extend_from_slice(&buf[..n]);
                since_pause += n;
            }
            Err(_) => panic!("the download neither went on nor ended"),
        }
        if since_pause >= every {
            since_pause = 0;
            tokio::time::sleep(pause).await;
        }
    }
    body
}

/// Whether the server closes `tcp` (rather than leave it open or waiting in
/// the backlog) within two seconds.
async fn closed_by_server(tcp: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;

    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_one_that_pauses_is_not() {
    let server = Server::start_with(&[("CHAT_LIMITS__SEND_TIMEOUT_MS", "1000")]);
    let (alice, _) = server.user("alice").await;
    // More than the socket buffers on both sides hold (the server's grows
    // to 4 MiB at most; the client's is small).
    let bytes = crate::files::noise(16 * 1024 * 1024);
    let file = crate::files::uploaded(&alice, "big.bin", &bytes).await;
    let stalls = || server.metric("chat_send_stalls_total");

    // A client that pauses for less than the send timeout, again and
    // again (longer than the timeout in all), gets the whole file.
    let mut pausing = download_to_a_small_buffer(&server, &alice, &file).await;
    let body = read_pausing(
        &mut pausing,
        bytes.len(),
        2 * 1024 * 1024,
        Duration::from_millis(600),
    )
    .await;
    assert_eq!(body.len(), bytes.len());
    assert_eq!(stalls().await, 0.0);

    // One that stops reading for longer is cut off: what the buffers held
    // arrives, then the end, short of the file.
    let mut stopped = download_to_a_small_buffer(&server, &alice, &file).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let body = read_pausing(&mut stopped, bytes.len(), usize::MAX, Duration::ZERO).await;
    assert!(
        body.len() < bytes.len() / 2,
        "read {} of {}",
        body.len(),
        bytes.len()
    );
    assert_eq!(stalls().await, 1.0);
}
