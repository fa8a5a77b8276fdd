//! How the WebSocket edge behaves when clients misbehave or the server goes
//! away: documented errors and close codes, and nothing lost that was acked.

use std::collections::HashSet;
use std::time::Duration;

use chat_protocol::Codec;
use serde_json::{Value, json};

use crate::harness::{JWT_SECRET, Server, UNTHROTTLED, signed_token};
use crate::ws::{TokenIn, Ws, upgrade_refusal};

#[tokio::test]
async fn handshakes_without_a_valid_token_get_401() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    assert_eq!(
        Ws::open(&server, None, Codec::Json, TokenIn::Header)
            .await
            .err(),
        Some(401)
    );
    let forged = signed_token(&alice_id, "not-the-server-secret-not-the-secret", 600);
    let expired = signed_token(&alice_id, JWT_SECRET, -600);
    for bad in [forged.as_str(), expired.as_str(), "junk"] {
        for place in [TokenIn::Header, TokenIn::Query] {
            assert_eq!(
                Ws::open(&server, Some(bad), Codec::Json, place).await.err(),
                Some(401)
            );
        }
    }
    let ws = Ws::open(&server, Some(alice.token()), Codec::Json, TokenIn::Query).await;
    assert!(ws.is_ok(), "access_token works for browsers");
}

