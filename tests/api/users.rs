//! User lookup and search.

use reqwest::StatusCode;

use crate::harness::{Server, assert_error};

#[tokio::test]
async fn search_by_prefix_case_insensitively() {
    let server = Server::start();
    let (me, _) = server.user("alice").await;
    for name in ["Albert", "alfred", "ALMA", "bob", "al_x", "al%"] {
        if name != "al%" {
            server.user(name).await;
        }
    }
    let (status, body) = me.get("/api/v1/users?prefix=AL").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["al_x", "Albert", "alfred", "alice", "ALMA"]);
    let (_, body) = me.get("/api/v1/users?prefix=al&limit=2").await;
    assert_eq!(body["users"].as_array().unwrap().len(), 2);
    // '_' and '%' are literal, not wildcards.
    let (_, body) = me.get("/api/v1/users?prefix=al_").await;
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    let (_, body) = me.get("/api/v1/users?prefix=al%25").await;
    assert_eq!(body["users"].as_array().unwrap().len(), 0);
    let (_, body) = me.get("/api/v1/users?prefix=zz").await;
    assert_eq!(body["users"], serde_json::json!([]));
    let (_, body) = me.get("/api/v1/users").await;
    assert_eq!(body["users"].as_array().unwrap().len(), 6);
    assert_error(
        &me.get("/api/v1/users?prefix=a&limit=0").await,
        400,
        "bad_request",
    );
    assert_error(
        &me.get("/api/v1/users?prefix=a&limit=51").await,
        400,
        "bad_request",
    );
    assert_error(
        &me.get("/api/v1/users?prefix=a&limit=x").await,
        400,
        "bad_request",
    );
}

#[tokio::test]
async fn user_by_id_carries_presence_fields() {
    let server = Server::start();
    let (me, _) = server.user("alice").await;
    let (_, bob_id) = server.user("bob").await;
    let (status, bob) = me.get(&format!("/api/v1/users/{bob_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bob["username"], "bob");
    assert_eq!(bob["online"], false);
    assert_error(&me.get("/api/v1/users/12345").await, 404, "not_found");
    assert_error(&me.get("/api/v1/users/bob").await, 400, "bad_request");
}
