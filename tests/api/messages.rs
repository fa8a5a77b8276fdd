//! Posting, history paging, mentions, idempotency and read positions.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Server, assert_error};

fn ids(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn post_and_read_history_in_pages() {
    let server = Server::start_unthrottled();
    let (alice, alice_id) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let (status, empty) = alice.get(&format!("/api/v1/rooms/{room}/messages")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty, json!({"messages": [], "has_more": false}));

    let first = alice.send(&room, "  hello  ").await;
    assert_eq!(first["content"], "hello", "content is stored trimmed");
    assert_eq!(first["room_id"], room.as_str());
    assert_eq!(first["sender_id"], alice_id.as_str());
    assert_eq!(first["mentions"], json!([]));
    assert_eq!(first["attachments"], json!([]));
    assert!(first.get("deleted").is_none() && first.get("edited_at").is_none());
    let mut sent = vec![first["id"].as_str().unwrap().parse::<u64>().unwrap()];
    for i in 1..25 {
        let message = alice.send(&room, &format!("message {i}")).await;
        sent.push(message["id"].as_str().unwrap().parse().unwrap());
    }
    assert!(
        sent.windows(2).all(|w| w[0] < w[1]),
        "ids increase with time"
    );

    let path = format!("/api/v1/rooms/{room}/messages");
    let (_, newest) = alice.get(&format!("{path}?limit=10")).await;
    assert_eq!(ids(&newest), sent[15..]);
    assert_eq!(newest["has_more"], true);
    let (_, older) = alice
        .get(&format!("{path}?limit=10&before={}", sent[15]))
        .await;
    assert_eq!(ids(&older), sent[5..15]);
    assert_eq!(older["has_more"], true);
    let (_, oldest) = alice
        .get(&format!("{path}?limit=10&before={}", sent[5]))
        .await;
    assert_eq!(ids(&oldest), sent[..5]);
    assert_eq!(oldest["has_more"], false);
    let (_, exact) = alice
        .get(&format!("{path}?limit=5&before={}", sent[5]))
        .await;
    assert_eq!(
        (ids(&exact), exact["has_more"].clone()),
        (sent[..5].to_vec(), json!(false))
    );

    let (_, after) = alice
        .get(&format!("{path}?limit=10&after={}", sent[0]))
        .await;
    assert_eq!(ids(&after), sent[1..11]);
    assert_eq!(after["has_more"], true);
    let (_, tail) = alice
        .get(&format!("{path}?limit=10&after={}", sent[20]))
        .await;
    assert_eq!(ids(&tail), sent[21..]);
    assert_eq!(tail["has_more"], false);
    let (_, between) = alice
        .get(&format!(
            "{path}?limit=3&after={}&before={}",
            sent[2], sent[10]
        ))
        .await;
    assert_eq!(ids(&between), sent[3..6]);
    assert_eq!(between["has_more"], true);

    let (_, default) = alice.get(&path).await;
    assert_eq!(ids(&default), sent, "default limit is 50");
    assert_eq!(default["has_more"], false);

    // Bounds past every id, however large, are bounds all the same.
    for before in ["9223372036854775808", "18446744073709551615"] {
        let (_, newest) = alice.get(&format!("{path}?limit=10&before={before}")).await;
        assert_eq!(ids(&newest), sent[15..], "before={before}");
    }
    for after in ["9223372036854775807", "18446744073709551615"] {
        let (_, none) = alice.get(&format!("{path}?after={after}")).await;
        assert_eq!(none["messages"], json!([]), "after={after}");
        assert_eq!(none["has_more"], false, "after={after}");
    }
    for bad in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "before=abc",
        "after=1.5",
    ] {
        assert_error(
            &alice.get(&format!("{path}?{bad}")).await,
            400,
            "bad_request",
        );
    }
}

