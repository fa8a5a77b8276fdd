//! The WebSocket half of the protocol, end to end: real server, real
//! WebSocket clients.

use std::collections::HashMap;
use std::time::Duration;

use chat_protocol::Codec;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Server, assert_error, dm_id};
use crate::ws::{TokenIn, Ws};

/// Messages among `frames`, by content.
fn contents(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["message"]["content"].as_str().unwrap().to_owned())
        .collect()
}

/// A `send` and, at once, a `leave` of the same room by the room's only
/// connection on `server`: the leave is answered (`room_removed`) before the
/// message is published, and the send's ack rides the message's event. The
/// ack arrives all the same, the message is stored, and once the room is
/// left nothing of it reaches the connection. A first send just before
/// wakes the router, so that on Redis, where it then waits its read
/// interval, the `send` and the `leave` come in one read.
pub async fn send_then_leave(server: &Server) {
    let (leaver, _) = server.user("leaver").await;
    let (stayer, _) = server.user("stayer").await;
    let room = leaver.create_room("goodbyes", "public", &[]).await;
    let join = format!("/api/v1/rooms/{room}/join");
    let leave = format!("/api/v1/rooms/{room}/leave");
    assert!(stayer.post_empty(&join).await.0.is_success());
    let mut ws = Ws::connect(server, leaver.token()).await;
    for i in 0..3 {
        let (first, id) = (format!("first-{i}"), format!("bye-{i}"));
        for (content, id) in [("first", &first), ("bye", &id)] {
            ws.send(json!({"type": "send", "room_id": room, "content": content, "client_id": id, "ref": id}))
                .await;
        }
        ws.send(json!({"type": "leave", "room_id": room})).await;
        assert_eq!(ws.next_of("ack").await["ref"], first);
        let ack = ws.next_of("ack").await;
        assert_eq!(ack["ref"], id, "the send is acked: {ack}");
        assert_eq!(ack["client_id"], id);
        assert_eq!(ws.next_of("room_removed").await["room_id"], room);
        let (_, history) = stayer
            .get(&format!("/api/v1/rooms/{room}/messages?limit=1"))
            .await;
        assert_eq!(history["messages"][0]["id"], ack["message_id"], "stored");
        assert!(leaver.post_empty(&join).await.0.is_success());
        assert_eq!(ws.next_of("room_added").await["room"]["id"], room);
    }
    // Once the room is left, its channel may stay subscribed a while for
    // acks still to come, but nothing of the room reaches the connection.
    assert!(leaver.post_empty(&leave).await.0.is_success());
    assert_eq!(ws.next_of("room_removed").await["room_id"], room);
    stayer.send(&room, "not for the leaver").await;
    let frames = ws.frames_within(Duration::from_millis(500), &[]).await;
    assert!(
        frames
            .iter()
            .all(|f| f["message"]["content"] != "not for the leaver"),
        "a room left delivers nothing: {frames:?}"
    );
}

#[tokio::test]
async fn a_send_right_before_leaving_the_room_is_still_acked() {
    send_then_leave(&Server::start()).await;
}

#[tokio::test]
async fn a_message_reaches_every_member_once_and_nobody_else() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (carol, _) = server.user("carol").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    let mut c = Ws::connect(&server, carol.token()).await;
    assert_eq!(a.ready["rooms"][0]["id"], room.as_str());
    assert_eq!(a.ready["user"]["username"], "alice");
    assert_eq!(a.ready["user"]["online"], true);
    assert!(a.ready["heartbeat_interval_ms"].as_u64().unwrap() > 0);

    a.send(json!({"type": "send", "ref": "r1", "room_id": room, "content": "hello @bob", "client_id": "c1"})).await;
    let ack = a.next_of("ack").await;
    assert_eq!(ack["ref"], "r1");
    assert_eq!(ack["client_id"], "c1");
    // The ack means durable: the message is in history already.
    let (_, history) = alice.get(&format!("/api/v1/rooms/{room}/messages")).await;
    assert_eq!(history["messages"][0]["id"], ack["message_id"]);

    for ws in [&mut a, &mut b] {
        let frames = ws
            .frames_within(Duration::from_millis(500), &["presence", "mention"])
            .await;
        let messages: Vec<&Value> = frames.iter().filter(|f| f["type"] == "message").collect();
        assert_eq!(messages.len(), 1, "exactly once: {frames:?}");
        assert_eq!(messages[0]["message"]["id"], ack["message_id"]);
        assert_eq!(messages[0]["message"]["content"], "hello @bob");
    }
    assert!(
        contents(
            &c.frames_within(Duration::from_millis(300), &["presence"])
                .await
        )
        .is_empty()
    );

    c.send(json!({"type": "send", "ref": "x", "room_id": room, "content": "let me in", "client_id": "c9"})).await;
    let error = c.next_of("error").await;
    assert_eq!(
        (
            error["code"].as_str(),
            error["ref"].as_str(),
            error["client_id"].as_str()
        ),
        (Some("forbidden"), Some("x"), Some("c9"))
    );
    assert!(
        contents(
            &b.frames_within(Duration::from_millis(300), &["presence"])
                .await
        )
        .is_empty()
    );
}

