//! Outages answered as outages, unknown users as unauthorized: a store or
//! bus that cannot answer closes connections with 1013 and answers REST
//! with 503 `unavailable` and `Retry-After`, never as if the user were
//! unknown; a valid token whose user the store does not know gets 401 on
//! every route (and 4001 on a connection), never 500.

use std::time::Duration;

use chat_bus::testing::{RedisServer, ServerOptions};
use reqwest::StatusCode;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{JWT_SECRET, Server, assert_error, signed_token};
use crate::ws::Ws;

#[tokio::test]
async fn redis_stopped_while_clients_connect_is_1013_and_503() {
    let mut redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let _router = cluster.start("router");
    let _persist = cluster.start("persist");
    let gw = cluster.start("gateway");
    let (alice, _) = gw.user("alice").await;
    let room = alice.create_room("lobby", "public", &[]).await;
    // Connecting works while Redis is up.
    Ws::connect(&gw, alice.token()).await.close().await;

    redis.kill();
    let code = Ws::closed_before_ready(&gw, alice.token()).await;
    assert_eq!(code, Some(1013), "an outage is 1013, not 1008 unknown user");

    let http = reqwest::Client::new();
    for (path, body) in [
        (
            "/api/v1/rooms".to_owned(),
            json!({"name": "new", "visibility": "public"}),
        ),
        (
            format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "hi"}),
        ),
    ] {
        let response = http
            .post(format!("{}{path}", gw.base))
            .bearer_auth(alice.token())
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{path}: {body}");
    }
}

#[tokio::test]
async fn a_token_for_a_user_the_store_does_not_know_is_401_everywhere() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let room = alice.create_room("lobby", "public", &[]).await;
    // Signed with the server's secret, for a user id nobody has.
    let stranger = signed_token("123456789012345", JWT_SECRET, 3600);
    let client = server.client().with_token(&stranger);
    let calls = [
        (
            "/api/v1/rooms".to_owned(),
            json!({"name": "mine", "visibility": "public"}),
        ),
        ("/api/v1/dms".to_owned(), json!({"user_id": alice_id})),
        (format!("/api/v1/rooms/{room}/join"), json!({})),
        (
            format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "hi"}),
        ),
    ];
    for (path, body) in calls {
        let answer = client.post(&path, body).await;
        assert_error(&answer, 401, "unauthorized");
        assert_eq!(answer.1["error"]["message"], "unknown user", "{path}");
    }
    let answer = client.get("/api/v1/rooms").await;
    assert_error(&answer, 401, "unauthorized");
    assert_eq!(
        Ws::closed_before_ready(&server, &stranger).await,
        Some(4001),
        "a connection is closed as with an invalid token"
    );
    // Nothing reached the room.
    let (_, history) = alice.get(&format!("/api/v1/rooms/{room}/messages")).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 0);
}

/// Runs `sql` on the server's SQLite file beside it (triggers persist, so
/// the server's own connections obey them).
fn on_database(dir: &std::path::Path, sql: &str) {
    let db = rusqlite::Connection::open(dir.join("chat.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(sql).unwrap();
}

async fn ready(server: &Server) -> u16 {
    server.client().get("/readyz").await.0.as_u16()
}

#[tokio::test]
async fn a_message_the_store_refuses_is_refused_alone_and_readiness_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[]);
    let (alice, _) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let room = alice.create_room("lobby", "public", &[]).await;
    let other = bob.create_room("elsewhere", "public", &[]).await;
    let posting = |client: &crate::harness::Client, room: &str, content: &str| {
        let (client, path, body) = (
            client.clone(),
            format!("/api/v1/rooms/{room}/messages"),
            json!({ "content": content }),
        );
        async move { client.post(&path, body).await }
    };
    // A constraint the store will never accept for one message.
    on_database(
        dir.path(),
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages \
         WHEN NEW.content LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poison'); END;",
    );
    let (first, poison, last, elsewhere) = tokio::join!(
        posting(&alice, &room, "fine 1"),
        posting(&alice, &room, "poison"),
        posting(&alice, &room, "fine 2"),
        posting(&bob, &other, "fine elsewhere"),
    );
    assert_error(&poison, 500, "internal");
    for answer in [&first, &last, &elsewhere] {
        assert_eq!(answer.0, StatusCode::CREATED, "{answer:?}");
    }
    let (_, history) = alice.get(&format!("/api/v1/rooms/{room}/messages")).await;
    let contents: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents.len(), 2, "{contents:?}");
    assert!(!contents.contains(&"poison"));
    assert!(contents.contains(&"fine 1") && contents.contains(&"fine 2"));
    // A message written after the refusal shows the writer writing.
    assert_eq!(
        posting(&alice, &room, "fine 3").await.0,
        StatusCode::CREATED
    );
    assert_eq!(ready(&server).await, 200, "the writer still writes");

    // A store that refuses every message: senders are told, and the
    // writer reports that it cannot write until it can again.
    on_database(
        dir.path(),
        "CREATE TRIGGER refuse_all BEFORE INSERT ON messages \
         BEGIN SELECT RAISE(ABORT, 'full'); END;",
    );
    assert_error(&posting(&bob, &other, "lost").await, 500, "internal");
    assert_eq!(ready(&server).await, 503, "a writer that cannot write");
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("chat_persist_writer_blocked 1"), "{text}");
    on_database(dir.path(), "DROP TRIGGER refuse_all;");
    assert_eq!(posting(&bob, &other, "back").await.0, StatusCode::CREATED);
    assert_eq!(ready(&server).await, 200, "ready again once it writes");
}

