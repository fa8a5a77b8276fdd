//! Sessions, logout, password and profile changes, admins, notices, bans
//! and the audit log (PROTOCOL.md "v1.1 additions"), against the real
//! binary; revocation also across two gateways of a cluster on a real
//! Redis.

use std::process::Command;
use std::time::Duration;

use chat_bus::testing::RedisServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::harness::{Client, Server, assert_error};
use crate::ws::Ws;

/// How soon a revoked session's connections must be closed.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(2);
/// A server whose admin is "root".
const ROOT_IS_ADMIN: &[(&str, &str)] = &[("CHAT_ADMINS", "[\"root\"]")];

/// A login attempt of `username` with `password`, answered as is.
async fn try_login(server: &Server, username: &str, password: &str) -> (StatusCode, Value) {
    server
        .client()
        .post(
            "/api/v1/auth/login",
            json!({"username": username, "password": password}),
        )
        .await
}

/// A new session of `username` (password "password123").
async fn login(server: &Server, username: &str) -> Client {
    let (status, body) = try_login(server, username, "password123").await;
    assert_eq!(status, StatusCode::OK, "login {username}: {body}");
    server.client().with_token(body["token"].as_str().unwrap())
}

/// The connection is closed with 4001 within the revocation deadline.
async fn closed_as_revoked(ws: &mut Ws) {
    let code = tokio::time::timeout(REVOCATION_DEADLINE, ws.closed())
        .await
        .expect("the connection is closed within 2 s of the revocation");
    assert_eq!(code, Some(4001));
}

/// The connection is still open and answering.
async fn still_open(ws: &mut Ws) {
    ws.send(json!({"type": "ping", "ref": "alive"})).await;
    assert_eq!(ws.next_of("pong").await["ref"], "alive");
}

async fn revoked(client: &Client) {
    let answer = client.get("/api/v1/users/me").await;
    assert_error(&answer, 401, "unauthorized");
    assert_eq!(answer.1["error"]["message"], "session revoked");
}