#[tokio::test]
async fn a_dm_is_created_by_its_first_message() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (eve, _) = server.user("eve").await;
    let dm = dm_id(&alice_id, &bob_id);
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    let mut e = Ws::connect(&server, eve.token()).await;
    a.send(json!({"type": "send", "room_id": dm, "content": "psst", "client_id": "d1"}))
        .await;
    for ws in [&mut a, &mut b] {
        let added = ws.next_of("room_added").await;
        assert_eq!(added["room"]["id"], dm.as_str());
        assert_eq!(added["room"]["kind"], "dm");
        let message = ws.next_of("message").await;
        assert_eq!(message["message"]["content"], "psst");
    }
    a.next_of("ack").await;
    // Replies in the DM reach both sides through the room channel now.
    b.send(json!({"type": "send", "room_id": dm, "content": "hi back"}))
        .await;
    assert_eq!(a.next_of("message").await["message"]["content"], "hi back");
    assert_eq!(b.next_of("message").await["message"]["content"], "hi back");

    e.send(json!({"type": "send", "room_id": dm, "content": "me too", "ref": "e1"}))
        .await;
    assert_eq!(e.next_of("error").await["code"], "forbidden");
    e.send(json!({"type": "history", "room_id": dm, "ref": "e2"}))
        .await;
    let error = e.next_of("error").await;
    assert_eq!(
        (error["code"].as_str(), error["ref"].as_str()),
        (Some("forbidden"), Some("e2"))
    );
    assert!(
        e.frames_within(Duration::from_millis(300), &["presence"])
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn mentions_reach_every_device_of_mentioned_members_only() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (carol, _) = server.user("carol").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut b1 = Ws::connect(&server, bob.token()).await;
    let mut b2 = Ws::connect(&server, bob.token()).await;
    let mut c = Ws::connect(&server, carol.token()).await;
    a.send(json!({"type": "send", "room_id": room, "content": "@bob @carol @alice look"}))
        .await;
    let ack = a.next_of("ack").await;
    for ws in [&mut b1, &mut b2] {
        let mention = ws.next_of("mention").await;
        assert_eq!(mention["room_id"], room.as_str());
        assert_eq!(mention["message_id"], ack["message_id"]);
        assert_eq!(mention["content"], "@bob @carol @alice look");
    }
    let frames = a.frames_within(Duration::from_millis(400), &[]).await;
    assert!(
        !frames.iter().any(|f| f["type"] == "mention"),
        "not the sender: {frames:?}"
    );
    let frames = c.frames_within(Duration::from_millis(400), &[]).await;
    assert!(
        !frames.iter().any(|f| f["type"] == "mention"),
        "not a non-member: {frames:?}"
    );
}

