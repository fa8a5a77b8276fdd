//! Stored mentions (v1.1): `GET /notifications`, `POST /notifications/read`,
//! `mention_count` in the room list, and the live `notification` frame.

use serde_json::{Value, json};

use crate::harness::{Server, assert_error};
use crate::ws::Ws;

/// The room summary of `room` in `client`'s room list.
async fn summary(client: &crate::harness::Client, room: &str) -> Value {
    let (status, body) = client.get("/api/v1/rooms").await;
    assert_eq!(status, 200, "{body}");
    body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .cloned()
        .unwrap_or_else(|| panic!("room {room} missing from {body}"))
}

#[tokio::test]
async fn an_offline_user_finds_each_mention_stored_and_reading_clears_them() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    // Bob has no connection at all while he is mentioned.
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(alice.send(&room, &format!("@bob ping {n}")).await);
    }
    alice.send(&room, "nobody mentioned").await;

    let (status, body) = bob.get("/api/v1/notifications").await;
    assert_eq!(status, 200, "{body}");
    let notifications = body["notifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 3, "{body}");
    assert_eq!(body["has_more"], false);
    for (notification, message) in notifications.iter().zip(sent.iter().rev()) {
        assert_eq!(notification["kind"], "mention");
        assert_eq!(notification["room_id"], room.as_str());
        assert_eq!(notification["message_id"], message["id"], "newest first");
        assert_eq!(notification["sender_id"], message["sender_id"]);
        assert_eq!(notification["created_at"], message["created_at"]);
        assert_eq!(notification["read"], false);
    }
    assert_eq!(summary(&bob, &room).await["mention_count"], 3);
    assert_eq!(
        summary(&alice, &room).await["mention_count"],
        0,
        "the sender is not mentioned"
    );
    let (_, of_alice) = alice.get("/api/v1/notifications").await;
    assert_eq!(of_alice["notifications"], json!([]));

    // Paging: one at a time, newest first.
    let (_, first) = bob.get("/api/v1/notifications?limit=1").await;
    assert_eq!(first["notifications"][0]["id"], sent[2]["id"]);
    assert_eq!(first["has_more"], true);
    let (_, second) = bob
        .get(&format!(
            "/api/v1/notifications?limit=2&before={}",
            sent[2]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(second["notifications"][0]["id"], sent[1]["id"]);
    assert_eq!(second["notifications"][1]["id"], sent[0]["id"]);
    assert_eq!(second["has_more"], false);
    // Before a bound past every id, however large, is the newest page.
    for past in ["9223372036854775808", "18446744073709551615"] {
        let (_, newest) = bob
            .get(&format!("/api/v1/notifications?limit=1&before={past}"))
            .await;
        assert_eq!(newest["notifications"][0]["id"], sent[2]["id"], "{past}");
        assert_eq!(newest["has_more"], true, "before={past}");
    }

    // Reading up to the second marks the two oldest read.
    let read = bob
        .post(
            "/api/v1/notifications/read",
            json!({"up_to": sent[1]["id"]}),
        )
        .await;
    assert_eq!(read.0, 204, "{}", read.1);
    let (_, body) = bob.get("/api/v1/notifications").await;
    let flags: Vec<&Value> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["read"])
        .collect();
    assert_eq!(flags, [&json!(false), &json!(true), &json!(true)]);
    assert_eq!(summary(&bob, &room).await["mention_count"], 1);

    // Reading the room past the last mention clears the count as well.
    let read = bob
        .post(
            &format!("/api/v1/rooms/{room}/read"),
            json!({"message_id": sent[2]["id"]}),
        )
        .await;
    assert_eq!(read.0, 204, "{}", read.1);
    assert_eq!(summary(&bob, &room).await["mention_count"], 0);
}

#[tokio::test]
async fn bad_notification_requests_are_refused() {
    let server = Server::start();
    let (bob, _) = server.user("bob").await;
    for limit in ["0", "101", "x"] {
        assert_error(
            &bob.get(&format!("/api/v1/notifications?limit={limit}"))
                .await,
            400,
            "bad_request",
        );
    }
    assert_error(
        &bob.post("/api/v1/notifications/read", json!({})).await,
        400,
        "bad_request",
    );
    // An id minted far in the future would mark unwritten ones read.
    let future = ((u64::from(u32::MAX) * 1000) << 22).to_string();
    assert_error(
        &bob.post("/api/v1/notifications/read", json!({"up_to": future}))
            .await,
        400,
        "bad_request",
    );
    let anonymous = server.client();
    assert_error(
        &anonymous.get("/api/v1/notifications").await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn a_live_notification_frame_comes_beside_the_mention() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let mut b1 = Ws::connect(&server, bob.token()).await;
    let mut b2 = Ws::connect(&server, bob.token()).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let message = alice.send(&room, "hey @bob").await;
    for ws in [&mut b1, &mut b2] {
        ws.next_of("mention").await;
        let frame = ws.next_of("notification").await;
        let notification = &frame["notification"];
        assert_eq!(notification["id"], message["id"]);
        assert_eq!(notification["kind"], "mention");
        assert_eq!(notification["room_id"], room.as_str());
        assert_eq!(notification["message_id"], message["id"]);
        assert_eq!(notification["sender_id"], message["sender_id"]);
        assert_eq!(notification["read"], false);
    }
    let frames = a
        .frames_within(std::time::Duration::from_millis(400), &[])
        .await;
    assert!(
        !frames.iter().any(|f| f["type"] == "notification"),
        "not to the sender: {frames:?}"
    );
    // The same notification is stored.
    let (_, body) = bob.get("/api/v1/notifications").await;
    assert_eq!(body["notifications"][0]["id"], message["id"]);
}
