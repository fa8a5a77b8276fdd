//! Group rooms: create, list, get, join, leave, members, add, kick.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Server, assert_error};

#[tokio::test]
async fn create_list_and_get() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (status, room) = alice
        .post(
            "/api/v1/rooms",
            json!({"name": " general ", "member_ids": [bob_id, bob_id, alice_id]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(room["kind"], "group");
    assert_eq!(room["name"], "general");
    assert_eq!(room["visibility"], "public");
    assert_eq!(room["owner_id"], alice_id.as_str());
    assert_eq!(room["member_count"], 2);
    let room_id = room["id"].as_str().unwrap();

    let (status, list) = bob.get("/api/v1/rooms").await;
    assert_eq!(status, StatusCode::OK);
    let rooms = list["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["id"], room_id);
    assert_eq!(rooms[0]["role"], "member");
    assert_eq!(rooms[0]["unread_count"], 0);
    assert!(rooms[0].get("last_message").is_none());
    let (_, list) = alice.get("/api/v1/rooms").await;
    assert_eq!(list["rooms"][0]["role"], "owner");

    let (status, got) = bob.get(&format!("/api/v1/rooms/{room_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, room);

    assert_error(
        &alice.post("/api/v1/rooms", json!({"name": "  "})).await,
        400,
        "bad_request",
    );
    assert_error(
        &alice
            .post("/api/v1/rooms", json!({"name": "x".repeat(65)}))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &alice
            .post("/api/v1/rooms", json!({"name": "x", "member_ids": ["999"]}))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &alice
            .post(
                "/api/v1/rooms",
                json!({"name": "x", "visibility": "secret"}),
            )
            .await,
        400,
        "bad_request",
    );
    assert_error(&alice.get("/api/v1/rooms/424242").await, 404, "not_found");
}

#[tokio::test]
async fn public_rooms_are_open_private_rooms_are_not() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (carol, carol_id) = server.user("carol").await;
    let public = alice.create_room("lobby", "public", &[]).await;
    let private = alice.create_room("staff", "private", &[]).await;

    // Anyone may see a public room; a private one only its members.
    let (status, _) = carol.get(&format!("/api/v1/rooms/{public}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &carol.get(&format!("/api/v1/rooms/{private}")).await,
        403,
        "forbidden",
    );

    // A non-member learns nothing of the room's members or messages.
    for path in ["members", "messages"] {
        assert_error(
            &carol.get(&format!("/api/v1/rooms/{public}/{path}")).await,
            403,
            "forbidden",
        );
        assert_error(
            &carol.get(&format!("/api/v1/rooms/{private}/{path}")).await,
            403,
            "forbidden",
        );
    }
    let message = alice.send(&public, "members only").await;
    assert_error(
        &carol
            .post(
                &format!("/api/v1/rooms/{public}/messages"),
                json!({"content": "hi"}),
            )
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &carol
            .post(
                &format!("/api/v1/rooms/{public}/read"),
                json!({"message_id": message["id"]}),
            )
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &carol
            .post_empty(&format!("/api/v1/rooms/{public}/leave"))
            .await,
        403,
        "forbidden",
    );

    // Joining: public yes, private no.
    let (status, joined) = carol
        .post_empty(&format!("/api/v1/rooms/{public}/join"))
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["member_count"], 2);
    let (status, again) = carol
        .post_empty(&format!("/api/v1/rooms/{public}/join"))
        .await;
    assert_eq!(
        (status, again["member_count"].clone()),
        (StatusCode::OK, json!(2)),
        "joining twice is a no-op"
    );
    assert_error(
        &carol
            .post_empty(&format!("/api/v1/rooms/{private}/join"))
            .await,
        403,
        "forbidden",
    );
    let (status, history) = carol.get(&format!("/api/v1/rooms/{public}/messages")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["messages"][0]["content"], "members only");

    // Leaving.
    let (status, body) = carol
        .post_empty(&format!("/api/v1/rooms/{public}/leave"))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::NO_CONTENT, serde_json::Value::Null)
    );
    assert_error(
        &carol.get(&format!("/api/v1/rooms/{public}/messages")).await,
        403,
        "forbidden",
    );
    let (_, list) = carol.get("/api/v1/rooms").await;
    assert_eq!(list["rooms"], json!([]));

    // Only the owner or an admin may add to a private room.
    let (status, _) = alice
        .post(
            &format!("/api/v1/rooms/{private}/members"),
            json!({"user_id": carol_id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (dave, dave_id) = server.user("dave").await;
    assert_error(
        &carol
            .post(
                &format!("/api/v1/rooms/{private}/members"),
                json!({"user_id": dave_id}),
            )
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &dave.get(&format!("/api/v1/rooms/{private}")).await,
        403,
        "forbidden",
    );
    // In a public room any member may add.
    carol
        .post_empty(&format!("/api/v1/rooms/{public}/join"))
        .await;
    let (status, _) = carol
        .post(
            &format!("/api/v1/rooms/{public}/members"),
            json!({"user_id": dave_id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = dave.get(&format!("/api/v1/rooms/{public}/messages")).await;
    assert_eq!(status, StatusCode::OK);
    // Adding a member again is a no-op; adding nobody is 404.
    let (status, _) = carol
        .post(
            &format!("/api/v1/rooms/{public}/members"),
            json!({"user_id": dave_id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &carol
            .post(
                &format!("/api/v1/rooms/{public}/members"),
                json!({"user_id": "777"}),
            )
            .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn members_and_kick_rules() {
    let server = Server::start();
    let (owner, owner_id) = server.user("owner").await;
    let (member, member_id) = server.user("member").await;
    let (_other, other_id) = server.user("other").await;
    let room = owner
        .create_room("team", "private", &[&member_id, &other_id])
        .await;

    let (status, body) = member.get(&format!("/api/v1/rooms/{room}/members")).await;
    assert_eq!(status, StatusCode::OK);
    let members = body["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let owner_entry = members
        .iter()
        .find(|m| m["user"]["id"] == owner_id.as_str())
        .unwrap();
    assert_eq!(owner_entry["role"], "owner");
    assert_eq!(owner_entry["user"]["username"], "owner");

    // A plain member may not kick; nobody kicks the owner; kicking oneself is leaving.
    assert_error(
        &member
            .delete(&format!("/api/v1/rooms/{room}/members/{other_id}"))
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &member
            .delete(&format!("/api/v1/rooms/{room}/members/{owner_id}"))
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &owner
            .delete(&format!("/api/v1/rooms/{room}/members/{owner_id}"))
            .await,
        400,
        "bad_request",
    );
    let (status, _) = owner
        .delete(&format!("/api/v1/rooms/{room}/members/{member_id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &member.get(&format!("/api/v1/rooms/{room}/messages")).await,
        403,
        "forbidden",
    );
    assert_error(
        &owner
            .delete(&format!("/api/v1/rooms/{room}/members/{member_id}"))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &owner
            .delete(&format!("/api/v1/rooms/{room}/members/abc"))
            .await,
        400,
        "bad_request",
    );
    assert_error(
        &owner
            .delete(&format!("/api/v1/rooms/999/members/{member_id}"))
            .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn an_owner_who_leaves_hands_the_room_over() {
    let server = Server::start();
    let (owner, _) = server.user("owner").await;
    let (heir, heir_id) = server.user("heir").await;
    let (_, late_id) = server.user("late").await;
    let room = owner.create_room("club", "private", &[&heir_id]).await;
    owner
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": late_id}),
        )
        .await;
    let (status, _) = owner
        .post_empty(&format!("/api/v1/rooms/{room}/leave"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, got) = heir.get(&format!("/api/v1/rooms/{room}")).await;
    assert_eq!(got["owner_id"], heir_id.as_str());
    assert_eq!(got["member_count"], 2);
    let (_, list) = heir.get("/api/v1/rooms").await;
    assert_eq!(list["rooms"][0]["role"], "owner");
    // The new owner has the owner's powers.
    let (status, _) = heir
        .delete(&format!("/api/v1/rooms/{room}/members/{late_id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
