//! The gateway's hub under a slow broker, with real gateways on a real
//! Redis: subscription changes wait for Redis, deliveries to rooms already
//! subscribed do not.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cluster::entries_added;
use crate::harness::Server;
use crate::redis_link::RedisLink;
use crate::ws::Ws;
use chat_bus::testing::RedisServer;
use serde_json::json;
use tempfile::TempDir;

const CLUSTER_ENV: &[(&str, &str)] = &[
    ("CHAT_REALTIME__REPLY_TIMEOUT_MS", "3000"),
    ("CHAT_RATES__SEND_PER_SECOND", "100000"),
    ("CHAT_RATES__SEND_BURST", "100000"),
    ("CHAT_RATES__ACTIONS_PER_SECOND", "100000"),
    ("CHAT_RATES__ACTION_BURST", "100000"),
];

fn start(role: &str, dir: &TempDir, redis_url: &str) -> Server {
    start_with(role, dir, redis_url, &[])
}

fn start_with(role: &str, dir: &TempDir, redis_url: &str, extra: &[(&str, &str)]) -> Server {
    let mut env = CLUSTER_ENV.to_vec();
    env.push(("CHAT_REDIS_URL", redis_url));
    env.extend_from_slice(extra);
    Server::start_role(role, dir.path(), &env)
}

/// A router, a persistence worker and a gateway on `redis`, and a link to
/// `redis` for another gateway to reach it through.
fn with_a_link(redis: &RedisServer, dir: &TempDir) -> (RedisLink, [Server; 2], Server) {
    let redis_address: SocketAddr = format!("127.0.0.1:{}", redis.port()).parse().unwrap();
    let link = RedisLink::to(redis_address);
    let roles = [
        start("router", dir, &redis.url()),
        start("persist", dir, &redis.url()),
    ];
    (link, roles, start("gateway", dir, &redis.url()))
}

/// Cuts every subscriber connection to `redis` and holds the gateways
/// behind `link` from coming back (until `link.hold(false)`): what is
/// published meanwhile never reaches them. The gateways reaching Redis
/// directly subscribe again at once (answers come to them that way).
async fn cut_subscribers(redis: &RedisServer, link: &RedisLink) {
    link.hold(true);
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A gateway (test build) that drops every `room_removed` it hears, as a
/// full subscription buffer or a lost pub/sub message would.
const DROP_ROOM_REMOVED: &[(&str, &str)] = &[("CHAT_TEST_DROP_ROOM_REMOVED", "1")];

/// Bob's gateway reaches Redis through a link that stops passing commands
/// while Carol connects there: her SUBSCRIBEs wait, yet Bob keeps getting
/// the messages of his room, which the gateway already listens to. Once
/// Redis answers again, Carol is served too.
#[tokio::test]
async fn a_slow_redis_does_not_stop_deliveries_to_subscribed_rooms() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (link, _roles, gw_direct) = with_a_link(&redis, &dir);
    let gw_slow = start("gateway", &dir, &link.url());

    let (alice, _) = gw_direct.user("alice").await;
    let (bob, bob_id) = gw_direct.user("bob").await;
    let (carol, carol_id) = gw_direct.user("carol").await;
    let bobs_room = alice.create_room("bobs", "private", &[&bob_id]).await;
    let mut carols_rooms = Vec::new();
    for i in 0..3 {
        let room = alice
            .create_room(&format!("carols-{i}"), "private", &[&carol_id])
            .await;
        carols_rooms.push(room);
    }
    let mut bob_ws = Ws::connect(&gw_slow, bob.token()).await;
    alice.send(&bobs_room, "before").await;
    assert_eq!(
        bob_ws.next_of("message").await["message"]["content"],
        "before"
    );

    link.hold(true);
    let (mut carol_ws, ()) = tokio::join!(Ws::connect(&gw_slow, carol.token()), async {
        // Let Carol's connection reach the hub and its SUBSCRIBE the link.
        tokio::time::sleep(Duration::from_millis(500)).await;
        alice.send(&bobs_room, "while redis is slow").await;
        let message = bob_ws.next_of("message").await;
        assert_eq!(message["message"]["content"], "while redis is slow");
        link.hold(false);
    });
    let listed: Vec<&str> = carol_ws.ready["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed.len(),
        carols_rooms.len(),
        "ready: {}",
        carol_ws.ready
    );
    alice.send(&carols_rooms[2], "for carol").await;
    assert_eq!(
        carol_ws.next_of("message").await["message"]["content"],
        "for carol"
    );
}

