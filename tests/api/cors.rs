//! CORS on the REST API (v1.1): browsers on the allowed origins (and the
//! server's own) get CORS headers, preflight included; others get none.

use reqwest::{Method, StatusCode};

use crate::harness::Server;

const ALLOWED: &str = "https://app.example.com";

/// A preflight for `POST /api/v1/rooms` from `origin`.
async fn preflight(server: &Server, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}/api/v1/rooms", server.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight")
}

fn allow_origin(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn allowed_origins_pass_preflight_and_others_get_no_cors_headers() {
    let server = Server::start_with(&[(
        "CHAT_REALTIME__ALLOWED_ORIGINS",
        "[\"https://app.example.com\"]",
    )]);
    let (alice, _) = server.user("alice").await;

    let answer = preflight(&server, ALLOWED).await;
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(allow_origin(&answer), Some(ALLOWED));
    let methods = answer
        .headers()
        .get("access-control-allow-methods")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");
    let headers = answer
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");

    let answer = preflight(&server, "https://evil.example").await;
    assert_eq!(allow_origin(&answer), None, "no CORS headers for others");
    assert!(
        answer
            .headers()
            .get("access-control-allow-methods")
            .is_none()
    );

    // The actual request from the allowed origin carries the header too.
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v1/users/me", server.base))
        .bearer_auth(alice.token())
        .header("origin", ALLOWED)
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(allow_origin(&answer), Some(ALLOWED));
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v1/users/me", server.base))
        .bearer_auth(alice.token())
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(allow_origin(&answer), None);
}

#[tokio::test]
async fn by_default_only_the_servers_own_origin_is_allowed() {
    let server = Server::start();
    let own = server.base.clone();
    let answer = preflight(&server, &own).await;
    assert_eq!(allow_origin(&answer), Some(own.as_str()));
    let answer = preflight(&server, ALLOWED).await;
    assert_eq!(allow_origin(&answer), None);
}
