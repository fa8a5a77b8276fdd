//! Secrets stay secret: a cluster refuses to start without a shared JWT
//! secret, and neither the Redis password nor a token passed as the
//! `access_token` query parameter appears in any log line or in the
//! printed configuration, even at the most verbose level.

use std::process::{Command, Stdio};
use std::time::Duration;

use chat_bus::testing::RedisServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::Server;

const REDIS_PASSWORD: &str = "redis-pw-must-not-leak-7f3a9c";

/// `redis-server` with `requirepass` set, and the URL that logs in to it.
fn redis_with_password() -> (RedisServer, String) {
    let redis = RedisServer::start();
    let status = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string()])
        .args(["CONFIG", "SET", "requirepass", REDIS_PASSWORD])
        .stdout(Stdio::null())
        .status()
        .expect("run redis-cli");
    assert!(status.success(), "redis-cli CONFIG SET requirepass failed");
    let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", redis.port());
    (redis, url)
}

#[test]
fn cluster_roles_refuse_to_start_without_a_jwt_secret() {
    for role in ["serve", "gateway", "router", "persist"] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_chatd"))
            .arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHAT_LISTEN", "127.0.0.1:0")
            .env("CHAT_DATA_DIR", dir.path())
            .env("CHAT_REDIS_URL", "redis://127.0.0.1:1")
            .env("CHAT_LOG_FORMAT", "pretty")
            .stdin(Stdio::null())
            .output()
            .expect("run chatd");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{role} started: {stderr}");
        assert!(
            stderr.contains("needs a JWT secret") && stderr.contains("CHAT_JWT_SECRET"),
            "{role}: {stderr}"
        );
        assert!(
            !dir.path().join("jwt_secret").exists(),
            "{role} generated one"
        );
    }
}

#[test]
fn embedded_serve_still_generates_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[("CHAT_JWT_SECRET", "")]);
    assert!(dir.path().join("jwt_secret").exists());
    server.stop();
}

#[tokio::test]
async fn no_secret_appears_in_logs_or_printed_config() {
    let (_redis, url) = redis_with_password();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(
        dir.path(),
        &[("CHAT_REDIS_URL", &url), ("RUST_LOG", "trace")],
    );
    let (client, _) = server.user("leakcheck").await;
    let token = client.token().to_owned();
    let ws_url = format!(
        "{}/ws?access_token={token}",
        server.base.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.into_client_request().unwrap())
        .await
        .expect("WebSocket upgrade");
    // Something happens on the connection before the logs are read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.close(None).await.ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log();
    server.stop();
    // The paths that handle both secrets did run and log.
    assert!(
        log.contains("connection opened"),
        "the connection was not logged"
    );
    assert!(
        log.contains("Authenticating client"),
        "Redis AUTH was not logged"
    );
    assert!(!log.contains(REDIS_PASSWORD), "the Redis password leaked");
    assert!(!log.contains(&token), "the access token leaked");

    let printed = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .arg("config")
        .env_clear()
        .env("CHAT_REDIS_URL", &url)
        .env("CHAT_JWT_SECRET", crate::harness::JWT_SECRET)
        .env("RUST_LOG", "trace")
        .output()
        .expect("run chatd config");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&printed.stdout),
        String::from_utf8_lossy(&printed.stderr)
    );
    assert!(printed.contains("redis_url"), "{printed}");
    assert!(!printed.contains(REDIS_PASSWORD), "{printed}");
    assert!(!printed.contains(crate::harness::JWT_SECRET), "{printed}");
}

/// The claims of `token` (signed with the test secret), re-signed with
/// `iat` set to `now + iat_offset_secs` or left out.
fn resigned(token: &str, iat_offset_secs: Option<i64>) -> String {
    let key = crate::harness::JWT_SECRET.as_bytes();
    let mut claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(key),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .expect("our own token")
    .claims;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    match iat_offset_secs {
        Some(offset) => claims["iat"] = (now + offset).into(),
        None => {
            claims.as_object_mut().unwrap().remove("iat");
        }
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_must_say_when_they_were_issued_and_not_in_the_future() {
    let server = Server::start();
    let (client, _) = server.user("iatcheck").await;
    let token = client.token().to_owned();
    let with = |token: String| server.client().with_token(&token);
    let (status, _) = with(resigned(&token, Some(-60)))
        .get("/api/v1/users/me")
        .await;
    assert_eq!(status, 200, "a token issued a minute ago is fine");
    let answer = with(resigned(&token, Some(3600)))
        .get("/api/v1/users/me")
        .await;
    crate::harness::assert_error(&answer, 401, "unauthorized");
    let answer = with(resigned(&token, None)).get("/api/v1/users/me").await;
    crate::harness::assert_error(&answer, 401, "unauthorized");
}

#[tokio::test]
async fn a_configured_issuer_and_audience_are_required_of_tokens() {
    let server = Server::start_with(&[("CHAT_JWT_ISSUER", "chat"), ("CHAT_JWT_AUDIENCE", "web")]);
    let (client, _) = server.user("isscheck").await;
    let (status, _) = client.get("/api/v1/users/me").await;
    assert_eq!(status, 200, "its own tokens name both");
    for claim in ["iss", "aud"] {
        let key = crate::harness::JWT_SECRET.as_bytes();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.validate_aud = false;
        let mut claims = jsonwebtoken::decode::<serde_json::Value>(
            client.token(),
            &jsonwebtoken::DecodingKey::from_secret(key),
            &validation,
        )
        .expect("our own token")
        .claims;
        claims[claim] = "someone-else".into();
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap();
        let answer = server
            .client()
            .with_token(&token)
            .get("/api/v1/users/me")
            .await;
        crate::harness::assert_error(&answer, 401, "unauthorized");
    }
}