#[tokio::test]
async fn content_rules() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let path = format!("/api/v1/rooms/{room}/messages");
    assert_error(
        &alice.post(&path, json!({"content": ""})).await,
        400,
        "bad_request",
    );
    assert_error(
        &alice.post(&path, json!({"content": " \n\t "})).await,
        400,
        "bad_request",
    );
    // Nothing visible: zero-width spaces, a word joiner, a Hangul filler.
    assert_error(
        &alice
            .post(&path, json!({"content": "\u{200B} \u{2060}\u{3164}"}))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &alice
            .post(&path, json!({"content": "€".repeat(4001)}))
            .await,
        413,
        "too_large",
    );
    let (status, body) = alice
        .post(&path, json!({"content": "€".repeat(4000)}))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "4000 characters (12000 bytes) are fine: {body}"
    );
    assert_error(
        &alice
            .post(&path, json!({"content": "x", "client_id": ""}))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &alice
            .post(&path, json!({"content": "x", "client_id": "k".repeat(65)}))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &alice
            .post(&path, json!({"content": "x", "reply_to": "12345"}))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &alice
            .post(&path, json!({"content": "x", "attachment_ids": ["1"]}))
            .await,
        400,
        "bad_request",
    );
    let (_, history) = alice.get(&path).await;
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        1,
        "rejected posts stored nothing"
    );

    let original = &history["messages"][0];
    let (status, reply) = alice
        .post(&path, json!({"content": "re", "reply_to": original["id"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(reply["reply_to"], original["id"]);
    assert_error(
        &alice
            .post("/api/v1/rooms/987654/messages", json!({"content": "x"}))
            .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn mentions_are_resolved_by_the_server() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let (_, bob_id) = server.user("bob").await;
    let (_, carol_id) = server.user("Carol.C").await;
    server.user("outsider").await;
    let room = alice
        .create_room("team", "public", &[&bob_id, &carol_id])
        .await;
    let message = alice
        .send(
            &room,
            "@BOB hi, @outsider @alice @nobody mail bob@x.org, thanks @carol.c. and @bob again",
        )
        .await;
    assert_eq!(
        message["mentions"],
        json!([bob_id, carol_id]),
        "members only, not the sender, deduplicated"
    );
    assert!(
        !message["mentions"]
            .as_array()
            .unwrap()
            .contains(&json!(alice_id))
    );
    let none = alice.send(&room, "no mentions here @ @@").await;
    assert_eq!(none["mentions"], json!([]));
}

#[tokio::test]
async fn at_most_fifty_mentions() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let mut ids = Vec::new();
    for i in 0..55 {
        ids.push(server.user(&format!("user{i:02}")).await.1);
    }
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let room = alice.create_room("crowd", "public", &id_refs).await;
    let content: String = (0..55).map(|i| format!("@user{i:02} ")).collect();
    let message = alice.send(&room, &content).await;
    let expected: Vec<&str> = id_refs[..50].to_vec();
    assert_eq!(
        message["mentions"],
        json!(expected),
        "the first 50, in order"
    );
}

#[tokio::test]
async fn client_id_makes_posts_idempotent() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let other = alice.create_room("other", "public", &[]).await;
    let path = format!("/api/v1/rooms/{room}/messages");
    let (status, first) = alice
        .post(&path, json!({"content": "once", "client_id": "c-1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["client_id"], "c-1");
    let (status, again) = alice
        .post(&path, json!({"content": "once", "client_id": "c-1"}))
        .await;
    assert_eq!(
        (status, &again),
        (StatusCode::CREATED, &first),
        "the original message, unchanged"
    );
    let (_, elsewhere) = alice
        .post(
            &format!("/api/v1/rooms/{other}/messages"),
            json!({"content": "x", "client_id": "c-1"}),
        )
        .await;
    assert_eq!(elsewhere, first, "whichever room the retry names");
    // Another user's identical client_id is their own.
    let (status, bobs) = bob
        .post(&path, json!({"content": "mine", "client_id": "c-1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(bobs["id"], first["id"]);

    // Concurrent retries create one message.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let alice = alice.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            alice
                .post(&path, json!({"content": "race", "client_id": "c-2"}))
                .await
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        seen.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (_, history) = alice.get(&path).await;
    let contents: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["once", "mine", "race"]);
}

#[tokio::test]
async fn read_positions_feed_unread_counts() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(alice.send(&room, &format!("m{i}")).await);
    }
    bob.send(&room, "bob's own message does not count").await;
    let unread = |client: crate::harness::Client| async move {
        let (_, list) = client.get("/api/v1/rooms").await;
        (
            list["rooms"][0]["unread_count"].clone(),
            list["rooms"][0]["last_message"]["content"].clone(),
        )
    };
    assert_eq!(
        unread(bob.clone()).await,
        (json!(5), json!("bob's own message does not count"))
    );
    assert_eq!(unread(alice.clone()).await.0, json!(1));

    let read = format!("/api/v1/rooms/{room}/read");
    let (status, body) = bob.post(&read, json!({"message_id": sent[2]["id"]})).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(unread(bob.clone()).await.0, json!(2));
    // Read positions never move backwards.
    let (status, _) = bob.post(&read, json!({"message_id": sent[0]["id"]})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(unread(bob.clone()).await.0, json!(2));
    bob.post(&read, json!({"message_id": sent[4]["id"]})).await;
    assert_eq!(unread(bob.clone()).await.0, json!(0));

    assert_error(
        &bob.post(&read, json!({"message_id": "123"})).await,
        404,
        "not_found",
    );
    assert_error(
        &bob.post(&read, json!({"message_id": "abc"})).await,
        400,
        "bad_request",
    );
    assert_error(&bob.post(&read, json!({})).await, 400, "bad_request");
}

#[tokio::test]
async fn walking_back_under_concurrent_inserts_has_no_gaps_or_duplicates() {
    let server = Server::start_unthrottled();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("busy", "public", &[&bob_id]).await;
    for i in 0..120 {
        alice.send(&room, &format!("before {i}")).await;
    }
    let path = format!("/api/v1/rooms/{room}/messages");
    let (_, all) = alice.get(&format!("{path}?limit=100")).await;
    let (_, older) = alice
        .get(&format!("{path}?limit=100&before={}", ids(&all)[0]))
        .await;
    let stored_before: HashSet<u64> = ids(&all).into_iter().chain(ids(&older)).collect();
    assert_eq!(stored_before.len(), 120);

    let writer = {
        let bob = bob.clone();
        let room = room.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                bob.send(&room, &format!("during {i}")).await;
            }
        })
    };
    let mut walked: Vec<u64> = Vec::new();
    let (_, mut page) = alice.get(&format!("{path}?limit=7")).await;
    loop {
        let page_ids = ids(&page);
        assert!(
            page_ids.windows(2).all(|w| w[0] < w[1]),
            "ascending within a page"
        );
        if let (Some(&last), Some(&first_seen)) = (page_ids.last(), walked.first()) {
            assert!(last < first_seen, "pages go strictly back in time");
        }
        walked.splice(0..0, page_ids.iter().copied());
        if page["has_more"] != true {
            break;
        }
        let (status, next) = alice
            .get(&format!("{path}?limit=7&before={}", page_ids[0]))
            .await;
        assert_eq!(status, StatusCode::OK);
        page = next;
    }
    writer.await.unwrap();
    let unique: HashSet<u64> = walked.iter().copied().collect();
    assert_eq!(unique.len(), walked.len(), "no duplicates");
    assert!(
        stored_before.is_subset(&unique),
        "no gaps: every message stored before the walk was seen"
    );
}
