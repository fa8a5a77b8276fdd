//! Outages answered as outages, unknown users as unauthorized: a store or
//! bus that cannot answer closes connections with 1013 and answers REST
//! with 503 `unavailable` and `Retry-After`, never as if the user were
//! unknown; a valid token whose user the store does not know gets 401 on
//! every route (and 4001 on a connection), never 500.

use std::time::Duration;

use chat_bus::testing::RedisServer;
use reqwest::StatusCode;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{JWT_SECRET, Server, assert_error, signed_token};
use crate::ws::Ws;

#[tokio::test]
async fn redis_stopped_while_clients_connect_is_1013_and_503() {
    let mut redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let _router = cluster.start("router");
    let _persist = cluster.start("persist");
    let gw = cluster.start("gateway");
    let (alice, _) = gw.user("alice").await;
    let room = alice.create_room("lobby", "public", &[]).await;
    // Connecting works while Redis is up.
    Ws::connect(&gw, alice.token()).await.close().await;

    redis.kill();
    let code = Ws::closed_before_ready(&gw, alice.token()).await;
    assert_eq!(code, Some(1013), "an outage is 1013, not 1008 unknown user");

    let http = reqwest::Client::new();
    for (path, body) in [
        (
            "/api/v1/rooms".to_owned(),
            json!({"name": "new", "visibility": "public"}),
        ),
        (
            format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "hi"}),
        ),
    ] {
        let response = http
            .post(format!("{}{path}", gw.base))
            .bearer_auth(alice.token())
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{path}: {body}");
    }
}

#[tokio::test]
async fn a_token_for_a_user_the_store_does_not_know_is_401_everywhere() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let room = alice.create_room("lobby", "public", &[]).await;
    // Signed with the server's secret, for a user id nobody has.
    let stranger = signed_token("123456789012345", JWT_SECRET, 3600);
    let client = server.client().with_token(&stranger);
    let calls = [
        (
            "/api/v1/rooms".to_owned(),
            json!({"name": "mine", "visibility": "public"}),
        ),
        ("/api/v1/dms".to_owned(), json!({"user_id": alice_id})),
        (format!("/api/v1/rooms/{room}/join"), json!({})),
        (
            format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "hi"}),
        ),
    ];
    for (path, body) in calls {
        let answer = client.post(&path, body).await;
        assert_error(&answer, 401, "unauthorized");
        assert_eq!(answer.1["error"]["message"], "unknown user", "{path}");
    }
    let answer = client.get("/api/v1/rooms").await;
    assert_error(&answer, 401, "unauthorized");
    assert_eq!(
        Ws::closed_before_ready(&server, &stranger).await,
        Some(4001),
        "a connection is closed as with an invalid token"
    );
    // Nothing reached the room.
    let (_, history) = alice.get(&format!("/api/v1/rooms/{room}/messages")).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 0);
}