#[tokio::test]
async fn foreign_origins_are_refused() {
    let server = Server::start_with(&[(
        "CHAT_REALTIME__ALLOWED_ORIGINS",
        "[\"https://app.example.com\"]",
    )]);
    let (alice, _) = server.user("alice").await;
    for (origin, expected) in [
        ("https://evil.example", Some(403)),
        ("https://app.example.com", None),
    ] {
        let status = upgrade_refusal(&server, alice.token(), origin).await;
        assert_eq!(status, expected, "{origin}");
    }
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_stays() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (_, stranger_id) = server.user("stranger").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let private = server
        .user("owner")
        .await
        .0
        .create_room("private", "private", &[&stranger_id])
        .await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    let cases = [
        r#"{"type":"send","room_id":"#.to_owned(),
        r#"{"type":"teleport","ref":"t1"}"#.to_owned(),
        r#"{"ref":"t2"}"#.to_owned(),
        format!(r#"{{"type":"typing","ref":"t3","room_id":"{room}","typing":"yes"}}"#),
        format!(r#"{{"type":"send","ref":"t4","client_id":"k4","room_id":"{room}","content":7}}"#),
        r#"{"type":"send","ref":"t5","room_id":"dm:9:1","content":"x"}"#.to_owned(),
        format!(r#"{{"type":"ping","ref":"{}"}}"#, "r".repeat(65)),
        "[1,2,3]".to_owned(),
    ];
    for raw in &cases {
        a.send_raw_text(raw).await;
        let error = a.next_of("error").await;
        assert_eq!(error["code"], "bad_request", "{raw} → {error}");
    }
    a.send_raw_binary(vec![0xc1, 0xff]).await;
    assert_eq!(a.next_of("error").await["code"], "bad_request");
    // refs and client_ids are echoed even on malformed frames when readable.
    a.send_raw_text(r#"{"type":"send","ref":"echo","client_id":"cid","room_id":5}"#)
        .await;
    let error = a.next_of("error").await;
    assert_eq!(
        (error["ref"].as_str(), error["client_id"].as_str()),
        (Some("echo"), Some("cid"))
    );
    // Valid frames about rooms one may not touch.
    a.send(json!({"type": "send", "ref": "p", "room_id": private, "content": "x"}))
        .await;
    assert_eq!(a.next_of("error").await["code"], "forbidden");
    a.send(json!({"type": "send", "ref": "n", "room_id": "123456", "content": "x"}))
        .await;
    assert_eq!(a.next_of("error").await["code"], "not_found");
    a.send(json!({"type": "send", "ref": "e", "room_id": room, "content": "   "}))
        .await;
    assert_eq!(a.next_of("error").await["code"], "bad_request");
    a.send(json!({"type": "send", "ref": "l", "room_id": room, "content": "x".repeat(4001)}))
        .await;
    assert_eq!(a.next_of("error").await["code"], "too_large");
    // Still open, and others were never disturbed.
    a.send(json!({"type": "ping", "ref": "alive"})).await;
    assert_eq!(a.next_of("pong").await["ref"], "alive");
    a.send(json!({"type": "send", "room_id": room, "content": "still here"}))
        .await;
    assert_eq!(
        b.next_of("message").await["message"]["content"],
        "still here"
    );
}

#[tokio::test]
async fn more_than_twenty_bad_frames_a_minute_close_with_1008() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    for _ in 0..20 {
        a.send_raw_text("nope").await;
        assert_eq!(a.next_of("error").await["code"], "bad_request");
    }
    a.send_raw_text("one too many").await;
    assert_eq!(a.closed().await, Some(1008));
    b.send(json!({"type": "ping", "ref": "ok"})).await;
    assert_eq!(b.next_of("pong").await["ref"], "ok");
}

#[tokio::test]
async fn frames_over_64_kib_close_with_1009() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let huge = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
    a.send_raw_text(&huge).await;
    assert_eq!(a.closed().await, Some(1009));
    let mut again = Ws::connect(&server, alice.token()).await;
    again.send(json!({"type": "ping", "ref": "ok"})).await;
    assert_eq!(
        again.next_of("pong").await["ref"],
        "ok",
        "the server keeps serving"
    );
}

#[tokio::test]
async fn an_expiring_token_closes_the_connection_with_4001() {
    let server = Server::start();
    let (_, alice_id) = server.user("alice").await;
    let short = signed_token(&alice_id, JWT_SECRET, 2);
    let mut a = Ws::open(&server, Some(&short), Codec::Json, TokenIn::Header)
        .await
        .unwrap();
    assert_eq!(a.closed().await, Some(4001));
}

#[tokio::test]
async fn the_server_pings_and_closes_silent_connections() {
    let server = Server::start_with(&[("CHAT_REALTIME__HEARTBEAT_INTERVAL_MS", "300")]);
    let (watcher, _) = server.user("watcher").await;
    let (sleeper, sleeper_id) = server.user("sleeper").await;
    watcher.create_room("lobby", "public", &[&sleeper_id]).await;
    let mut w = Ws::connect(&server, watcher.token()).await;
    assert_eq!(w.ready["heartbeat_interval_ms"], 300);
    // A client that reads answers pings (tungstenite does it for us) and stays.
    let mut s = Ws::connect(&server, sleeper.token()).await;
    assert_eq!(w.next_of("presence").await["online"], true);
    let (stay, _) = tokio::join!(
        w.frames_within(Duration::from_millis(1500), &[]),
        s.frames_within(Duration::from_millis(1500), &[]),
    );
    assert!(
        stay.iter().all(|f| f["type"] != "presence"),
        "answering pings keeps it alive: {stay:?}"
    );
    // Once it stops reading it stops answering pings, and is closed.
    let offline = w.next_of("presence").await;
    assert_eq!(
        offline["online"], false,
        "closed after two silent intervals"
    );
    drop(s);
}

#[tokio::test]
async fn a_slow_reader_is_cut_off_with_4003_and_the_room_keeps_flowing() {
    let server = Server::start_with(&[
        UNTHROTTLED[0],
        UNTHROTTLED[1],
        UNTHROTTLED[2],
        UNTHROTTLED[3],
        ("CHAT_REALTIME__OUTBOUND_QUEUE", "64"),
        ("CHAT_REALTIME__PERSIST_BATCH", "32"),
    ]);
    let (alice, _) = server.user("alice").await;
    let (fast, fast_id) = server.user("fast").await;
    let (slow, slow_id) = server.user("slow").await;
    let room = alice
        .create_room("firehose", "public", &[&fast_id, &slow_id])
        .await;
    let mut f = Ws::connect(&server, fast.token()).await;
    let mut s = Ws::connect(&server, slow.token()).await;
    let body = "y".repeat(3900);
    // Flood (over REST, in bursts no larger than a persistence batch, which
    // a healthy reader's queue always takes) until the slow reader is
    // reported offline, reading only the fast one.
    let mut sent = 0;
    let mut received: HashSet<String> = HashSet::new();
    let mut slow_gone = false;
    while !slow_gone && sent < 20_000 {
        let batch: Vec<_> = (sent..sent + 32)
            .map(|i| {
                let (alice, room, content) = (alice.clone(), room.clone(), format!("{i} {body}"));
                tokio::spawn(async move { alice.send(&room, &content).await })
            })
            .collect();
        for task in batch {
            task.await.unwrap();
        }
        sent += 32;
        for frame in f
            .frames_within(Duration::from_millis(20), &["typing"])
            .await
        {
            match frame["type"].as_str() {
                Some("message") => {
                    received.insert(frame["message"]["id"].as_str().unwrap().to_owned());
                }
                Some("presence")
                    if frame["user_id"] == slow_id.as_str() && frame["online"] == false =>
                {
                    slow_gone = true
                }
                _ => {}
            }
        }
    }
    assert!(
        slow_gone,
        "the slow reader was not cut off after {sent} messages:\n{}",
        server.log()
    );
    // The fast reader gets everything, the slow one's fate notwithstanding.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while received.len() < sent && tokio::time::Instant::now() < deadline {
        for frame in f.frames_within(Duration::from_millis(200), &[]).await {
            if frame["type"] == "message" {
                received.insert(frame["message"]["id"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(
        received.len(),
        sent,
        "every message reached the fast reader"
    );
    // The slow one, reading at last, finds what was buffered, then 4003.
    assert_eq!(s.closed().await, Some(4003));
}

#[tokio::test]
async fn acked_messages_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), UNTHROTTLED);
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    for i in 0..100 {
        a.send(json!({"type": "send", "room_id": room, "content": format!("m{i}"), "client_id": format!("c{i}")})).await;
    }
    let mut acked = HashSet::new();
    while acked.len() < 100 {
        let frame = a.next_frame().await;
        if frame["type"] == "ack" {
            acked.insert(frame["message_id"].as_str().unwrap().to_owned());
        }
    }
    server.kill();
    let server = Server::start_in(dir.path(), &[]);
    let alice = alice.at(&server);
    let (_, history) = alice
        .get(&format!("/api/v1/rooms/{room}/messages?limit=100"))
        .await;
    let stored: HashSet<String> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, acked);
}

#[tokio::test]
async fn sigterm_answers_the_requests_in_flight_and_closes_idle_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let address = server.base.trim_start_matches("http://").to_owned();

    // A kept-alive connection, idle after one request.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        crate::limits::read_response(&mut idle)
            .await
            .0
            .contains(" 200 ")
    );
    // An upload half sent.
    let body = crate::files::multipart("half.bin", &[b'x'; 64 * 1024]);
    let mut upload = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = crate::files::upload_head(&alice, body.len());
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(&body[..body.len() / 2]).await.unwrap();
    // In flight once it streams (a connection the server has not accepted
    // yet when it stops is refused, rightly).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.metric("chat_file_uploads_streaming").await != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never streamed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Stopping closes the idle connection at once (it does not wait out
    // the keep-alive deadline) and answers the upload once it is whole.
    let stopping = tokio::task::spawn_blocking(move || server.stop());
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
        .await
        .expect("the idle connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    upload.write_all(&body[body.len() / 2..]).await.unwrap();
    let (status, _) = crate::limits::read_response(&mut upload).await;
    assert!(status.contains(" 201 "), "{status}");
    assert!(stopping.await.unwrap().success());
}

#[tokio::test]
async fn sigterm_closes_connections_with_1012_and_flushes_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), UNTHROTTLED);
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut b = Ws::connect(&server, alice.token()).await;
    for i in 0..50 {
        a.send(json!({"type": "send", "room_id": room, "content": format!("m{i}")}))
            .await;
    }
    let mut acks: Vec<Value> = Vec::new();
    while acks.len() < 50 {
        let frame = a.next_frame().await;
        if frame["type"] == "ack" {
            acks.push(frame);
        }
    }
    let stopping = tokio::task::spawn_blocking(move || server.stop());
    assert_eq!(b.closed().await, Some(1012));
    assert_eq!(a.closed().await, Some(1012));
    assert!(stopping.await.unwrap().success());
    let server = Server::start_in(dir.path(), &[]);
    let (_, history) = alice
        .at(&server)
        .get(&format!("/api/v1/rooms/{room}/messages?limit=100"))
        .await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 50);
}
