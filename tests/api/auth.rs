//! Registration, login and token checks.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{JWT_SECRET, Server, assert_error, signed_token};

#[tokio::test]
async fn register_login_and_me() {
    let server = Server::start();
    let anon = server.client();
    let (status, body) = anon
        .post(
            "/api/v1/auth/register",
            json!({"username": "Alice", "password": "password123", "display_name": " Alice A. "}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = &body["user"];
    assert!(
        user["id"].as_str().unwrap().parse::<u64>().is_ok(),
        "id is a decimal string: {user}"
    );
    assert_eq!(user["username"], "Alice");
    assert_eq!(user["display_name"], "Alice A.");
    assert!(user["created_at"].as_u64().unwrap() > 1_704_067_200_000);
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let me = anon.clone().with_token(body["token"].as_str().unwrap());
    let (status, profile) = me.get("/api/v1/users/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["id"], user["id"]);

    // Login is case-insensitive on the username and issues a working token.
    let (status, login) = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "alice", "password": "password123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["user"]["id"], user["id"]);
    let (status, _) = anon
        .clone()
        .with_token(login["token"].as_str().unwrap())
        .get("/api/v1/users/me")
        .await;
    assert_eq!(status, StatusCode::OK);

    // display_name defaults to the username.
    let (_, bob) = anon
        .post(
            "/api/v1/auth/register",
            json!({"username": "bob", "password": "password123"}),
        )
        .await;
    assert_eq!(bob["user"]["display_name"], "bob");
}

#[tokio::test]
async fn username_and_password_rules() {
    let server = Server::start();
    let anon = server.client();
    let register = |username: String, password: &str| {
        let anon = anon.clone();
        let password = password.to_owned();
        async move {
            anon.post(
                "/api/v1/auth/register",
                json!({"username": username, "password": password}),
            )
            .await
        }
    };
    for bad in [
        "ab",
        &"x".repeat(33),
        "has space",
        "émile",
        "semi;colon",
        "",
    ] {
        assert_error(
            &register(bad.to_owned(), "password123").await,
            400,
            "bad_request",
        );
    }
    for good in ["abc", &"y".repeat(32), "a.b-c_D9"] {
        let (status, body) = register(good.to_owned(), "password123").await;
        assert_eq!(status, StatusCode::CREATED, "{good}: {body}");
    }
    assert_error(
        &register("shortpw".into(), "1234567").await,
        400,
        "bad_request",
    );
    let (status, _) = register("eightpw".into(), "12345678").await;
    assert_eq!(status, StatusCode::CREATED);
    // Unique case-insensitively.
    assert_error(
        &register("ABC".into(), "password123").await,
        409,
        "conflict",
    );
    assert_error(
        &register("A.B-C_d9".into(), "password123").await,
        409,
        "conflict",
    );
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_create_one_user() {
    let server = Server::start();
    let mut tasks = Vec::new();
    for name in ["Carol", "carol", "CAROL", "cArOl", "caroL", "CaRoL"] {
        let anon = server.client();
        tasks.push(tokio::spawn(async move {
            anon.post(
                "/api/v1/auth/register",
                json!({"username": name, "password": "password123"}),
            )
            .await
            .0
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409]);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let server = Server::start();
    server.user("dave").await;
    let anon = server.client();
    let wrong = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "dave", "password": "wrong-password"}),
        )
        .await;
    let unknown = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "nobody", "password": "password123"}),
        )
        .await;
    assert_error(&wrong, 401, "unauthorized");
    assert_eq!(wrong, unknown, "indistinguishable answers");
    let invalid_name = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "x", "password": "password123"}),
        )
        .await;
    assert_eq!(wrong, invalid_name);
}

#[tokio::test]
async fn missing_forged_and_expired_tokens_get_401_everywhere() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let room = alice.create_room("general", "public", &[]).await;
    let message = alice.send(&room, "hello").await;
    let message_id = message["id"].as_str().unwrap();
    let calls: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, "/api/v1/users/me".into(), None),
        (Method::GET, "/api/v1/users?prefix=al".into(), None),
        (Method::GET, format!("/api/v1/users/{alice_id}"), None),
        (
            Method::POST,
            "/api/v1/rooms".into(),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, "/api/v1/rooms".into(), None),
        (Method::GET, format!("/api/v1/rooms/{room}"), None),
        (Method::POST, format!("/api/v1/rooms/{room}/join"), None),
        (Method::POST, format!("/api/v1/rooms/{room}/leave"), None),
        (Method::GET, format!("/api/v1/rooms/{room}/members"), None),
        (
            Method::POST,
            format!("/api/v1/rooms/{room}/members"),
            Some(json!({"user_id": alice_id})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/rooms/{room}/members/{alice_id}"),
            None,
        ),
        (Method::GET, format!("/api/v1/rooms/{room}/messages"), None),
        (
            Method::POST,
            format!("/api/v1/rooms/{room}/messages"),
            Some(json!({"content": "x"})),
        ),
        (
            Method::POST,
            format!("/api/v1/rooms/{room}/read"),
            Some(json!({"message_id": message_id})),
        ),
        (
            Method::POST,
            "/api/v1/dms".into(),
            Some(json!({"user_id": alice_id})),
        ),
    ];
    let forged = signed_token(&alice_id, "some-other-secret-some-other-secret", 3600);
    let expired = signed_token(&alice_id, JWT_SECRET, -3600);
    let cases = [
        (None, "missing bearer token"),
        (Some(forged.as_str()), "invalid token"),
        (Some(expired.as_str()), "token expired"),
        (Some("garbage"), "invalid token"),
    ];
    for (token, message) in cases {
        let client = match token {
            Some(token) => server.client().with_token(token),
            None => server.client(),
        };
        for (method, path, body) in &calls {
            let answer = client.request(method.clone(), path, body.clone()).await;
            assert_error(&answer, 401, "unauthorized");
            assert_eq!(answer.1["error"]["message"], message, "{method} {path}");
        }
    }
    // A token signed with the right secret and still valid works.
    let valid = signed_token(&alice_id, JWT_SECRET, 3600);
    let (status, _) = server
        .client()
        .with_token(&valid)
        .get("/api/v1/users/me")
        .await;
    assert_eq!(status, StatusCode::OK);
    // Nothing above changed the room.
    let (_, history) = alice.get(&format!("/api/v1/rooms/{room}/messages")).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tokens_and_passwords_never_reach_the_log() {
    let server = Server::start();
    let (client, _) = server.user("erin").await;
    let (status, login) = server
        .client()
        .post(
            "/api/v1/auth/login",
            json!({"username": "erin", "password": "password123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    client.get("/api/v1/users/me").await;
    let log = server.log();
    assert!(
        log.contains("user registered"),
        "the log is captured: {log}"
    );
    assert!(!log.contains("password123"));
    assert!(!log.contains(login["token"].as_str().unwrap()));
    assert!(!log.contains(JWT_SECRET));
}
