//! Bad input gets a clear 4xx with the protocol's error body: never a 500,
//! never a dropped connection, never a crashed server.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Server, assert_error};

#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let post = format!("/api/v1/rooms/{room}/messages");
    let json_type = "application/json";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("/api/v1/auth/register", b"{not json".to_vec()),
        ("/api/v1/auth/register", b"".to_vec()),
        ("/api/v1/auth/register", b"[]".to_vec()),
        (
            "/api/v1/auth/register",
            br#"{"username": 5, "password": "password123"}"#.to_vec(),
        ),
        (
            "/api/v1/auth/register",
            br#"{"username": "zed", "password": "password123", "admin": true}"#.to_vec(),
        ),
        ("/api/v1/auth/login", br#"{"username": "alice"}"#.to_vec()),
        (
            "/api/v1/rooms",
            br#"{"name": "x", "visiblity": "private"}"#.to_vec(),
        ),
        ("/api/v1/rooms", br#"{"name": ["x"]}"#.to_vec()),
        (
            "/api/v1/rooms",
            br#"{"name": "x", "member_ids": "1"}"#.to_vec(),
        ),
        (&post, br#"{"content": 42}"#.to_vec()),
        (&post, br#"{"content": "x", "reply_to": -1}"#.to_vec()),
        (&post, b"\xff\xfe".to_vec()),
        ("/api/v1/dms", br#"{"user_id": "12x"}"#.to_vec()),
    ];
    for (path, body) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let answer = alice.raw(Method::POST, path, json_type, body).await;
        assert_error(&answer, 400, "bad_request");
        assert!(
            !shown.is_empty()
                || answer.1["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("JSON"),
            "{shown}"
        );
    }
    let (_, history) = alice.get(&post).await;
    assert_eq!(history["messages"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn any_content_type_is_read_as_json() {
    let server = Server::start();
    let anon = server.client();
    let body = br#"{"username": "curl_user", "password": "password123"}"#.to_vec();
    let (status, answer) = anon
        .raw(
            Method::POST,
            "/api/v1/auth/register",
            "application/x-www-form-urlencoded",
            body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

#[tokio::test]
async fn oversized_bodies_are_too_large() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let huge = json!({"content": "x".repeat(70 * 1024)});
    let answer = alice
        .post(&format!("/api/v1/rooms/{room}/messages"), huge)
        .await;
    assert_error(&answer, 413, "too_large");
    let huge_password = json!({"username": "big", "password": "p".repeat(100 * 1024)});
    assert_error(
        &alice.post("/api/v1/auth/register", huge_password).await,
        413,
        "too_large",
    );
    // Calls whose body may be left out are bounded the same way.
    let (_, bob_id) = server.user("bob").await;
    let huge_reason = json!({"reason": "x".repeat(70 * 1024)});
    for path in [
        "/api/v1/auth/logout".to_owned(),
        format!("/api/v1/admin/users/{bob_id}/ban"),
    ] {
        assert_error(
            &alice.post(&path, huge_reason.clone()).await,
            413,
            "too_large",
        );
    }
    let long_password = json!({"username": "big", "password": "p".repeat(2000)});
    assert_error(
        &alice.post("/api/v1/auth/register", long_password).await,
        400,
        "bad_request",
    );
    // The server is still fine.
    let (status, _) = alice.get("/api/v1/users/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_paths_and_methods() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    assert_error(&alice.get("/api/v1/nope").await, 404, "not_found");
    assert_error(&alice.get("/nope").await, 404, "not_found");
    assert_error(&alice.delete("/api/v1/rooms").await, 405, "bad_request");
    for room in [
        "abc",
        "007",
        "dm:2:1",
        "dm:1",
        "dm:1:2:3",
        "-5",
        "18446744073709551616",
    ] {
        assert_error(
            &alice.get(&format!("/api/v1/rooms/{room}")).await,
            400,
            "bad_request",
        );
        assert_error(
            &alice.get(&format!("/api/v1/rooms/{room}/messages")).await,
            400,
            "bad_request",
        );
    }
}

#[tokio::test]
async fn operational_endpoints() {
    let server = Server::start();
    let anon = server.client();
    let (status, body) = anon.get("/healthz").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = anon.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
}
