//! What the server stored is still there after a restart, graceful or not.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Client, Server, UNTHROTTLED};

/// Everything a client can see of the state of two users.
async fn snapshot(alice: &Client, bob: &Client, room: &str, dm: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for client in [alice, bob] {
        seen.push(client.get("/api/v1/users/me").await.1);
        seen.push(client.get("/api/v1/rooms").await.1);
    }
    seen.push(alice.get(&format!("/api/v1/rooms/{room}")).await.1);
    seen.push(alice.get(&format!("/api/v1/rooms/{room}/members")).await.1);
    seen.push(
        alice
            .get(&format!("/api/v1/rooms/{room}/messages?limit=100"))
            .await
            .1,
    );
    seen.push(bob.get(&format!("/api/v1/rooms/{dm}/messages")).await.1);
    seen.push(alice.get("/api/v1/users?prefix=").await.1);
    seen
}

#[tokio::test]
async fn state_survives_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), UNTHROTTLED);
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (_, carol_id) = server.user("carol").await;
    let room = alice
        .create_room("general", "private", &[&bob_id, &carol_id])
        .await;
    let mut last = Value::Null;
    for i in 0..30 {
        last = alice.send(&room, &format!("@bob message {i}")).await;
    }
    bob.post(
        &format!("/api/v1/rooms/{room}/read"),
        json!({"message_id": last["id"]}),
    )
    .await;
    alice
        .delete(&format!("/api/v1/rooms/{room}/members/{carol_id}"))
        .await;
    let (_, dm) = bob.post("/api/v1/dms", json!({"user_id": carol_id})).await;
    let dm = dm["id"].as_str().unwrap().to_owned();
    bob.send(&dm, "hi carol").await;
    let before = snapshot(&alice, &bob, &room, &dm).await;
    assert_eq!(
        before[3]["rooms"].as_array().unwrap().len(),
        2,
        "bob sees the room and the DM"
    );

    assert!(server.stop().success(), "a graceful stop exits 0");
    let server = Server::start_in(dir.path(), UNTHROTTLED);
    // The same tokens still work: the secret is configuration, the users are stored.
    let (alice, bob) = (alice.at(&server), bob.at(&server));
    let after = snapshot(&alice, &bob, &room, &dm).await;
    assert_eq!(before, after);
    let (status, login) = server
        .client()
        .post(
            "/api/v1/auth/login",
            json!({"username": "carol", "password": "password123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
}

#[tokio::test]
async fn acknowledged_messages_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), UNTHROTTLED);
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let alice = alice.clone();
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            alice.send(&room, &format!("m{i}")).await
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.push(task.await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    server.kill();
    let server = Server::start_in(dir.path(), UNTHROTTLED);
    let alice = alice.at(&server);
    let (_, history) = alice
        .get(&format!("/api/v1/rooms/{room}/messages?limit=100"))
        .await;
    let stored: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    acked.sort_by_key(|id| id.parse::<u64>().unwrap());
    assert_eq!(stored, acked);
}

/// A restarted server has forgotten the `client_id`s it saw (the embedded
/// state lives in memory) and finds them in the store: not only the first
/// retry after the restart but every later one gets the original message,
/// and nothing is stored twice.
#[tokio::test]
async fn client_ids_stay_idempotent_across_a_restart_for_every_retry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), UNTHROTTLED);
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let path = format!("/api/v1/rooms/{room}/messages");
    let post = json!({"content": "once", "client_id": "retry-me"});
    let (status, original) = alice.post(&path, post.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{original}");
    server.kill();

    let server = Server::start_in(dir.path(), UNTHROTTLED);
    let alice = alice.at(&server);
    for retry in 1..=3 {
        let (status, answer) = alice.post(&path, post.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "retry {retry}: {answer}");
        assert_eq!(answer["id"], original["id"], "retry {retry}");
    }
    let (_, history) = alice.get(&path).await;
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
}
