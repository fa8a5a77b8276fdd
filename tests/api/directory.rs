//! The room directory (`GET /rooms/public`) and paged member lists with
//! presence (`GET /rooms/{id}/members`), v1.1.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, assert_error};
use crate::ws::Ws;

fn ids(rooms: &Value) -> Vec<String> {
    rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_directory_pages_public_rooms_by_prefix_case_insensitively() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let rust_b = alice
        .create_room("Rust beginners", "public", &[&bob_id])
        .await;
    let rust_a = alice.create_room("rust Async", "public", &[]).await;
    let rust_c = alice.create_room("RUSTY nails", "public", &[]).await;
    let secret = alice.create_room("rust secret", "private", &[]).await;
    alice.create_room("golang", "public", &[]).await;
    let apples = alice.create_room("Äpfel", "public", &[]).await;
    alice
        .post("/api/v1/dms", serde_json::json!({"user_id": bob_id}))
        .await;

    let (status, body) = bob.get("/api/v1/rooms/public?prefix=RuSt").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&body["rooms"]),
        [rust_a.clone(), rust_b.clone(), rust_c.clone()],
        "by lower-cased name; private rooms and DMs absent: {body}"
    );
    assert!(body.get("next_cursor").is_none(), "one page: {body}");
    assert_eq!(body["rooms"][1]["member_count"], 2);
    assert_eq!(body["rooms"][1]["name"], "Rust beginners");
    assert!(!ids(&body["rooms"]).contains(&secret));

    // Two at a time.
    let (_, first) = bob.get("/api/v1/rooms/public?prefix=rust&limit=2").await;
    assert_eq!(ids(&first["rooms"]), [rust_a.clone(), rust_b.clone()]);
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();
    let (status, second) = bob
        .get(&format!(
            "/api/v1/rooms/public?prefix=rust&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(ids(&second["rooms"]), [rust_c.as_str()]);
    assert!(second.get("next_cursor").is_none());

    // Capitals beyond ASCII too ("äP", percent-encoded).
    let (status, body) = bob.get("/api/v1/rooms/public?prefix=%C3%A4P").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body["rooms"]), [apples.as_str()], "{body}");

    // No prefix: every public group room.
    let (_, all) = bob.get("/api/v1/rooms/public").await;
    assert_eq!(all["rooms"].as_array().unwrap().len(), 5, "{all}");

    for bad in ["limit=0", "limit=101", "cursor=nonsense", "limit=x"] {
        assert_error(
            &bob.get(&format!("/api/v1/rooms/public?{bad}")).await,
            400,
            "bad_request",
        );
    }
    assert_error(
        &server.client().get("/api/v1/rooms/public").await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn members_are_paged_with_their_presence() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let mut member_ids = Vec::new();
    let mut clients = Vec::new();
    for name in ["bob", "carol", "dave", "erin"] {
        let (client, id) = server.user(name).await;
        member_ids.push(id);
        clients.push(client);
    }
    let refs: Vec<&str> = member_ids.iter().map(String::as_str).collect();
    let room = alice.create_room("team", "public", &refs).await;
    // Carol is online; the others are not.
    let _carol = Ws::connect(&server, clients[1].token()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut walked: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/rooms/{room}/members?limit=2&cursor={c}"),
            None => format!("/api/v1/rooms/{room}/members?limit=2"),
        };
        let (status, body) = alice.get(&path).await;
        assert_eq!(status, 200, "{body}");
        let members = body["members"].as_array().unwrap();
        assert!(members.len() <= 2);
        walked.extend(members.iter().cloned());
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3, "5 members, 2 a page");
    let mut expected: Vec<String> = member_ids.clone();
    expected.push(alice_id.clone());
    expected.sort_by_key(|id| id.parse::<u64>().unwrap());
    let walked_ids: Vec<String> = walked
        .iter()
        .map(|m| m["user"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(walked_ids, expected, "each member once, by id");
    for member in &walked {
        let id = member["user"]["id"].as_str().unwrap();
        assert_eq!(
            member["online"],
            id == member_ids[1],
            "only carol is online: {member}"
        );
        let role = if id == alice_id { "owner" } else { "member" };
        assert_eq!(member["role"], role);
    }

    // The default page holds everyone.
    let (_, body) = alice.get(&format!("/api/v1/rooms/{room}/members")).await;
    assert_eq!(body["members"].as_array().unwrap().len(), 5);
    assert!(body.get("next_cursor").is_none());
    // Nobody comes after a cursor past every id, however large.
    for past in ["9223372036854775807", "18446744073709551615"] {
        let (status, body) = alice
            .get(&format!("/api/v1/rooms/{room}/members?cursor={past}"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["members"], json!([]), "cursor={past}");
        assert!(body.get("next_cursor").is_none(), "cursor={past}");
    }
    for bad in ["limit=0", "limit=1001", "cursor=abc"] {
        assert_error(
            &alice
                .get(&format!("/api/v1/rooms/{room}/members?{bad}"))
                .await,
            400,
            "bad_request",
        );
    }
}