/// Bob, connected to a second gateway that never hears `room_removed`, is
/// kicked (then, added again, leaves): the next message of the room carries
/// a newer membership version, his gateway re-checks him, withholds the
/// message and tells him the room is gone.
#[tokio::test]
async fn a_removal_whose_event_is_lost_still_stops_deliveries() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _router = start("router", &dir, &redis.url());
    let _persist = start("persist", &dir, &redis.url());
    let gw1 = start("gateway", &dir, &redis.url());
    let gw2 = start_with("gateway", &dir, &redis.url(), DROP_ROOM_REMOVED);
    let (alice, _) = gw1.user("alice").await;
    let (bob, bob_id) = gw1.user("bob").await;
    let room = alice.create_room("lossy", "private", &[]).await;
    let members = format!("/api/v1/rooms/{room}/members");
    for round in 0..2 {
        let (status, body) = alice.post(&members, json!({"user_id": bob_id})).await;
        assert!(status.is_success(), "add bob: {body}");
        let mut bob_ws = Ws::connect(&gw2, bob.token()).await;
        let before = format!("before {round}");
        alice.send(&room, &before).await;
        assert_eq!(
            bob_ws.next_of("message").await["message"]["content"],
            before.as_str(),
            "round {round}: a member hears the room"
        );
        let (status, body) = if round == 0 {
            alice.delete(&format!("{members}/{bob_id}")).await
        } else {
            bob.post_empty(&format!("/api/v1/rooms/{room}/leave")).await
        };
        assert!(status.is_success(), "round {round}: {body}");
        alice.send(&room, &format!("after {round}")).await;
        let after = bob_ws
            .frames_within(
                Duration::from_millis(600),
                &["presence", "room_added", "member_joined", "member_left"],
            )
            .await;
        assert!(
            after.iter().all(|frame| frame["type"] != "message"),
            "round {round}: a removed member hears nothing more: {after:?}"
        );
        assert!(
            after
                .iter()
                .any(|frame| frame["type"] == "room_removed" && frame["room_id"] == room.as_str()),
            "round {round}: the gateway's re-check tells him: {after:?}"
        );
        bob_ws.close().await;
    }
}

/// The race below, on a gateway that also loses every `room_removed`: only
/// the membership version can stop the deliveries.
#[tokio::test]
async fn a_removal_racing_with_an_opening_and_losing_its_event_is_followed() {
    racing_removals(DROP_ROOM_REMOVED).await;
}

/// A member kicked (or leaving) while their connection to another gateway
/// is opening receives nothing more of the room, whichever comes first:
/// the gateway follows the user's membership from before it reads the
/// user's rooms, so a removal in between is not undone by a stale list.
#[tokio::test]
async fn a_removal_racing_with_a_connection_opening_elsewhere_is_followed() {
    racing_removals(&[]).await;
}

