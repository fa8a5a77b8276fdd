//! Room size (v1.1): `max_members` on `POST /rooms`, 409 "room is full" on
//! join and add, and concurrent joins that never exceed it.

use serde_json::json;

use crate::harness::{Server, assert_error};

#[tokio::test]
async fn joining_or_adding_past_max_members_is_a_conflict() {
    let server = Server::start_with(&[
        ("CHAT_ROOMS__MAX_MEMBERS_CAP", "50"),
        ("CHAT_ROOMS__DEFAULT_MAX_MEMBERS", "40"),
    ]);
    let (alice, _) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let (carol, carol_id) = server.user("carol").await;
    let (status, room) = alice
        .post("/api/v1/rooms", json!({"name": "duo", "max_members": 2}))
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["max_members"], 2);
    let id = room["id"].as_str().unwrap().to_owned();

    let (status, joined) = bob.post_empty(&format!("/api/v1/rooms/{id}/join")).await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["member_count"], 2);
    let full = carol.post_empty(&format!("/api/v1/rooms/{id}/join")).await;
    assert_error(&full, 409, "conflict");
    assert!(
        full.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("room is full"),
        "{}",
        full.1
    );
    assert_error(
        &alice
            .post(
                &format!("/api/v1/rooms/{id}/members"),
                json!({"user_id": carol_id}),
            )
            .await,
        409,
        "conflict",
    );
    let (_, room) = alice.get(&format!("/api/v1/rooms/{id}")).await;
    assert_eq!(room["member_count"], 2);

    // A place comes free.
    let left = bob.post_empty(&format!("/api/v1/rooms/{id}/leave")).await;
    assert_eq!(left.0, 204, "{}", left.1);
    let (status, _) = carol.post_empty(&format!("/api/v1/rooms/{id}/join")).await;
    assert_eq!(status, 200);

    // Out of range, or more initial members than places: 400.
    for max in [json!(1), json!(51), json!(0), json!("x")] {
        assert_error(
            &alice
                .post("/api/v1/rooms", json!({"name": "bad", "max_members": max}))
                .await,
            400,
            "bad_request",
        );
    }
    let (_, bob_id) = server.user("bob2").await;
    assert_error(
        &alice
            .post(
                "/api/v1/rooms",
                json!({"name": "crowd", "max_members": 2, "member_ids": [bob_id, carol_id]}),
            )
            .await,
        400,
        "bad_request",
    );
    // Without max_members a room takes the server's default (absent).
    let (_, plain) = alice.post("/api/v1/rooms", json!({"name": "plain"})).await;
    assert!(plain.get("max_members").is_none(), "{plain}");
}

#[tokio::test]
async fn concurrent_joins_never_exceed_max_members() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (status, room) = alice
        .post("/api/v1/rooms", json!({"name": "tiny", "max_members": 3}))
        .await;
    assert_eq!(status, 201, "{room}");
    let id = room["id"].as_str().unwrap().to_owned();
    let mut joiners = Vec::new();
    for n in 0..8 {
        joiners.push(server.user(&format!("joiner{n}")).await.0);
    }
    let joins = joiners.iter().map(|client| {
        let path = format!("/api/v1/rooms/{id}/join");
        async move { client.post_empty(&path).await }
    });
    let answers = futures_util::future::join_all(joins).await;
    let joined = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused = answers
        .iter()
        .filter(|(status, body)| *status == 409 && body["error"]["code"] == "conflict")
        .count();
    assert_eq!(joined, 2, "two free places: {answers:?}");
    assert_eq!(refused, 6, "{answers:?}");
    let (_, room) = alice.get(&format!("/api/v1/rooms/{id}")).await;
    assert_eq!(room["member_count"], 3);
}
