//! `ops_listen`: the operational endpoints on their own address. There,
//! `/readyz` names what is wrong and `/metrics` is served; the public port
//! keeps `/healthz` and a `/readyz` that says only ready or not ready.

use std::time::Duration;

use chat_bus::testing::RedisServer;
use serde_json::json;

use crate::harness::{Client, Server, assert_error};

/// The operational address the server logged.
fn ops_base(server: &Server) -> String {
    let log = server.log();
    let address = log
        .split("operational endpoints on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no operational address in the log:\n{log}"));
    format!("http://{address}")
}

#[tokio::test]
async fn ops_listen_serves_details_and_metrics_and_the_public_port_only_readiness() {
    let mut redis = RedisServer::start();
    let server = Server::start_with(&[
        ("CHAT_OPS_LISTEN", "127.0.0.1:0"),
        ("CHAT_REDIS_URL", &redis.url()),
    ]);
    let public = server.client();
    let ops = Client::new(ops_base(&server));
    assert_ne!(ops_base(&server), server.base);

    assert_eq!(public.get("/healthz").await.1, json!({"status": "ok"}));
    assert_eq!(ops.get("/healthz").await.1, json!({"status": "ok"}));
    let (status, body) = public.get("/readyz").await;
    assert_eq!((status.as_u16(), body), (200, json!({"status": "ready"})));
    let (status, body) = ops.get("/readyz").await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"status": "ready", "store": "ok", "bus": "ok"}))
    );
    // Metrics only on the operational address.
    assert_error(&public.get("/metrics").await, 404, "not_found");
    let metrics = reqwest::get(format!("{}/metrics", ops_base(&server)))
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    assert!(metrics.text().await.unwrap().contains("chat_build_info"));
    // The API stays on the public port only.
    let (status, _) = public
        .post(
            "/api/v1/auth/register",
            json!({"username": "alice", "password": "password123"}),
        )
        .await;
    assert_eq!(status.as_u16(), 201);
    assert_error(&ops.get("/api/v1/users/me").await, 404, "not_found");

    // Not ready: the reason is on the operational address, not public.
    redis.kill();
    let mut seen = false;
    for _ in 0..50 {
        let (status, body) = public.get("/readyz").await;
        if status.as_u16() == 503 {
            assert_eq!(
                body,
                json!({"error": {"code": "unavailable", "message": "not ready"}})
            );
            let (status, body) = ops.get("/readyz").await;
            assert_error(&(status, body.clone()), 503, "unavailable");
            let detail = body["error"]["message"].as_str().unwrap();
            assert!(detail.contains("bus unreachable"), "{body}");
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the public /readyz never turned not ready");
}

#[tokio::test]
async fn without_ops_listen_the_one_port_serves_everything() {
    let server = Server::start();
    let (status, body) = server.client().get("/readyz").await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"status": "ready", "store": "ok", "bus": "ok"}))
    );
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    assert!(!server.log().contains("operational endpoints on"));
}
