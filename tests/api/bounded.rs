//! Bounded work per request (issue 10): the password hashing queue, the
//! `ready` frame's room list and the `resume` budget. Each is shown to cut
//! the request short in the documented way (503 with `Retry-After`,
//! `rooms_truncated` and `GET /rooms` pages, `complete: false`) while the
//! client can still get everything it is owed.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Server, UNTHROTTLED, assert_error};
use crate::ws::Ws;

#[tokio::test]
async fn a_login_flood_beyond_the_hashing_queue_is_refused_and_a_real_user_still_logs_in() {
    // One hashing job may wait; the login limits are out of the way, so
    // that only the queue stands between the flood and the hashing threads.
    let server = Server::start_with(&[
        ("CHAT_LIMITS__HASH_QUEUE", "1"),
        ("CHAT_RATES__LOGIN_PER_ADDRESS_PER_MINUTE", "100000"),
        ("CHAT_RATES__LOGIN_PER_USERNAME_PER_MINUTE", "100000"),
    ]);
    server.user("alice").await;
    let http = reqwest::Client::new();
    let flood = (0..60).map(|i| {
        let http = http.clone();
        let url = format!("{}/api/v1/auth/login", server.base);
        async move {
            let response = http
                .post(url)
                .json(&json!({"username": format!("guess{i}"), "password": "wrong-guess"}))
                .send()
                .await
                .expect("request");
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, retry_after, body)
        }
    });
    let answers = futures_util::future::join_all(flood).await;
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        answers
            .iter()
            .all(|(status, _, _)| *status == StatusCode::UNAUTHORIZED
                || *status == StatusCode::SERVICE_UNAVAILABLE),
        "{answers:?}"
    );
    assert!(!refused.is_empty(), "the queue of one refused nothing");
    for (status, retry_after, body) in &refused {
        assert_error(&(*status, body.clone()), 503, "unavailable");
        assert_eq!(retry_after.as_deref(), Some("2"), "{body}");
        assert_eq!(body["error"]["retry_after_ms"], 2000);
    }
    assert_eq!(
        server.metric("chat_password_hash_refused_total").await,
        refused.len() as f64
    );
    // The flood is over: the real user logs in.
    let (status, body) = server
        .client()
        .post(
            "/api/v1/auth/login",
            json!({"username": "alice", "password": "password123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.metric("chat_password_hash_queue").await, 0.0);
}

/// The room ids of a `rooms` list (a `RoomSummary` carries its room's
/// fields flattened).
fn room_ids(rooms: &Value) -> Vec<String> {
    rooms
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn ready_lists_a_bounded_number_of_rooms_and_get_rooms_pages_the_rest() {
    let mut env = UNTHROTTLED.to_vec();
    env.push(("CHAT_LIMITS__READY_ROOMS", "3"));
    let server = Server::start_with(&env);
    let (alice, _) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let mut created = BTreeSet::new();
    for i in 0..5 {
        created.insert(alice.create_room(&format!("room {i}"), "public", &[]).await);
    }
    bob.create_room("only one", "public", &[]).await;

    let mut a = Ws::connect(&server, alice.token()).await;
    let listed = room_ids(&a.ready["rooms"]);
    assert_eq!(listed.len(), 3, "{}", a.ready);
    assert_eq!(a.ready["rooms_truncated"], true);
    // A user within the bound gets no flag at all (an additive field).
    let b = Ws::connect(&server, bob.token()).await;
    assert_eq!(room_ids(&b.ready["rooms"]).len(), 1);
    assert!(b.ready.get("rooms_truncated").is_none(), "{}", b.ready);

    // `ready` is the first page of `GET /rooms?limit=3`; the cursor is the
    // last listed room.
    let (status, first) = alice.get("/api/v1/rooms?limit=3").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(room_ids(&first["rooms"]), listed);
    assert_eq!(
        first["next_cursor"].as_str(),
        listed.last().map(String::as_str)
    );
    let (_, second) = alice
        .get(&format!("/api/v1/rooms?limit=3&cursor={}", listed[2]))
        .await;
    let rest = room_ids(&second["rooms"]);
    assert_eq!(rest.len(), 2, "{second}");
    assert!(second.get("next_cursor").is_none(), "{second}");
    let paged: BTreeSet<String> = listed.iter().chain(&rest).cloned().collect();
    assert_eq!(paged, created);
    // Without a limit, every room, as before.
    let (_, all) = alice.get("/api/v1/rooms").await;
    assert_eq!(room_ids(&all["rooms"]).len(), 5);
    assert!(all.get("next_cursor").is_none());
    for bad in [
        "/api/v1/rooms?limit=0",
        "/api/v1/rooms?limit=1001",
        "/api/v1/rooms?cursor=x",
    ] {
        assert_error(&alice.get(bad).await, 400, "bad_request");
    }

    // The connection receives the rooms `ready` did not list too.
    let unlisted = rest[0].clone();
    alice.send(&unlisted, "still delivered").await;
    let message = a.next_of("message").await;
    assert_eq!(message["message"]["room_id"], unlisted.as_str());
    assert_eq!(server.metric("chat_ready_truncated_total").await, 1.0);
}

#[tokio::test]
async fn resume_replays_at_most_its_budget_and_reports_the_rooms_cut_short() {
    let mut env = UNTHROTTLED.to_vec();
    env.push(("CHAT_LIMITS__RESUME_MESSAGES", "7"));
    let server = Server::start_with(&env);
    let (alice, _) = server.user("alice").await;
    // Created in order, so their ids (and the order `resume` walks) rise.
    let mut rooms = Vec::new();
    let mut last_seen = serde_json::Map::new();
    for i in 0..3 {
        let room = alice.create_room(&format!("room {i}"), "public", &[]).await;
        let seen = alice.send(&room, "seen").await["id"].clone();
        for j in 0..5 {
            alice.send(&room, &format!("missed {i}.{j}")).await;
        }
        last_seen.insert(room.clone(), seen);
        rooms.push(room);
    }
    // Walked last, once the budget is spent: still refused, not reported.
    let (bob, _) = server.user("bob").await;
    let bobs = bob.create_room("bob's", "private", &[]).await;
    last_seen.insert(bobs.clone(), json!("1"));
    let mut a = Ws::connect(&server, alice.token()).await;
    a.send(json!({"type": "resume", "ref": "re", "rooms": last_seen}))
        .await;
    let mut replayed = Vec::new();
    let mut errors = Vec::new();
    let resumed = loop {
        let frame = a.next_frame().await;
        match frame["type"].as_str() {
            Some("message") => replayed.push(frame["message"].clone()),
            Some("error") => errors.push(frame),
            Some("resumed") => break frame,
            _ => {}
        }
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["code"], "forbidden");
    assert!(resumed["rooms"].get(&bobs).is_none(), "{resumed}");
    assert_eq!(replayed.len(), 7, "the budget of the call");
    assert_eq!(
        resumed["rooms"][&rooms[0]],
        json!({"replayed": 5, "complete": true})
    );
    assert_eq!(
        resumed["rooms"][&rooms[1]],
        json!({"replayed": 2, "complete": false})
    );
    assert_eq!(
        resumed["rooms"][&rooms[2]],
        json!({"replayed": 0, "complete": false})
    );
    // The client pages on with `history` from where the replay stopped.
    let after = replayed.last().unwrap()["id"].as_str().unwrap().to_owned();
    let (_, page) = alice
        .get(&format!(
            "/api/v1/rooms/{}/messages?after={after}",
            rooms[1]
        ))
        .await;
    let contents: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["missed 1.2", "missed 1.3", "missed 1.4"]);
    assert_eq!(server.metric("chat_resume_truncated_total").await, 1.0);
}
