//! `typing` (v1.1 rule): the throttle applies to `typing: true` only;
//! `typing: false` always reaches the others.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Server;
use crate::ws::Ws;

#[tokio::test]
async fn typing_false_right_after_true_reaches_the_others() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("general", "public", &[&bob_id]).await;
    let mut a = Ws::connect(&server, alice.token()).await;
    let mut b = Ws::connect(&server, bob.token()).await;
    // All within the 2 s interval: true, true (dropped), false, false.
    for typing in [true, true, false, false] {
        a.send(json!({"type": "typing", "room_id": room, "typing": typing}))
            .await;
    }
    let seen = b
        .frames_within(Duration::from_millis(800), &["presence"])
        .await;
    let typing: Vec<&Value> = seen
        .iter()
        .filter(|f| f["type"] == "typing")
        .map(|f| &f["typing"])
        .collect();
    assert_eq!(
        typing,
        [&json!(true), &json!(false), &json!(false)],
        "the second true is throttled, no false is: {seen:?}"
    );
    // And a `true` is still throttled after the falses.
    a.send(json!({"type": "typing", "room_id": room, "typing": true}))
        .await;
    let seen = b
        .frames_within(Duration::from_millis(500), &["presence"])
        .await;
    assert!(
        seen.iter().all(|f| f["type"] != "typing"),
        "still within 2 s of the first true: {seen:?}"
    );
}
