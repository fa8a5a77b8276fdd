//! Roles as units: a process starts only what its roles need, a role that
//! panics takes the process down (not ready, non-zero exit) instead of
//! leaving it running without the role, and a node can be started and
//! stopped in-process through the library as well as through the binary.

use std::time::{Duration, Instant};

use chat_bus::testing::RedisServer;
use reqwest::StatusCode;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Client, JWT_SECRET, Server, assert_error};

/// The names of a live process's threads.
fn thread_names(server: &Server) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("/proc");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// Polls `/readyz` until it answers 503 or nothing answers any more (the
/// process is gone); answers which of the two it saw.
async fn readyz_until_not_ready(base: &str) -> &'static str {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match http.get(format!("{base}/readyz")).send().await {
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                return "503";
            }
            Ok(response) => assert_eq!(response.status(), StatusCode::OK),
            Err(error) if error.is_connect() => return "gone",
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/readyz stayed ready although a role task panicked");
}

/// Starts `server`'s process with one role task made to panic (a debug-build
/// test hook) and checks the process reports it, becomes not ready and
/// exits non-zero.
async fn panics_take_the_process_down(mut server: Server, task: &str) {
    let seen = readyz_until_not_ready(&server.base).await;
    let status = tokio::task::block_in_place(|| server.wait_for_exit(Duration::from_secs(40)))
        .unwrap_or_else(|| panic!("still running after {task} panicked:\n{}", server.log()));
    assert_eq!(
        status.code(),
        Some(1),
        "exit status ({seen}):\n{}",
        server.log()
    );
    let (role, name) = task.split_once('/').unwrap();
    let log = server.log();
    assert!(
        log.contains(&format!("{role} task {name} panicked")),
        "the log names the task:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_router_task_makes_serve_not_ready_and_exit_non_zero() {
    let task = "router/inbound consumer";
    let server = Server::start_with(&[("CHATD_TEST_PANIC_TASK", task)]);
    panics_take_the_process_down(server, task).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_persistence_writer_stops_its_cluster_process() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let _router = cluster.start("router");
    let task = "persist/writer";
    let persist = cluster.start_with("persist", &[("CHATD_TEST_PANIC_TASK", task)]);
    panics_take_the_process_down(persist, task).await;
}

#[tokio::test]
async fn a_process_starts_only_what_its_roles_need() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let persist = cluster.start("persist");
    let router = cluster.start("router");
    let gateway = cluster.start("gateway");
    // A registration proves the gateway hashes; the others never start the
    // hashing threads.
    gateway.user("alice").await;
    let hashing = |server: &Server| {
        thread_names(server)
            .iter()
            .any(|name| name.starts_with("argon2"))
    };
    assert!(hashing(&gateway), "{:?}", thread_names(&gateway));
    assert!(!hashing(&persist), "{:?}", thread_names(&persist));
    assert!(!hashing(&router), "{:?}", thread_names(&router));
    let started = |server: &Server, what: &str| server.log().contains(what);
    assert!(started(&persist, "persistence writer started"));
    assert!(!started(&persist, "router started"));
    assert!(started(&router, "router started"));
    assert!(!started(&router, "persistence writer started"));
    assert!(!started(&gateway, "persistence writer started"));
    assert!(!started(&gateway, "router started"));
}

/// A node of every role on a free port, started through the library.
async fn in_process_node(data_dir: &std::path::Path) -> chatd::Node {
    let config = chatd::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        jwt_secret: Some(JWT_SECRET.to_owned()),
        ..chatd::config::Config::default()
    };
    chatd::Node::start(config, chatd::cli::Role::ALL)
        .await
        .expect("node started")
}

#[tokio::test]
async fn a_node_started_in_process_serves_and_stops_through_its_handle() {
    let dir = tempfile::tempdir().unwrap();
    let node = in_process_node(dir.path()).await;
    let address = node.address();
    let anonymous = Client::new(format!("http://{address}"));
    let (status, body) = anonymous
        .post(
            "/api/v1/auth/register",
            json!({"username": "alice", "password": "password123"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alice = anonymous.with_token(body["token"].as_str().unwrap());
    let room = alice.create_room("general", "public", &[]).await;
    let sent = alice.send(&room, "hello from the library").await;
    let (status, history) = alice
        .get(&format!("/api/v1/rooms/{room}/messages?limit=10"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["messages"][0]["id"], sent["id"]);

    node.stop().await.expect("a clean stop");
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the port is closed once the node has stopped"
    );
    // What was sent was flushed: the next node on the directory has it.
    let node = in_process_node(dir.path()).await;
    let again = Client::new(format!("http://{}", node.address())).with_token(alice.token());
    let (_, history) = again
        .get(&format!("/api/v1/rooms/{room}/messages?limit=10"))
        .await;
    assert_eq!(history["messages"][0]["content"], "hello from the library");
    node.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_failed_role_turns_readyz_503_and_the_stop_into_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = in_process_node(dir.path()).await;
    let client = Client::new(format!("http://{}", node.address()));
    assert_eq!(client.get("/readyz").await.0, StatusCode::OK);
    node.supervisor()
        .fail("router task inbound consumer panicked: test");
    assert_error(&client.get("/readyz").await, 503, "unavailable");
    // Liveness is another question: the process still answers until it stops.
    assert_eq!(client.get("/healthz").await.0, StatusCode::OK);
    let stopped = node.stop().await;
    assert!(stopped.is_err(), "a failed node stops with an error");
}
