//! Caps on room creation and member adding (router/src/caps.rs): a user
//! who creates rooms or adds members past the caps is refused — 429
//! `rate_limited` with `retry_after_ms` for the per-hour and per-minute
//! caps, 400 `bad_request` naming the limit for the per-call one — each
//! refusal is counted, and other users go on.

use serde_json::{Value, json};

use crate::harness::{Server, assert_error};

/// Small caps, so that a test reaches them quickly.
const SMALL_CAPS: &[(&str, &str)] = &[
    ("CHAT_RATES__ROOMS_CREATED_PER_HOUR", "3"),
    ("CHAT_RATES__MEMBERS_ADDED_PER_MINUTE", "4"),
    ("CHAT_ROOMS__MEMBERS_PER_CALL", "2"),
];

/// `chat_caps_refused_total{cap="<cap>"}` from `/metrics` (0 when absent).
async fn refused(server: &Server, cap: &str) -> f64 {
    server
        .metric(&format!("chat_caps_refused_total{{cap=\"{cap}\"}}"))
        .await
}

fn assert_rate_limited(answer: &(reqwest::StatusCode, Value)) {
    assert_error(answer, 429, "rate_limited");
    assert!(
        answer.1["error"]["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "{}",
        answer.1
    );
}

#[tokio::test]
async fn room_creation_is_capped_per_user_per_hour() {
    let server = Server::start_with(SMALL_CAPS);
    let (mallory, _) = server.user("mallory").await;
    let (bob, _) = server.user("bob").await;
    // A request refused for what it asks costs nothing.
    let unknown_member = json!({"name": "x", "visibility": "public", "member_ids": ["1234"]});
    let answer = mallory.post("/api/v1/rooms", unknown_member).await;
    assert_error(&answer, 400, "bad_request");
    for i in 0..3 {
        mallory
            .create_room(&format!("spam {i}"), "public", &[])
            .await;
    }
    let answer = mallory
        .post(
            "/api/v1/rooms",
            json!({"name": "one too many", "visibility": "public"}),
        )
        .await;
    assert_rate_limited(&answer);
    // Refused rooms are not created.
    let (_, list) = mallory.get("/api/v1/rooms").await;
    assert_eq!(list["rooms"].as_array().map(Vec::len), Some(3), "{list}");
    // Another user's cap is their own.
    bob.create_room("bob's room", "public", &[]).await;
    assert_eq!(refused(&server, "rooms_per_hour").await, 1.0);
}

#[tokio::test]
async fn members_per_call_over_the_limit_are_a_bad_request_naming_it() {
    let server = Server::start_with(SMALL_CAPS);
    let (alice, _) = server.user("alice").await;
    let mut ids = Vec::new();
    for name in ["bob", "carol", "dave"] {
        ids.push(server.user(name).await.1);
    }
    let answer = alice
        .post(
            "/api/v1/rooms",
            json!({"name": "big", "visibility": "public", "member_ids": ids}),
        )
        .await;
    assert_error(&answer, 400, "bad_request");
    let message = answer.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("rooms.members_per_call"), "{message}");
    assert!(message.contains('2'), "{message}");
    assert_eq!(refused(&server, "members_per_call").await, 1.0);
    // At the limit is fine.
    alice
        .create_room("team", "public", &[&ids[0], &ids[1]])
        .await;
}

#[tokio::test]
async fn members_added_are_capped_per_user_per_minute() {
    let server = Server::start_with(SMALL_CAPS);
    let (alice, _) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let mut ids = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        ids.push(server.user(name).await.1);
    }
    // Two by creation, two by adds: the cap of 4.
    let room = alice
        .create_room("team", "public", &[&ids[0], &ids[1]])
        .await;
    let add = |user: &str| {
        let path = format!("/api/v1/rooms/{room}/members");
        let body = json!({"user_id": user});
        let alice = &alice;
        async move { alice.post(&path, body).await }
    };
    for user in &ids[2..4] {
        let (status, body) = add(user).await;
        assert_eq!(status.as_u16(), 204, "{body}");
    }
    assert_rate_limited(&add(&ids[4]).await);
    // Creating a room with members draws on the same cap.
    assert_rate_limited(
        &alice
            .post(
                "/api/v1/rooms",
                json!({"name": "more", "visibility": "public", "member_ids": [ids[4]]}),
            )
            .await,
    );
    let (_, members) = alice.get(&format!("/api/v1/rooms/{room}/members")).await;
    assert!(
        !members.to_string().contains(&format!("\"{}\"", ids[4])),
        "refused member was added: {members}"
    );
    // Bob's adds are his own (joining himself is no add).
    let (status, body) = bob.post_empty(&format!("/api/v1/rooms/{room}/join")).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    let (status, body) = bob
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": ids[4]}),
        )
        .await;
    assert_eq!(status.as_u16(), 204, "{body}");
    assert_eq!(refused(&server, "members_per_minute").await, 2.0);
}

#[tokio::test]
async fn a_refused_call_takes_no_member_tokens() {
    // The members of one call are charged in one bus call, all or none: a
    // creation refused for want of tokens leaves them for a smaller add;
    // an add of a member already there adds nobody and takes no token.
    let server = Server::start_with(SMALL_CAPS);
    let (alice, _) = server.user("alice").await;
    let mut ids = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        ids.push(server.user(name).await.1);
    }
    let room = alice
        .create_room("team", "public", &[&ids[0], &ids[1]])
        .await;
    let path = format!("/api/v1/rooms/{room}/members");
    let (status, body) = alice.post(&path, json!({"user_id": ids[2]})).await;
    assert_eq!(status.as_u16(), 204, "{body}");
    // One token left: two members are refused, and take nothing.
    assert_rate_limited(
        &alice
            .post(
                "/api/v1/rooms",
                json!({"name": "more", "visibility": "public", "member_ids": [ids[3], ids[4]]}),
            )
            .await,
    );
    // Adding a member again adds nobody, and takes nothing either.
    let (status, body) = alice.post(&path, json!({"user_id": ids[0]})).await;
    assert_eq!(status.as_u16(), 204, "{body}");
    let (status, body) = alice.post(&path, json!({"user_id": ids[3]})).await;
    assert_eq!(
        status.as_u16(),
        204,
        "a refusal or a no-op took a token: {body}"
    );
    assert_rate_limited(&alice.post(&path, json!({"user_id": ids[4]})).await);
    assert_eq!(refused(&server, "members_per_minute").await, 2.0);
}