#[tokio::test]
async fn invisible_characters_in_names_and_controls_in_content_are_refused() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let answer = alice
        .post(
            "/api/v1/rooms",
            json!({"name": "\u{202E}moor", "visibility": "public"}),
        )
        .await;
    assert_error(&answer, 400, "bad_request");
    let answer = alice
        .request(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(json!({"display_name": "ad\u{200B}min"})),
        )
        .await;
    assert_error(&answer, 400, "bad_request");
    let room = alice.create_room("lobby", "public", &[]).await;
    let path = format!("/api/v1/rooms/{room}/messages");
    let answer = alice.post(&path, json!({"content": "a\u{1B}[2Jb"})).await;
    assert_error(&answer, 400, "bad_request");
    let fine = alice
        .post(&path, json!({"content": "two\nlines\tand a tab"}))
        .await;
    assert_eq!(fine.0, StatusCode::CREATED);
    // Lines ended the Windows way are kept as sent, in the answer and in
    // history.
    let crlf = alice
        .post(&path, json!({"content": "first line\r\nsecond line"}))
        .await;
    assert_eq!(crlf.0, StatusCode::CREATED, "{:?}", crlf.1);
    assert_eq!(crlf.1["content"], "first line\r\nsecond line");
    let history = alice.get(&path).await;
    assert_eq!(history.0, StatusCode::OK);
    let contents: Vec<&str> = history.1["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|message| message["content"].as_str())
        .collect();
    assert_eq!(
        contents,
        ["two\nlines\tand a tab", "first line\r\nsecond line"]
    );
}

/// A user who connects while Redis is down is refused (1013), and their
/// channel, which the gateway could not subscribe, is given up with the
/// connection: once Redis is back, the gateway subscribes its own channels
/// again, not the user's. (One user: each refusal waits out three command
/// timeouts, and the outage must end before the processes' worker-id
/// leases run out, when they stop on purpose; with its data kept, so that
/// the leases are still there.)
#[tokio::test]
async fn the_channel_of_a_connection_refused_in_an_outage_is_not_subscribed_later() {
    let mut redis = RedisServer::start_with(ServerOptions { aof: true });
    let cluster = Cluster::on(redis.url(), false);
    let _router = cluster.start("router");
    let _persist = cluster.start("persist");
    let gw = cluster.start("gateway");
    let (ann, _) = gw.user("ann").await;

    redis.kill();
    let code = Ws::closed_before_ready(&gw, ann.token()).await;
    assert_eq!(code, Some(1013));
    redis.start_again();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let channels = loop {
        let channels = redis.cli(&["PUBSUB", "CHANNELS", "*"]);
        if !channels.is_empty() {
            // Let the rest of the resubscription land.
            tokio::time::sleep(Duration::from_secs(1)).await;
            break redis.cli(&["PUBSUB", "CHANNELS", "*"]);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway did not subscribe again: {}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(channels.contains("accounts"), "{channels}");
    assert!(
        channels.lines().all(|channel| !channel.contains("user:")),
        "{channels}"
    );
}
