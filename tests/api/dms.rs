//! Direct-message rooms: only their two users, created on first use.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Server, assert_error, dm_id};

#[tokio::test]
async fn post_dms_creates_the_room_for_both() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (status, room) = alice.post("/api/v1/dms", json!({"user_id": bob_id})).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(room["id"], dm_id(&alice_id, &bob_id));
    assert_eq!(room["kind"], "dm");
    assert_eq!(room["visibility"], "private");
    assert_eq!(room["member_count"], 2);
    // Idempotent, from either side.
    let (_, again) = bob.post("/api/v1/dms", json!({"user_id": alice_id})).await;
    assert_eq!(again, room);
    for client in [&alice, &bob] {
        let (_, list) = client.get("/api/v1/rooms").await;
        assert_eq!(list["rooms"][0]["id"], room["id"]);
        assert_eq!(list["rooms"][0]["role"], "member");
    }
    assert_error(
        &alice
            .post("/api/v1/dms", json!({"user_id": alice_id}))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &alice.post("/api/v1/dms", json!({"user_id": "1234"})).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn the_first_message_creates_a_dm_and_outsiders_are_refused() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (eve, _) = server.user("eve").await;
    let dm = dm_id(&alice_id, &bob_id);
    // A refused first message leaves no room behind.
    let refused = alice
        .post(
            &format!("/api/v1/rooms/{dm}/messages"),
            json!({"content": "psst", "reply_to": "1234"}),
        )
        .await;
    assert_error(&refused, 400, "bad_request");
    let (_, bobs_rooms) = bob.get("/api/v1/rooms").await;
    assert_eq!(bobs_rooms["rooms"], json!([]), "{bobs_rooms}");

    let message = alice.send(&dm, "psst").await;
    assert_eq!(message["room_id"], dm.as_str());
    let (status, history) = bob.get(&format!("/api/v1/rooms/{dm}/messages")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["messages"][0]["content"], "psst");

    // Eve can neither read, send, join, list members, nor even learn whether it exists.
    assert_error(
        &eve.get(&format!("/api/v1/rooms/{dm}")).await,
        403,
        "forbidden",
    );
    assert_error(
        &eve.get(&format!("/api/v1/rooms/{dm}/messages")).await,
        403,
        "forbidden",
    );
    assert_error(
        &eve.get(&format!("/api/v1/rooms/{dm}/members")).await,
        403,
        "forbidden",
    );
    assert_error(
        &eve.post(
            &format!("/api/v1/rooms/{dm}/messages"),
            json!({"content": "hi"}),
        )
        .await,
        403,
        "forbidden",
    );
    assert_error(
        &eve.post_empty(&format!("/api/v1/rooms/{dm}/join")).await,
        403,
        "forbidden",
    );
    assert_error(&eve.get("/api/v1/rooms/dm:1:2").await, 403, "forbidden");

    // Members cannot leave or grow a DM; a DM with oneself is not a room.
    assert_error(
        &alice.post_empty(&format!("/api/v1/rooms/{dm}/leave")).await,
        400,
        "bad_request",
    );
    let (_, carol_id) = server.user("carol").await;
    assert_error(
        &alice
            .post(
                &format!("/api/v1/rooms/{dm}/members"),
                json!({"user_id": carol_id}),
            )
            .await,
        400,
        "bad_request",
    );
    let self_dm = format!("dm:{alice_id}:{alice_id}");
    assert_error(
        &alice.get(&format!("/api/v1/rooms/{self_dm}")).await,
        400,
        "bad_request",
    );
    assert_error(
        &alice
            .post(
                &format!("/api/v1/rooms/{self_dm}/messages"),
                json!({"content": "me"}),
            )
            .await,
        400,
        "bad_request",
    );

    // A DM with a user who does not exist is not created.
    let ghost = dm_id(&alice_id, "1");
    assert_error(
        &alice
            .post(
                &format!("/api/v1/rooms/{ghost}/messages"),
                json!({"content": "x"}),
            )
            .await,
        404,
        "not_found",
    );
}
