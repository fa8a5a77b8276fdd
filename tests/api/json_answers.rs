//! JSON answers end with a newline, so that a shell prompt after `curl`
//! starts on a line of its own; the body is still the same JSON.

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