#[tokio::test]
async fn rooms_above_the_presence_bound_get_no_presence() {
    let server = Server::start_with(&[("CHAT_REALTIME__PRESENCE_MAX_ROOM_MEMBERS", "2")]);
    let (watcher, _) = server.user("watcher").await;
    let (_bystander, bystander_id) = server.user("bystander").await;
    let (user, user_id) = server.user("walker").await;
    let big = watcher
        .create_room("big", "public", &[&user_id, &bystander_id])
        .await;
    let mut w = Ws::connect(&server, watcher.token()).await;
    let walker_ws = Ws::connect(&server, user.token()).await;
    let quiet = w.frames_within(Duration::from_millis(600), &[]).await;
    assert!(
        quiet.iter().all(|f| f["type"] != "presence"),
        "a room of 3 is above the bound of 2: {quiet:?}"
    );
    // Withheld twice: the watcher coming online, then the walker.
    assert_eq!(server.metric("chat_presence_withheld_total").await, 2.0);
    let (_, members) = watcher.get(&format!("/api/v1/rooms/{big}/members")).await;
    let walker = members["members"]
        .as_array()
        .and_then(|all| all.iter().find(|m| m["user"]["id"] == user_id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        walker["online"], true,
        "the member list still says: {members}"
    );
    // A DM is a room of two: within the bound.
    let (status, _) = watcher
        .post("/api/v1/dms", json!({ "user_id": user_id }))
        .await;
    assert_eq!(status.as_u16(), 200);
    walker_ws.close().await;
    let offline = w.next_of("presence").await;
    assert_eq!(
        (offline["user_id"].as_str(), offline["online"].as_bool()),
        (Some(user_id.as_str()), Some(false))
    );
}

#[tokio::test]
async fn presence_follows_the_first_and_last_connection() {
    let server = Server::start();
    let (watcher, _) = server.user("watcher").await;
    let (user, user_id) = server.user("walker").await;
    watcher.create_room("lobby", "public", &[&user_id]).await;
    watcher.create_room("other", "public", &[&user_id]).await;
    let mut w = Ws::connect(&server, watcher.token()).await;
    let first = Ws::connect(&server, user.token()).await;
    let online = w.next_of("presence").await;
    assert_eq!(
        (online["user_id"].as_str(), online["online"].as_bool()),
        (Some(user_id.as_str()), Some(true))
    );
    let second = Ws::connect(&server, user.token()).await;
    let (status, profile) = watcher.get(&format!("/api/v1/users/{user_id}")).await;
    assert_eq!(
        (status.as_u16(), profile["online"].as_bool()),
        (200, Some(true))
    );
    first.close().await;
    let quiet = w.frames_within(Duration::from_millis(500), &[]).await;
    assert!(
        quiet.iter().all(|f| f["type"] != "presence"),
        "still online on one device: {quiet:?}"
    );
    second.close().await;
    let offline = w.next_of("presence").await;
    assert_eq!(offline["online"], false);
    assert!(offline["last_seen_at"].as_u64().unwrap() > 0);
    let again = w.frames_within(Duration::from_millis(400), &[]).await;
    assert!(
        again.iter().all(|f| f["type"] != "presence"),
        "one event though they share two rooms: {again:?}"
    );
    let (_, profile) = watcher.get(&format!("/api/v1/users/{user_id}")).await;
    assert_eq!(profile["online"], false);
    assert_eq!(profile["last_seen_at"], offline["last_seen_at"]);
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed() {
    let server = Server::start_unthrottled();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let last_seen = alice.send(&room, "seen by bob").await["id"].clone();
    let mut sent = Vec::new();
    for i in 0..50 {
        sent.push(alice.send(&room, &format!("missed {i}")).await["id"].clone());
    }
    let mut b = Ws::connect(&server, bob.token()).await;
    assert_eq!(b.ready["rooms"][0]["unread_count"], 51);
    b.send(json!({"type": "resume", "ref": "re", "rooms": {room.clone(): last_seen}}))
        .await;
    let mut replayed = Vec::new();
    loop {
        let frame = b.next_frame().await;
        match frame["type"].as_str() {
            Some("message") => replayed.push(frame["message"]["id"].clone()),
            Some("resumed") => {
                assert_eq!(frame["ref"], "re");
                assert_eq!(
                    frame["rooms"][&room],
                    json!({"replayed": 50, "complete": true})
                );
                break;
            }
            _ => {}
        }
    }
    assert_eq!(replayed, sent, "every missed message, in order, once");
}

#[tokio::test]
async fn resume_stops_at_500_per_room() {
    let server = Server::start_unthrottled();
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("busy", "public", &[]).await;
    let first = alice.send(&room, "start").await["id"].clone();
    let mut tasks = Vec::new();
    for i in 0..520 {
        let (alice, room) = (alice.clone(), room.clone());
        tasks.push(tokio::spawn(async move {
            alice.send(&room, &format!("m{i}")).await
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut a = Ws::connect(&server, alice.token()).await;
    a.send(json!({"type": "resume", "rooms": {room.clone(): first}}))
        .await;
    let resumed = a.next_of("resumed").await;
    assert_eq!(
        resumed["rooms"][&room],
        json!({"replayed": 500, "complete": false})
    );
}

#[tokio::test]
async fn repeated_client_ids_get_the_original_ack() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let send = json!({"type": "send", "room_id": room, "content": "once", "client_id": "same"});
    a.send(send.clone()).await;
    let first = a.next_of("ack").await;
    a.send(send).await;
    let second = a.next_of("ack").await;
    assert_eq!(first["message_id"], second["message_id"]);
    assert_eq!(first["created_at"], second["created_at"]);
    let (_, history) = alice.get(&format!("/api/v1/rooms/{room}/messages")).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn sends_over_the_rate_limit_are_refused_with_retry_after() {
    // A burst of 20 and a refill slow enough (one token per 100 s) that how
    // fast a loaded machine handles the burst cannot change the count.
    let server = Server::start_with(&[
        ("CHAT_RATES__SEND_PER_SECOND", "0.01"),
        ("CHAT_RATES__SEND_BURST", "20"),
    ]);
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    for i in 0..30 {
        a.send(json!({"type": "send", "room_id": room, "content": format!("m{i}"), "client_id": format!("k{i}")})).await;
    }
    let (mut acks, mut limited) = (HashMap::new(), Vec::new());
    while acks.len() + limited.len() < 30 {
        let frame = a.next_frame().await;
        match frame["type"].as_str() {
            Some("ack") => {
                let client_id = frame["client_id"].as_str().unwrap().to_owned();
                acks.insert(client_id, frame["message_id"].clone());
            }
            Some("error") => {
                assert_eq!(frame["code"], "rate_limited");
                assert!(frame["retry_after_ms"].as_u64().unwrap() > 0);
                assert!(frame["client_id"].as_str().unwrap().starts_with('k'));
                limited.push(frame["client_id"].clone());
            }
            _ => {}
        }
    }
    assert_eq!(acks.len(), 20, "a burst of 20, nothing refilled");
    assert_eq!(acks.len() + limited.len(), 30);
    // REST posts share the same limit.
    let path = format!("/api/v1/rooms/{room}/messages");
    let answer = alice.post(&path, json!({"content": "x"})).await;
    assert_error(&answer, 429, "rate_limited");
    assert!(answer.1["error"]["retry_after_ms"].as_u64().is_some());

    // A retry of a send that was acked gets its ack again, limit or not:
    // it creates nothing. A refused send's retry is refused again.
    a.send(json!({"type": "send", "room_id": room, "content": "m0", "client_id": "k0"}))
        .await;
    let again = a.next_frame().await;
    assert_eq!(again["type"], "ack", "{again}");
    assert_eq!(again["message_id"], acks["k0"]);
    let (status, retried) = alice
        .post(&path, json!({"content": "m1", "client_id": "k1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    assert_eq!(retried["id"], acks["k1"]);
    let refused = limited[0].as_str().unwrap();
    let answer = alice
        .post(&path, json!({"content": "again", "client_id": refused}))
        .await;
    assert_error(&answer, 429, "rate_limited");
    let (_, history) = alice.get(&format!("{path}?limit=100")).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn edits_and_deletes_follow_the_permissions() {
    let server = Server::start();
    let (owner, _) = server.user("owner").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = owner.create_room("general", "public", &[&bob_id]).await;
    let mut o = Ws::connect(&server, owner.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    let owners = owner.send(&room, "owner's words").await["id"].clone();
    let bobs = bob.send(&room, "bob's words").await["id"].clone();

    b.send(json!({"type": "edit", "ref": "e", "room_id": room, "message_id": owners, "content": "hacked"})).await;
    assert_eq!(b.next_of("error").await["code"], "forbidden");
    b.send(json!({"type": "delete", "ref": "d", "room_id": room, "message_id": owners}))
        .await;
    assert_eq!(b.next_of("error").await["code"], "forbidden");

    b.send(json!({"type": "edit", "room_id": room, "message_id": bobs, "content": "bob's better words @owner"})).await;
    for ws in [&mut o, &mut b] {
        let updated = ws.next_of("message_updated").await;
        assert_eq!(updated["message"]["content"], "bob's better words @owner");
        assert!(updated["message"]["edited_at"].as_u64().is_some());
    }
    // The owner may delete anyone's message.
    o.send(json!({"type": "delete", "room_id": room, "message_id": bobs}))
        .await;
    for ws in [&mut o, &mut b] {
        let deleted = ws.next_of("message_deleted").await;
        assert_eq!(
            (deleted["room_id"].as_str(), &deleted["message_id"]),
            (Some(room.as_str()), &bobs)
        );
    }
    let (_, history) = owner.get(&format!("/api/v1/rooms/{room}/messages")).await;
    let tombstone = &history["messages"][1];
    assert_eq!(
        (
            tombstone["deleted"].as_bool(),
            tombstone["content"].as_str()
        ),
        (Some(true), Some(""))
    );
    b.send(json!({"type": "edit", "room_id": room, "message_id": bobs, "content": "resurrect"}))
        .await;
    assert_eq!(b.next_of("error").await["code"], "not_found");
}

#[tokio::test]
async fn typing_reaches_the_others_only_and_is_throttled() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    a.send(json!({"type": "typing", "room_id": room, "typing": true}))
        .await;
    a.send(json!({"type": "typing", "room_id": room, "typing": true}))
        .await;
    let seen = b
        .frames_within(Duration::from_millis(800), &["presence"])
        .await;
    let typing: Vec<&Value> = seen.iter().filter(|f| f["type"] == "typing").collect();
    assert_eq!(
        typing.len(),
        1,
        "the second within 2 s is dropped: {seen:?}"
    );
    assert_eq!(typing[0]["user_id"], json!(a.ready["user"]["id"]));
    assert_eq!(typing[0]["typing"], true);
    let own = a
        .frames_within(Duration::from_millis(300), &["presence"])
        .await;
    assert!(
        own.iter().all(|f| f["type"] != "typing"),
        "not back to the typist: {own:?}"
    );
    // Typing is never stored.
    let (_, history) = alice.get(&format!("/api/v1/rooms/{room}/messages")).await;
    assert_eq!(history["messages"], json!([]));
}

#[tokio::test]
async fn read_positions_are_broadcast_and_feed_unread_counts() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let mut last = Value::Null;
    for i in 0..3 {
        last = alice.send(&room, &format!("m{i}")).await;
    }
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    assert_eq!(b.ready["rooms"][0]["unread_count"], 3);
    b.send(json!({"type": "read", "room_id": room, "message_id": last["id"]}))
        .await;
    let read = a.next_of("read").await;
    assert_eq!(
        (read["user_id"].as_str(), &read["message_id"]),
        (Some(bob_id.as_str()), &last["id"])
    );
    let again = Ws::connect(&server, bob.token()).await;
    assert_eq!(again.ready["rooms"][0]["unread_count"], 0);
    let (_, list) = bob.get("/api/v1/rooms").await;
    assert_eq!(list["rooms"][0]["unread_count"], 0);
}

#[tokio::test]
async fn history_over_the_socket() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    for i in 0..5 {
        alice.send(&room, &format!("m{i}")).await;
    }
    let mut a = Ws::connect(&server, alice.token()).await;
    a.send(json!({"type": "history", "ref": "h", "room_id": room, "limit": 3}))
        .await;
    let page = a.next_of("history").await;
    assert_eq!(page["ref"], "h");
    assert_eq!(
        contents(
            &page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| json!({"type": "message", "message": m}))
                .collect::<Vec<_>>()
        ),
        ["m2", "m3", "m4"]
    );
    assert_eq!(page["has_more"], true);
    a.send(json!({"type": "history", "ref": "bad", "room_id": room, "limit": 0}))
        .await;
    assert_eq!(a.next_of("error").await["code"], "bad_request");
}

#[tokio::test]
async fn joining_and_being_removed_changes_what_every_device_receives() {
    let server = Server::start();
    let (owner, _) = server.user("owner").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = owner.create_room("lobby", "public", &[]).await;
    let mut o = Ws::connect(&server, owner.token()).await;
    let mut b1 = Ws::connect(&server, bob.token()).await;
    let mut b2 = Ws::connect(&server, bob.token()).await;
    b1.send(json!({"type": "join", "room_id": room})).await;
    for ws in [&mut b1, &mut b2] {
        assert_eq!(ws.next_of("room_added").await["room"]["id"], room.as_str());
    }
    assert_eq!(o.next_of("member_joined").await["user_id"], bob_id.as_str());
    owner.send(&room, "welcome").await;
    for ws in [&mut b1, &mut b2] {
        assert_eq!(ws.next_of("message").await["message"]["content"], "welcome");
    }
    let (status, _) = owner
        .delete(&format!("/api/v1/rooms/{room}/members/{bob_id}"))
        .await;
    assert_eq!(status.as_u16(), 204);
    for ws in [&mut b1, &mut b2] {
        assert_eq!(ws.next_of("room_removed").await["room_id"], room.as_str());
    }
    assert_eq!(o.next_of("member_left").await["user_id"], bob_id.as_str());
    owner.send(&room, "bob is gone").await;
    for ws in [&mut b1, &mut b2] {
        let after = ws
            .frames_within(Duration::from_millis(400), &["presence"])
            .await;
        assert!(
            contents(&after).is_empty(),
            "a removed member hears nothing more: {after:?}"
        );
    }
    b1.send(json!({"type": "leave", "room_id": room, "ref": "l"}))
        .await;
    assert_eq!(b1.next_of("error").await["code"], "forbidden");
}

#[tokio::test]
async fn the_msgpack_subprotocol_carries_the_same_conversation() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let mut a = Ws::open(
        &server,
        Some(alice.token()),
        Codec::MsgPack,
        TokenIn::Header,
    )
    .await
    .unwrap();
    let mut b = Ws::open(&server, Some(bob.token()), Codec::Json, TokenIn::Query)
        .await
        .unwrap();
    assert_eq!(a.ready["rooms"][0]["id"], room.as_str());
    a.send(json!({"type": "send", "ref": "m", "room_id": room, "content": "binary hello", "client_id": "mp"})).await;
    let ack = a.next_of("ack").await;
    assert_eq!(
        (ack["ref"].as_str(), ack["client_id"].as_str()),
        (Some("m"), Some("mp"))
    );
    assert_eq!(
        a.next_of("message").await["message"]["id"],
        ack["message_id"]
    );
    assert_eq!(
        b.next_of("message").await["message"]["id"],
        ack["message_id"]
    );
    b.send(json!({"type": "send", "room_id": room, "content": "text reply"}))
        .await;
    assert_eq!(
        a.next_of("message").await["message"]["content"],
        "text reply"
    );
    a.send(json!({"type": "ping", "ref": "p"})).await;
    assert_eq!(a.next_of("pong").await["ref"], "p");
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    a.send(json!({"type": "send", "room_id": room, "content": "counted"}))
        .await;
    a.next_of("ack").await;
    a.send_raw_text("garbage").await;
    a.next_of("error").await;
    let response = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
    };
    assert_eq!(value("chat_connections "), 1.0);
    assert_eq!(value("chat_frames_received_total{type=\"send\"}"), 1.0);
    assert_eq!(value("chat_frames_received_total{type=\"invalid\"}"), 1.0);
    assert_eq!(value("chat_messages_persisted_total"), 1.0);
    assert_eq!(
        value("chat_router_actions_total{action=\"send\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(value("chat_delivery_latency_seconds_count"), 1.0);
    assert!(value("chat_frames_sent_total{type=\"ack\"}") >= 1.0);
    assert!(
        value("chat_http_requests_total{status=\"201\"}") >= 2.0,
        "register and create room"
    );
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert_eq!(value("chat_bus_dropped_deliveries"), 0.0);
}
