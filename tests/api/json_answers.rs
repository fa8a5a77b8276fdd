//! JSON answers end with a newline, so that a shell prompt after `curl`
//! starts on a line of its own; the body is still the same JSON. Errors
//! carry the protocol's error body, whatever part of the request was bad.

use crate::harness::Server;

#[tokio::test]
async fn json_answers_end_with_a_newline() {
    let server = Server::start();
    let http = reqwest::Client::new();
    for (path, status) in [
        ("/healthz", 200),
        ("/api/v1/rooms", 401),
        ("/no/such/path", 404),
    ] {
        let response = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.ends_with("}\n"), "{path}: {body:?}");
        serde_json::from_str::<serde_json::Value>(&body).expect("still JSON");
    }
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("# TYPE"),
        "text answers are left alone: {metrics:.200}"
    );
}

/// Paths and query strings that cannot be decoded are refused with the
/// protocol's error body, like every other bad input, not with a plain
/// text answer.
#[tokio::test]
async fn undecodable_paths_and_queries_get_the_error_body() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let http = reqwest::Client::new();
    for path in [
        "/api/v1/rooms/%FF/messages",
        "/api/v1/users/%C3%28",
        "/ws?access_token=a&access_token=b",
    ] {
        let response = http
            .get(format!("{}{path}", server.base))
            .bearer_auth(alice.token())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
    }
}