async fn racing_removals(gateway_env: &[(&str, &str)]) {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _router = start("router", &dir, &redis.url());
    let _persist = start("persist", &dir, &redis.url());
    let gw1 = start("gateway", &dir, &redis.url());
    let gw2 = start_with("gateway", &dir, &redis.url(), gateway_env);
    let (alice, _) = gw1.user("alice").await;
    let (bob, bob_id) = gw1.user("bob").await;
    let room = alice.create_room("racy", "private", &[]).await;
    let members = format!("/api/v1/rooms/{room}/members");
    for round in 0..6 {
        let (status, body) = alice.post(&members, json!({"user_id": bob_id})).await;
        assert!(status.is_success(), "add bob: {body}");
        // Kicked by the owner on even rounds, leaving on odd ones.
        let removal = async {
            if round % 2 == 0 {
                alice.delete(&format!("{members}/{bob_id}")).await
            } else {
                bob.post_empty(&format!("/api/v1/rooms/{room}/leave")).await
            }
        };
        let (mut bob_ws, (status, body)) = tokio::join!(Ws::connect(&gw2, bob.token()), removal);
        assert!(status.is_success(), "round {round}: {body}");
        let content = format!("after kick {round}");
        alice.send(&room, &content).await;
        let after = bob_ws
            .frames_within(
                Duration::from_millis(400),
                &["presence", "room_added", "room_removed", "member_joined"],
            )
            .await;
        assert!(
            after.iter().all(|frame| frame["type"] != "message"),
            "round {round}: a removed member hears nothing more: {after:?}"
        );
        bob_ws.close().await;
    }
}

/// Bob's gateway misses the announcement of his logout (its subscriber
/// connection is cut, and its way back to Redis held, while he logs out
/// on another gateway): its next reload of the revoked sessions closes his
/// connection there with 4001 all the same.
#[tokio::test]
async fn a_revocation_whose_announcement_is_lost_still_closes_the_connection() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (link, _roles, gw_direct) = with_a_link(&redis, &dir);
    let refresh_every_second = &[("CHAT_REVOCATION_REFRESH_SECS", "1")];
    let gw_cut = start_with("gateway", &dir, &link.url(), refresh_every_second);
    let (bob, _) = gw_direct.user("bob").await;
    let mut bob_ws = Ws::connect(&gw_cut, bob.token()).await;

    cut_subscribers(&redis, &link).await;
    let (status, body) = bob.post_empty("/api/v1/auth/logout").await;
    assert!(status.is_success(), "logout: {body}");
    link.hold(false);

    let code = tokio::time::timeout(Duration::from_secs(5), bob_ws.closed())
        .await
        .expect("the connection is closed within 5 s of the revocation");
    assert_eq!(code, Some(4001));
}

/// Bob's gateway misses the `room_added` of three rooms he joins while its
/// subscriber connection is cut and its way back to Redis held (a room he
/// is added to, one created with him in it, a DM opened to him): once it
/// has subscribed again, it reads his rooms and gives his connection each
/// of them, with the `room_added` it missed, and their messages reach him.
#[tokio::test]
async fn rooms_whose_room_added_was_lost_are_found_once_the_subscription_is_back() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (link, _roles, gw_direct) = with_a_link(&redis, &dir);
    let check_every_second = &[("CHAT_MISSED_ROOMS_CHECK_SECS", "1")];
    let gw_cut = start_with("gateway", &dir, &link.url(), check_every_second);
    let (alice, _) = gw_direct.user("alice").await;
    let (bob, bob_id) = gw_direct.user("bob").await;
    let added_to = alice.create_room("added", "private", &[]).await;
    let mut bob_ws = Ws::connect(&gw_cut, bob.token()).await;

    cut_subscribers(&redis, &link).await;
    let members = format!("/api/v1/rooms/{added_to}/members");
    let (status, body) = alice.post(&members, json!({"user_id": bob_id})).await;
    assert!(status.is_success(), "add bob: {body}");
    let created_with = alice.create_room("created", "private", &[&bob_id]).await;
    let (status, dm) = alice.post("/api/v1/dms", json!({"user_id": bob_id})).await;
    assert!(status.is_success(), "open a dm: {dm}");
    let dm = dm["id"].as_str().unwrap().to_owned();
    link.hold(false);

    let mut found = Vec::new();
    for _ in 0..3 {
        let frame = bob_ws.next_of("room_added").await;
        found.push(frame["room"]["id"].as_str().unwrap().to_owned());
    }
    found.sort();
    let mut joined = vec![added_to.clone(), created_with.clone(), dm.clone()];
    joined.sort();
    assert_eq!(found, joined, "each room found once");
    for room in [&added_to, &created_with, &dm] {
        alice.send(room, &format!("in {room}")).await;
        let message = bob_ws.next_of("message").await;
        assert_eq!(message["message"]["room_id"], room.as_str());
        assert_eq!(message["message"]["content"], format!("in {room}"));
    }
    let more = bob_ws
        .frames_within(Duration::from_secs(2), &["presence", "member_joined"])
        .await;
    assert!(
        more.iter().all(|frame| frame["type"] != "room_added"),
        "told once: {more:?}"
    );
}

