//! `runtime_threads`: the async runtime gets the worker threads asked for
//! (as `chat_runtime_threads` reports), tokio's one per CPU by default, and
//! a process on one thread still delivers what it is sent.

use crate::harness::Server;
use crate::ws::Ws;

#[tokio::test]
async fn the_runtime_has_the_threads_asked_for() {
    let server = Server::start_with(&[("CHAT_RUNTIME_THREADS", "3")]);
    assert_eq!(server.metric("chat_runtime_threads").await, 3.0);
}

#[tokio::test]
async fn by_default_the_runtime_has_one_thread_per_cpu() {
    let server = Server::start();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(server.metric("chat_runtime_threads").await, cpus as f64);
}

#[tokio::test]
async fn one_thread_serves_rest_and_websocket() {
    let server = Server::start_with(&[("CHAT_RUNTIME_THREADS", "1")]);
    assert_eq!(server.metric("chat_runtime_threads").await, 1.0);
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("one-thread", "private", &[&bob_id]).await;
    let mut listener = Ws::connect(&server, bob.token()).await;
    let sent = alice.send(&room, "on one thread").await;
    let heard = listener.next_of("message").await;
    assert_eq!(heard["message"]["id"], sent["id"], "{heard}");
    assert_eq!(heard["message"]["content"], "on one thread");
}