/// The audit events matching `query`, waiting (the log is written in the
/// background) until at least `at_least` are there.
async fn audit(admin: &Client, query: &str, at_least: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = admin.get(&format!("/api/v1/admin/audit?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["events"].as_array().unwrap().len() >= at_least
            || tokio::time::Instant::now() > deadline
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn logout_ends_only_this_session_on_rest_and_websocket() {
    let server = Server::start();
    let (first, _) = server.user("alice").await;
    let second = login(&server, "alice").await;
    let mut ws_first = Ws::connect(&server, first.token()).await;
    let mut ws_second = Ws::connect(&server, second.token()).await;

    let (status, _) = first.post_empty("/api/v1/auth/logout").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closed_as_revoked(&mut ws_first).await;
    revoked(&first).await;
    assert_eq!(
        Ws::open(
            &server,
            Some(first.token()),
            chat_protocol::Codec::Json,
            crate::ws::TokenIn::Header
        )
        .await
        .err(),
        Some(401),
        "a revoked token cannot open a connection"
    );
    let (status, _) = second.get("/api/v1/users/me").await;
    assert_eq!(status, StatusCode::OK, "the other session lives on");
    still_open(&mut ws_second).await;
}

#[tokio::test]
async fn logout_all_ends_every_session() {
    let server = Server::start();
    let (first, _) = server.user("alice").await;
    let second = login(&server, "alice").await;
    let mut ws_second = Ws::connect(&server, second.token()).await;
    let (status, _) = first
        .post("/api/v1/auth/logout", json!({"all": true}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closed_as_revoked(&mut ws_second).await;
    revoked(&first).await;
    revoked(&second).await;
    login(&server, "alice").await;
}

#[tokio::test]
async fn a_password_change_revokes_the_other_sessions() {
    let server = Server::start();
    let (current, _) = server.user("alice").await;
    let other = login(&server, "alice").await;
    let mut ws_other = Ws::connect(&server, other.token()).await;
    let mut ws_current = Ws::connect(&server, current.token()).await;

    let wrong = current
        .post(
            "/api/v1/users/me/password",
            json!({"current_password": "not-it-at-all", "new_password": "new-password-456"}),
        )
        .await;
    assert_error(&wrong, 401, "unauthorized");
    let short = current
        .post(
            "/api/v1/users/me/password",
            json!({"current_password": "password123", "new_password": "x"}),
        )
        .await;
    assert_error(&short, 400, "bad_request");
    still_open(&mut ws_other).await;

    let (status, _) = current
        .post(
            "/api/v1/users/me/password",
            json!({"current_password": "password123", "new_password": "new-password-456"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closed_as_revoked(&mut ws_other).await;
    revoked(&other).await;
    let (status, _) = current.get("/api/v1/users/me").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the session that changed it lives on"
    );
    still_open(&mut ws_current).await;
    let old = try_login(&server, "alice", "password123").await;
    assert_error(&old, 401, "unauthorized");
    let (status, _) = try_login(&server, "alice", "new-password-456").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_display_name_can_be_changed() {
    let server = Server::start();
    let (alice, alice_id) = server.user("alice").await;
    let (status, user) = alice
        .request(
            Method::PATCH,
            "/api/v1/users/me",
            Some(json!({"display_name": "Alice Liddell"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["display_name"], "Alice Liddell");
    assert_eq!(user["id"], alice_id.as_str());
    let (_, me) = alice.get("/api/v1/users/me").await;
    assert_eq!(me["display_name"], "Alice Liddell");
    let empty = alice
        .request(
            Method::PATCH,
            "/api/v1/users/me",
            Some(json!({"display_name": "   "})),
        )
        .await;
    assert_error(&empty, 400, "bad_request");

    // An emoji keeps its selector; the same selector after a letter hides
    // something, and is refused.
    let hearts = "Alice \u{2764}\u{FE0F}";
    let (status, user) = alice
        .request(
            Method::PATCH,
            "/api/v1/users/me",
            Some(json!({ "display_name": hearts })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["display_name"], hearts);
    let hidden = alice
        .request(
            Method::PATCH,
            "/api/v1/users/me",
            Some(json!({"display_name": "Alice\u{FE0F}"})),
        )
        .await;
    assert_error(&hidden, 400, "bad_request");
}

#[tokio::test]
async fn admin_calls_refuse_everyone_else() {
    let server = Server::start_with(ROOT_IS_ADMIN);
    let (bob, _) = server.user("bob").await;
    let (_, carol_id) = server.user("carol").await;
    let refused = [
        bob.post("/api/v1/admin/notice", json!({"content": "hi"}))
            .await,
        bob.post_empty(&format!("/api/v1/admin/users/{carol_id}/ban"))
            .await,
        bob.delete(&format!("/api/v1/admin/users/{carol_id}/ban"))
            .await,
        bob.get("/api/v1/admin/audit").await,
    ];
    for answer in &refused {
        assert_error(answer, 403, "forbidden");
    }
}

#[tokio::test]
async fn notices_reach_every_connection_or_only_the_rooms_members() {
    let server = Server::start_with(ROOT_IS_ADMIN);
    let (root, _) = server.user("root").await;
    let (alice, _) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let room = alice.create_room("lobby", "private", &[]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut a2 = Ws::connect(&server, alice.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    let (status, _) = root
        .post(
            "/api/v1/admin/notice",
            json!({"content": "maintenance at 5"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for ws in [&mut a, &mut a2, &mut b] {
        let notice = ws.next_of("notice").await;
        assert_eq!(notice["content"], "maintenance at 5");
        assert!(notice.get("room_id").is_none());
    }
    let (status, _) = root
        .post(
            "/api/v1/admin/notice",
            json!({"content": "lobby closes", "room_id": room}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for ws in [&mut a, &mut a2] {
        let notice = ws.next_of("notice").await;
        assert_eq!(notice["content"], "lobby closes");
        assert_eq!(notice["room_id"], room.as_str());
    }
    let elsewhere = b
        .frames_within(Duration::from_millis(700), &["presence"])
        .await;
    assert!(
        elsewhere.iter().all(|f| f["type"] != "notice"),
        "a non-member got the room's notice: {elsewhere:?}"
    );
    let missing = root
        .post(
            "/api/v1/admin/notice",
            json!({"content": "x", "room_id": "999999"}),
        )
        .await;
    assert_error(&missing, 404, "not_found");
    let empty = root
        .post("/api/v1/admin/notice", json!({"content": "  "}))
        .await;
    assert_error(&empty, 400, "bad_request");
}

#[tokio::test]
async fn a_banned_user_is_closed_out_and_refused_until_unbanned() {
    let server = Server::start_with(ROOT_IS_ADMIN);
    let (root, _) = server.user("root").await;
    let (bob, bob_id) = server.user("bob").await;
    let mut ws = Ws::connect(&server, bob.token()).await;
    let (status, _) = root
        .post(
            &format!("/api/v1/admin/users/{bob_id}/ban"),
            json!({"reason": "spam"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closed_as_revoked(&mut ws).await;
    revoked(&bob).await;
    let refused = try_login(&server, "bob", "password123").await;
    assert_error(&refused, 403, "forbidden");
    let wrong = try_login(&server, "bob", "not-his-password").await;
    assert_error(&wrong, 401, "unauthorized");
    let (status, _) = root
        .delete(&format!("/api/v1/admin/users/{bob_id}/ban"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    login(&server, "bob").await;
    let unknown = root.post_empty("/api/v1/admin/users/12345/ban").await;
    assert_error(&unknown, 404, "not_found");
}

#[tokio::test]
async fn audit_events_record_who_what_and_from_where() {
    let server = Server::start_with(ROOT_IS_ADMIN);
    let (root, root_id) = server.user("root").await;
    let (bob, bob_id) = server.user("bob").await;
    let failed = try_login(&server, "bob", "secret-guess-1").await;
    assert_error(&failed, 401, "unauthorized");
    login(&server, "bob").await;
    let room = bob.create_room("den", "public", &[]).await;
    root.post_empty(&format!("/api/v1/rooms/{room}/join")).await;
    // The owner deletes someone else's message (over WebSocket, the only
    // way to delete).
    let root_message = root.send(&room, "from root").await;
    let mut ws = Ws::connect(&server, bob.token()).await;
    ws.send(json!({"type": "delete", "room_id": room, "message_id": root_message["id"]}))
        .await;
    ws.next_of("message_deleted").await;
    bob.delete(&format!("/api/v1/rooms/{room}/members/{root_id}"))
        .await;
    root.post("/api/v1/admin/notice", json!({"content": "hello all"}))
        .await;
    // A reason with a terminal escape, to be read in a terminal some day.
    root.post(
        &format!("/api/v1/admin/users/{bob_id}/ban"),
        json!({"reason": " \u{1b}[2Jspam\r\n"}),
    )
    .await;
    root.delete(&format!("/api/v1/admin/users/{bob_id}/ban"))
        .await;
    let again = login(&server, "bob").await;
    again.post_empty("/api/v1/auth/logout").await;

    let kinds = [
        "register",
        "login",
        "login_failed",
        "logout",
        "room_created",
        "member_added",
        "member_removed",
        "notice",
        "ban",
        "unban",
        "message_deleted",
    ];
    let all = audit(&root, "limit=100", 13).await;
    let events = all["events"].as_array().unwrap();
    for kind in &kinds {
        assert!(
            events.iter().any(|e| e["kind"] == *kind),
            "no {kind} event in {all}"
        );
    }
    let ids: Vec<u64> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");

    let failed = audit(&root, "kind=login_failed", 1).await;
    let failed = &failed["events"][0];
    assert_eq!(failed["ip"], "127.0.0.1", "the socket peer: {failed}");
    assert!(
        !failed.to_string().contains("secret-guess-1"),
        "the attempted password is never recorded"
    );
    // The username tried is recorded without its terminal escape.
    try_login(&server, "bo\u{1b}[2Jb", "whatever-1").await;
    let failed = audit(&root, "kind=login_failed", 2).await;
    assert_eq!(failed["events"][0]["detail"], "username bo[2Jb");

    let bans = audit(&root, &format!("kind=ban&user_id={bob_id}"), 1).await;
    let ban = &bans["events"][0];
    assert_eq!(ban["actor_id"], root_id.as_str());
    assert_eq!(ban["target_id"], bob_id.as_str());
    assert_eq!(
        ban["detail"], "[2Jspam",
        "trimmed, without control characters"
    );

    let logins = audit(&root, &format!("kind=login&user_id={bob_id}"), 2).await;
    assert_eq!(logins["events"].as_array().unwrap().len(), 2);
    let page = audit(&root, &format!("kind=login&user_id={bob_id}&limit=1"), 1).await;
    assert_eq!(page["has_more"], true);
    let newest = page["events"][0]["id"].as_str().unwrap();
    let next = audit(
        &root,
        &format!("kind=login&user_id={bob_id}&limit=1&before={newest}"),
        1,
    )
    .await;
    assert_eq!(next["has_more"], false);
    assert_ne!(next["events"][0]["id"], newest);
    // Before a bound past every id, however large, is the newest page.
    for past in ["9223372036854775808", "18446744073709551615"] {
        let query = format!("kind=login&user_id={bob_id}&limit=1&before={past}");
        let page = audit(&root, &query, 1).await;
        assert_eq!(page["events"][0]["id"], newest, "before={past}");
        assert_eq!(page["has_more"], true, "before={past}");
    }

    let bad = root.get("/api/v1/admin/audit?kind=nonsense").await;
    assert_error(&bad, 400, "bad_request");
    let bad = root.get("/api/v1/admin/audit?limit=0").await;
    assert_error(&bad, 400, "bad_request");
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let server = Server::start_with(&[
        ("CHAT_ADMINS", "[\"root\"]"),
        ("CHAT_TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
    ]);
    let (root, _) = server.user("root").await;
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.base))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"username": "nobody", "password": "whatever-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let failed = audit(&root, "kind=login_failed", 1).await;
    assert_eq!(failed["events"][0]["ip"], "203.0.113.7");
}

/// `chatd admin <action> <name>` on the store in `data_dir`.
fn chatd_admin(data_dir: &std::path::Path, action: &str, name: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["admin", action, name])
        .env_clear()
        .env("CHAT_DATA_DIR", data_dir)
        .output()
        .expect("run chatd admin")
}

#[tokio::test]
async fn chatd_admin_grant_makes_an_admin_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[]);
    let (carol, _) = server.user("carol").await;
    let before = carol
        .post("/api/v1/admin/notice", json!({"content": "hi"}))
        .await;
    assert_error(&before, 403, "forbidden");
    let chatd = |action: &str, name: &str| chatd_admin(dir.path(), action, name);
    let granted = chatd("grant", "Carol");
    assert!(granted.status.success(), "{granted:?}");
    assert!(String::from_utf8_lossy(&granted.stdout).contains("is now an admin"));
    let (status, _) = carol
        .post("/api/v1/admin/notice", json!({"content": "hi"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let revoked = chatd("revoke", "carol");
    assert!(revoked.status.success(), "{revoked:?}");
    let after = carol
        .post("/api/v1/admin/notice", json!({"content": "hi"}))
        .await;
    assert_error(&after, 403, "forbidden");
    let unknown = chatd("grant", "nobody");
    assert!(!unknown.status.success(), "an unknown user is an error");
}

#[tokio::test]
async fn admins_named_in_the_configuration_outrank_granted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[("CHAT_ADMINS", "[\"root\", \"ops\"]")]);
    let (root, _) = server.user("root").await;
    let (_, ops_id) = server.user("ops").await;
    let (carol, carol_id) = server.user("carol").await;
    let (dave, dave_id) = server.user("dave").await;
    let (_, bob_id) = server.user("bob").await;
    for name in ["carol", "dave"] {
        let granted = chatd_admin(dir.path(), "grant", name);
        assert!(granted.status.success(), "{granted:?}");
    }
    async fn ban(admin: &Client, target: &str) -> (StatusCode, Value) {
        admin
            .post_empty(&format!("/api/v1/admin/users/{target}/ban"))
            .await
    }

    // A granted admin can ban neither a configured admin nor another
    // granted one, and a configured admin cannot be banned even by another.
    for (admin, target) in [(&carol, &ops_id), (&carol, &dave_id), (&root, &ops_id)] {
        let refused = ban(admin, target).await;
        assert_error(&refused, 403, "forbidden");
    }
    login(&server, "ops").await;
    login(&server, "dave").await;

    // A granted admin bans a user; a configured admin bans a granted one.
    let (status, _) = ban(&dave, &bob_id).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = ban(&root, &carol_id).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    revoked(&carol).await;
    let refused = try_login(&server, "carol", "password123").await;
    assert_error(&refused, 403, "forbidden");
    let refused = try_login(&server, "bob", "password123").await;
    assert_error(&refused, 403, "forbidden");

    // Nor can a granted admin lift the ban on another; a configured one can.
    let carols_ban = format!("/api/v1/admin/users/{carol_id}/ban");
    assert_error(&dave.delete(&carols_ban).await, 403, "forbidden");
    let (status, _) = root.delete(&carols_ban).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    login(&server, "carol").await;
}

#[tokio::test]
async fn revocation_reaches_another_gateway_of_a_cluster() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let nodes = cluster.two_gateways();
    let (gw1, gw2) = (&nodes.gw1, &nodes.gw2);
    let (here, _) = gw1.user("alice").await;
    let there = login(gw2, "alice").await;
    let mut ws_there = Ws::connect(gw2, there.token()).await;
    let (status, _) = here
        .post(
            "/api/v1/users/me/password",
            json!({"current_password": "password123", "new_password": "new-password-456"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closed_as_revoked(&mut ws_there).await;
    revoked(&there).await;
    let (status, _) = here.at(gw2).get("/api/v1/users/me").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the changing session works everywhere"
    );

    // A gateway started after the revocation refuses the token from the
    // start (it loads the outstanding revocations from the store).
    let gw3 = cluster.start("gateway");
    revoked(&there.at(&gw3)).await;
    let (status, _) = here.at(&gw3).post_empty("/api/v1/auth/logout").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    revoked(&here.at(gw1)).await;
    revoked(&here.at(gw2)).await;
}

#[tokio::test]
async fn a_logout_and_a_ban_reach_another_gateway_of_a_cluster() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let _router = cluster.start_with("router", ROOT_IS_ADMIN);
    let _persist = cluster.start_with("persist", ROOT_IS_ADMIN);
    let gw1 = cluster.start_with("gateway", ROOT_IS_ADMIN);
    let gw2 = cluster.start_with("gateway", ROOT_IS_ADMIN);
    let (root, _) = gw1.user("root").await;
    let (bob, bob_id) = gw1.user("bob").await;

    // A logout answered by one gateway closes the session's connection on
    // the other.
    let mut ws_there = Ws::connect(&gw2, bob.token()).await;
    let (status, _) = bob.post_empty("/api/v1/auth/logout").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closed_as_revoked(&mut ws_there).await;
    revoked(&bob.at(&gw2)).await;

    // A ban answered by one gateway closes the user's connections on the
    // other, and logins there are refused.
    let again = login(&gw2, "bob").await;
    let mut ws_there = Ws::connect(&gw2, again.token()).await;
    still_open(&mut ws_there).await;
    let (status, _) = root
        .post(&format!("/api/v1/admin/users/{bob_id}/ban"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closed_as_revoked(&mut ws_there).await;
    revoked(&again).await;
    let refused = try_login(&gw2, "bob", "password123").await;
    assert_error(&refused, 403, "forbidden");
}