/// Bob is added to a room while his connection opens, after it read his
/// rooms and before it went live (a test build waits 1.5 s in between):
/// `ready` does not list the room and the `room_added` went out while the
/// connection could not receive it, so he is told once it is live, and
/// once only; the room's messages reach him.
#[tokio::test]
async fn a_room_given_while_the_connection_opens_is_told_once_it_is_live() {
    let server = Server::start_with(&[("CHAT_TEST_OPENING_DELAY_MS", "1500")]);
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let room = alice.create_room("late", "private", &[]).await;
    let members = format!("/api/v1/rooms/{room}/members");
    let add_while_opening = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        alice.post(&members, json!({"user_id": bob_id})).await
    };
    let (mut bob_ws, (status, body)) =
        tokio::join!(Ws::connect(&server, bob.token()), add_while_opening);
    assert!(status.is_success(), "add bob: {body}");
    let listed = bob_ws.ready["rooms"].as_array().unwrap();
    assert!(
        listed.iter().all(|summary| summary["id"] != room.as_str()),
        "read before the add: {listed:?}"
    );

    let added = bob_ws.next_of("room_added").await;
    assert_eq!(added["room"]["id"], room.as_str());
    alice.send(&room, "welcome").await;
    let message = bob_ws.next_of("message").await;
    assert_eq!(message["message"]["content"], "welcome");
    let more = bob_ws
        .frames_within(Duration::from_secs(1), &["presence", "member_joined"])
        .await;
    assert!(
        more.iter().all(|frame| frame["type"] != "room_added"),
        "told once: {more:?}"
    );
}

/// Entries appended to the inbound streams so far (Redis's own count of
/// each stream's appends, whatever was trimmed since).
fn inbound_appends(redis: &RedisServer) -> u64 {
    let streams = redis.cli(&["--scan", "--pattern", "*inbound*"]);
    streams
        .lines()
        .map(|stream| entries_added(redis, stream))
        .sum()
}

/// A flood of sends stops at the gateway: past the user's action budget
/// they are refused there, each answered `rate_limited`, and never reach
/// the inbound stream (or Redis) to be refused by a router.
#[tokio::test]
async fn a_flood_of_sends_stops_at_the_gateway() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let small_budget = &[
        ("CHAT_RATES__ACTIONS_PER_SECOND", "0.5"),
        ("CHAT_RATES__ACTION_BURST", "20"),
    ];
    let _router = start_with("router", &dir, &redis.url(), small_budget);
    let _persist = start_with("persist", &dir, &redis.url(), small_budget);
    let gw = start_with("gateway", &dir, &redis.url(), small_budget);
    let (mallory, _) = gw.user("mallory").await;
    let room = mallory.create_room("noisy", "public", &[]).await;
    let mut m = Ws::connect(&gw, mallory.token()).await;
    let before = inbound_appends(&redis);
    for i in 0..200 {
        m.send(json!({"type": "send", "ref": format!("s{i}"), "room_id": room, "content": ""}))
            .await;
    }
    let answers = m.frames_within(Duration::from_secs(3), &["presence"]).await;
    let refused: Vec<&str> = answers
        .iter()
        .filter(|f| f["type"] == "error")
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert_eq!(refused.len(), 200, "every send answered: {refused:?}");
    let limited = refused.iter().filter(|c| **c == "rate_limited").count();
    assert!(limited >= 170, "{refused:?}");
    let appended = inbound_appends(&redis) - before;
    assert!(
        appended <= 25,
        "{appended} sends reached the inbound stream"
    );
}
