//! Cluster mode: gateways, routers and persistence workers as separate
//! processes, cooperating through a real Redis (started here on a free
//! port), sharing one SQLite file. Each test kills or restarts something
//! and checks what clients see.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use chat_bus::testing::{RedisCluster, RedisServer, ServerOptions};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::harness::{Client, Server};
use crate::redis_link::RedisLink;
use crate::ws::Ws;

/// A cluster of role processes on one Redis and one data directory.
pub struct Cluster {
    redis_url: String,
    cluster_mode: bool,
    dir: TempDir,
    /// Settings every process of the cluster gets (they must agree).
    env: Vec<(&'static str, &'static str)>,
}

/// Short timings so failures are detected within a test's patience.
const TIMINGS: &[(&str, &str)] = &[
    ("CHAT_REALTIME__PARTITION_LEASE_MS", "1500"),
    ("CHAT_REALTIME__PRESENCE_TTL_MS", "1500"),
    ("CHAT_REALTIME__REPLY_TIMEOUT_MS", "3000"),
    ("CHAT_RATES__SEND_PER_SECOND", "100000"),
    ("CHAT_RATES__SEND_BURST", "100000"),
    ("CHAT_RATES__ACTIONS_PER_SECOND", "100000"),
    ("CHAT_RATES__ACTION_BURST", "100000"),
];

impl Cluster {
    pub fn on(redis_url: String, cluster_mode: bool) -> Cluster {
        Cluster {
            redis_url,
            cluster_mode,
            dir: tempfile::tempdir().unwrap(),
            env: Vec::new(),
        }
    }

    /// The same cluster with a setting every one of its processes gets.
    pub fn with(mut self, key: &'static str, value: &'static str) -> Cluster {
        self.env.push((key, value));
        self
    }

    pub fn start(&self, role: &str) -> Server {
        self.start_with(role, &[])
    }

    /// `start`, with extra environment variables.
    pub fn start_with(&self, role: &str, extra: &[(&str, &str)]) -> Server {
        let mut env: Vec<(&str, &str)> = TIMINGS.to_vec();
        env.extend_from_slice(&self.env);
        env.push(("CHAT_REDIS_URL", &self.redis_url));
        if self.cluster_mode {
            env.push(("CHAT_REDIS_CLUSTER", "true"));
        }
        // Last, so that they win (a process of its own on another link).
        env.extend_from_slice(extra);
        Server::start_role(role, self.dir.path(), &env)
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The usual shape of these tests: one router, one persistence worker
    /// and two gateways.
    pub fn two_gateways(&self) -> TwoGateways {
        TwoGateways {
            _router: self.start("router"),
            _persist: self.start("persist"),
            gw1: self.start("gateway"),
            gw2: self.start("gateway"),
        }
    }
}

/// One router, one persistence worker and two gateways; the processes
/// stop when it drops.
pub struct TwoGateways {
    _router: Server,
    _persist: Server,
    pub gw1: Server,
    pub gw2: Server,
}

fn ids_of(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["message"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// One router, one persistence worker and one gateway on a fresh Redis,
/// and alice connected to that gateway with a public room of hers. The
/// fields drop in order: the connection first, Redis last.
struct OneOfEach {
    ws: Ws,
    room: String,
    alice: Client,
    persist: Server,
    _gateway: Server,
    _router: Server,
    cluster: Cluster,
    _redis: RedisServer,
}

impl OneOfEach {
    async fn start(room_name: &str) -> OneOfEach {
        let redis = RedisServer::start();
        let cluster = Cluster::on(redis.url(), false);
        let router = cluster.start("router");
        let persist = cluster.start("persist");
        let gateway = cluster.start("gateway");
        let (alice, _) = gateway.user("alice").await;
        let room = alice.create_room(room_name, "public", &[]).await;
        let ws = Ws::connect(&gateway, alice.token()).await;
        OneOfEach {
            ws,
            room,
            alice,
            persist,
            _gateway: gateway,
            _router: router,
            cluster,
            _redis: redis,
        }
    }
}

/// Two users on two gateways chat; every message reaches each of their
/// connections exactly once.
async fn two_gateways_chat(cluster: &Cluster) {
    let nodes = cluster.two_gateways();
    let (gw1, gw2) = (&nodes.gw1, &nodes.gw2);
    let (alice, _) = gw1.user("alice").await;
    let (bob, bob_id) = gw2.user("bob").await;
    let room = alice.create_room("across", "public", &[&bob_id]).await;
    let mut a = Ws::connect(gw1, alice.token()).await;
    let mut b = Ws::connect(gw2, bob.token()).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let (ws, who) = if i % 2 == 0 {
            (&mut a, "a")
        } else {
            (&mut b, "b")
        };
        ws.send(json!({"type": "send", "room_id": room, "content": format!("{who}{i}"), "client_id": format!("c{i}")})).await;
        sent.push(
            ws.next_of("ack").await["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for ws in [&mut a, &mut b] {
        let mut seen = Vec::new();
        while seen.len() < sent.len() {
            seen.push(
                ws.next_of("message").await["message"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let extra = ws
            .frames_within(Duration::from_millis(500), &["presence", "ack"])
            .await;
        assert!(ids_of(&extra).is_empty(), "exactly once: extra {extra:?}");
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), sent.len());
        assert_eq!(unique, sent.iter().collect::<HashSet<_>>());
    }
}

#[tokio::test]
async fn users_on_two_gateways_chat_across_them() {
    let redis = RedisServer::start();
    two_gateways_chat(&Cluster::on(redis.url(), false)).await;
}

#[tokio::test]
async fn a_redis_cluster_with_sharded_pubsub_carries_the_same_chat() {
    let redis = RedisCluster::start(3);
    // Partition streams are each their own hash slot, so they spread over
    // the nodes, and a router polls them across slots.
    two_gateways_chat(&Cluster::on(redis.url(), true)).await;
}

/// A connection's `send` into a room its gateway hears is acked from the
/// message's room event: the persistence worker publishes no reply for it
/// (one publish less per gateway and read). A REST send, whose gateway
/// need not hear the room, is still answered by a reply.
#[tokio::test]
async fn a_sends_ack_rides_its_room_event_when_the_gateway_hears_the_room() {
    const REPLIES: &str = "chat_bus_published_total{kind=\"reply\"}";
    let one = OneOfEach::start("acks").await;
    let (mut a, alice, room, persist) = (one.ws, one.alice, one.room, one.persist);
    let before = persist.metric(REPLIES).await;
    for i in 0..20 {
        a.send(json!({"type": "send", "room_id": room, "content": format!("m{i}"), "client_id": format!("c{i}"), "ref": format!("r{i}")})).await;
    }
    for i in 0..20 {
        let ack = a.next_of("ack").await;
        assert_eq!(ack["client_id"], format!("c{i}"), "acked in the order sent");
        assert_eq!(ack["ref"], format!("r{i}"), "the ack echoes the send's ref");
        let message = a.next_of("message").await;
        assert_eq!(message["message"]["id"], ack["message_id"]);
        assert_eq!(message["message"]["created_at"], ack["created_at"]);
    }
    let extra = a
        .frames_within(Duration::from_millis(500), &["presence"])
        .await;
    assert!(extra.is_empty(), "one ack and one message each: {extra:?}");
    assert_eq!(
        persist.metric(REPLIES).await - before,
        0.0,
        "no reply published for sends whose gateway hears the room"
    );

    let posted = alice.send(&room, "over REST").await;
    assert_eq!(posted["content"], "over REST");
    assert_eq!(
        persist.metric(REPLIES).await - before,
        1.0,
        "a REST send is answered by a reply"
    );
    let message = a.next_of("message").await;
    assert_eq!(message["message"]["id"], posted["id"]);
}

/// A `send` right before a `leave`, through a router and a persistence
/// worker of their own (see [`crate::realtime::send_then_leave`]).
#[tokio::test]
async fn a_send_right_before_leaving_the_room_is_still_acked() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let (_router, _persist) = (cluster.start("router"), cluster.start("persist"));
    crate::realtime::send_then_leave(&cluster.start("gateway")).await;
}

/// Sends `count` messages over `ws`, answering how many were acked, by id.
async fn send_all(ws: &mut Ws, room: &str, prefix: &str, count: usize) -> HashSet<String> {
    for i in 0..count {
        ws.send(json!({"type": "send", "room_id": room, "content": format!("{prefix}{i}"), "client_id": format!("{prefix}{i}")})).await;
    }
    let mut acked = HashSet::new();
    while acked.len() < count {
        acked.insert(
            ws.next_of("ack").await["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    acked
}

pub async fn history_ids(client: &Client, room: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(id) => format!("/api/v1/rooms/{room}/messages?limit=100&before={id}"),
            None => format!("/api/v1/rooms/{room}/messages?limit=100"),
        };
        let (_, page) = client.get(&path).await;
        let page_ids: Vec<String> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        before = page_ids.first().cloned();
        ids.splice(0..0, page_ids);
        if page["has_more"] != true {
            return ids;
        }
    }
}

#[tokio::test]
async fn a_killed_persistence_worker_loses_nothing() {
    let one = OneOfEach::start("durable").await;
    let (mut a, alice, room, persist) = (one.ws, one.alice, one.room, one.persist);
    let mut acked = send_all(&mut a, &room, "before", 30).await;
    // Kill it while sends are in flight; they wait, unacked, in the stream.
    for i in 0..30 {
        a.send(json!({"type": "send", "room_id": room, "content": format!("during{i}"), "client_id": format!("during{i}")})).await;
    }
    persist.kill();
    let _persist2 = one.cluster.start("persist");
    while acked.len() < 60 {
        acked.insert(
            a.next_of("ack").await["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let stored = history_ids(&alice, &room).await;
    let unique: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "no duplicates");
    assert_eq!(unique, acked, "every acked message, exactly once");
}

#[tokio::test]
async fn a_killed_router_loses_no_acked_message() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let mut router1 = Some(cluster.start("router"));
    let _router2 = cluster.start("router");
    let _persist = cluster.start("persist");
    let gw = cluster.start("gateway");
    let (alice, _) = gw.user("alice").await;
    let room = alice.create_room("resilient", "public", &[]).await;
    let mut a = Ws::connect(&gw, alice.token()).await;
    for i in 0..40 {
        a.send(json!({"type": "send", "room_id": room, "content": format!("m{i}"), "client_id": format!("k{i}")})).await;
        if i == 20
            && let Some(router) = router1.take()
        {
            router.kill();
        }
    }
    // Whatever was not acked is retried with the same client_id until it is.
    let mut acked: HashSet<String> = HashSet::new();
    let mut acked_keys: HashSet<String> = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked_keys.len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 40 acked",
            acked_keys.len()
        );
        for frame in a.frames_within(Duration::from_secs(4), &["presence"]).await {
            if frame["type"] == "ack" {
                acked.insert(frame["message_id"].as_str().unwrap().to_owned());
                acked_keys.insert(frame["client_id"].as_str().unwrap().to_owned());
            }
        }
        for i in 0..40 {
            let key = format!("k{i}");
            if !acked_keys.contains(&key) {
                a.send(json!({"type": "send", "room_id": room, "content": format!("m{i}"), "client_id": key})).await;
            }
        }
    }
    let stored = history_ids(&alice, &room).await;
    let unique: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "no duplicates");
    assert_eq!(stored.len(), 40, "one message per client_id");
    assert!(acked.is_subset(&unique), "every acked message is stored");
}

/// The router's append of a message to the persist stream reaches Redis
/// and is applied, but its answer is lost (the router's link to Redis cut
/// right after it): the router cannot know, and tells the sender
/// `unavailable`. The message is stored once all the same, its members get
/// it once, and the sender's retry with its `client_id` is acked with the
/// id it was stored under: the claim stood, so nothing is written twice.
#[tokio::test]
async fn an_append_applied_but_unanswered_stores_its_message_once() {
    let redis = RedisServer::start();
    let redis_address = format!("127.0.0.1:{}", redis.port()).parse().unwrap();
    let link = RedisLink::to(redis_address);
    let cluster = Cluster::on(redis.url(), false);
    let _router = cluster.start_with("router", &[("CHAT_REDIS_URL", &link.url())]);
    let _persist = cluster.start("persist");
    let gw = cluster.start("gateway");
    let (alice, _) = gw.user("alice").await;
    let (bob, bob_id) = gw.user("bob").await;
    let room = alice.create_room("cut", "private", &[&bob_id]).await;
    let mut a = Ws::connect(&gw, alice.token()).await;
    let mut b = Ws::connect(&gw, bob.token()).await;
    send_all(&mut a, &room, "before", 1).await;
    b.next_of("message").await;

    // The persist stream's partitions are `persist.<n>`: the router's next
    // append there is the one cut.
    link.cut_after(b"persist.");
    let send = json!({"type": "send", "room_id": room, "content": "once", "client_id": "once"});
    a.send(send.clone()).await;
    // The sender is answered: `unavailable` from the router (or from the
    // gateway, once its reply timeout is over, should the router's answer
    // be lost too), or the persistence worker's ack of what it stored.
    let mut first = Vec::new();
    while !first
        .iter()
        .any(|f: &Value| f["client_id"] == "once" && (f["type"] == "ack" || f["type"] == "error"))
    {
        first.push(a.next_frame().await);
    }
    assert_eq!(link.cuts(), 1, "the append was cut: {first:?}");

    // Retried (as a client does on `unavailable`) until the retry is acked.
    let ack_ids = |frames: &[Value]| -> Vec<String> {
        frames
            .iter()
            .filter(|f| f["type"] == "ack" && f["client_id"] == "once")
            .map(|f| f["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut acks = ack_ids(&first);
    let acked_before_retry = acks.len();
    for _ in 0..10 {
        if acks.len() > acked_before_retry {
            break;
        }
        a.send(send.clone()).await;
        let frames = a
            .frames_within(Duration::from_secs(1), &["presence", "message"])
            .await;
        acks.extend(ack_ids(&frames));
    }
    assert!(acks.len() > acked_before_retry, "the retry is acked");
    let id = acks[0].clone();
    assert!(
        acks.iter().all(|ack| *ack == id),
        "one id for every ack: {acks:?}"
    );

    let (_, page) = alice
        .get(&format!("/api/v1/rooms/{room}/messages?limit=100"))
        .await;
    let stored: Vec<&Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["content"] == "once")
        .collect();
    assert_eq!(stored.len(), 1, "stored once: {page}");
    assert_eq!(stored[0]["id"], id.as_str());
    let heard = b
        .frames_within(Duration::from_secs(1), &["presence", "typing"])
        .await;
    assert_eq!(ids_of(&heard), vec![id], "bob hears it once: {heard:?}");
}

#[tokio::test]
async fn a_killed_gateways_users_go_offline_and_resume_elsewhere() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let nodes = cluster.two_gateways();
    let (gw1, gw2) = (&nodes.gw1, &nodes.gw2);
    let (watcher, _) = gw2.user("watcher").await;
    let (victim, victim_id) = gw1.user("victim").await;
    let room = watcher.create_room("lobby", "public", &[&victim_id]).await;
    let mut w = Ws::connect(gw2, watcher.token()).await;
    let mut v = Ws::connect(gw1, victim.token()).await;
    assert_eq!(w.next_of("presence").await["online"], true);
    let last_seen = watcher.send(&room, "seen").await["id"].clone();
    v.next_of("message").await;
    nodes.gw1.kill();
    let offline = w.next_of("presence").await;
    assert_eq!(
        (offline["user_id"].as_str(), offline["online"].as_bool()),
        (Some(victim_id.as_str()), Some(false))
    );
    let mut missed = Vec::new();
    for i in 0..10 {
        missed.push(watcher.at(gw2).send(&room, &format!("missed {i}")).await["id"].clone());
    }
    let victim = victim.at(gw2);
    let mut v = Ws::connect(gw2, victim.token()).await;
    v.send(json!({"type": "resume", "rooms": {room.clone(): last_seen}}))
        .await;
    let mut replayed = Vec::new();
    loop {
        let frame = v.next_frame().await;
        match frame["type"].as_str() {
            Some("message") => replayed.push(frame["message"]["id"].clone()),
            Some("resumed") => break,
            _ => {}
        }
    }
    assert_eq!(replayed, missed, "no gaps");
}

/// A gateway frozen for longer than the presence time to live: its user
/// goes offline meanwhile. Once it runs again, its next refresh finds the
/// connection expired and opens it again: the user comes back online,
/// still on the same connection, without reconnecting.
#[tokio::test]
async fn a_frozen_gateways_users_come_back_online_when_it_runs_again() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let nodes = cluster.two_gateways();
    let (gw1, gw2) = (&nodes.gw1, &nodes.gw2);
    let (watcher, _) = gw2.user("watcher").await;
    let (sleeper, sleeper_id) = gw1.user("sleeper").await;
    watcher.create_room("lobby", "public", &[&sleeper_id]).await;
    let mut w = Ws::connect(gw2, watcher.token()).await;
    let mut s = Ws::connect(gw1, sleeper.token()).await;
    let presence = |frame: Value| {
        (
            frame["user_id"].as_str().map(str::to_owned),
            frame["online"].as_bool(),
        )
    };
    let sleeper_is = |online: bool| (Some(sleeper_id.clone()), Some(online));
    assert_eq!(presence(w.next_of("presence").await), sleeper_is(true));

    gw1.pause();
    assert_eq!(presence(w.next_of("presence").await), sleeper_is(false));
    gw1.resume();
    assert_eq!(presence(w.next_of("presence").await), sleeper_is(true));
    let (_, user) = watcher.get(&format!("/api/v1/users/{sleeper_id}")).await;
    assert_eq!(user["online"], true, "{user}");
    s.send(json!({"type": "ping", "ref": "still here"})).await;
    assert_eq!(s.next_of("pong").await["ref"], "still here");
    assert!(gw1.metric("chat_presence_reopened_total").await >= 1.0);
}

#[tokio::test]
async fn chat_resumes_by_itself_after_redis_restarts() {
    let mut redis = RedisServer::start_with(ServerOptions { aof: true });
    let cluster = Cluster::on(redis.url(), false);
    let nodes = cluster.two_gateways();
    let (gw1, gw2) = (&nodes.gw1, &nodes.gw2);
    let (alice, _) = gw1.user("alice").await;
    let (bob, bob_id) = gw2.user("bob").await;
    let room = alice.create_room("sturdy", "public", &[&bob_id]).await;
    let mut a = Ws::connect(gw1, alice.token()).await;
    let mut b = Ws::connect(gw2, bob.token()).await;
    a.send(json!({"type": "send", "room_id": room, "content": "before", "client_id": "b0"}))
        .await;
    assert_eq!(b.next_of("message").await["message"]["content"], "before");

    redis.restart();
    let (status, ready) = gw1.client().get("/readyz").await;
    assert!(status.as_u16() == 200 || ready["error"]["code"] == "unavailable");
    // No process is restarted: the clients retry until chat flows again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "chat did not resume after Redis restarted"
        );
        attempt += 1;
        let key = format!("after{attempt}");
        a.send(json!({"type": "send", "room_id": room, "content": key, "client_id": key}))
            .await;
        let frames = b.frames_within(Duration::from_secs(2), &["presence"]).await;
        if frames.iter().any(|f| {
            f["type"] == "message"
                && f["message"]["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("after"))
        }) {
            break;
        }
    }
    let _ = a.frames_within(Duration::from_millis(200), &[]).await;
    let (status, _) = gw1.client().get("/readyz").await;
    assert_eq!(status.as_u16(), 200);
    assert!(cluster.data_dir().join("chat.db").exists());
}

#[tokio::test]
async fn readiness_reports_redis() {
    let mut redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let router = cluster.start("router");
    let gw = cluster.start("gateway");
    for process in [&router, &gw] {
        let (status, body) = process.client().get("/readyz").await;
        assert_eq!((status.as_u16(), body["bus"].as_str()), (200, Some("ok")));
    }
    redis.kill();
    let mut unready = 0;
    for process in [&router, &gw] {
        for _ in 0..50 {
            let (status, body) = process.client().get("/readyz").await;
            if status.as_u16() == 503 {
                assert_eq!(body["error"]["code"], "unavailable");
                unready += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(unready, 2, "both report Redis down");
    let (status, _) = router.client().get("/api/v1/users/me").await;
    assert_eq!(status.as_u16(), 404, "a router serves no API");
}

/// How many entries were ever appended to `stream` (`XINFO STREAM`'s
/// `entries-added`, which trimming keeps); 0 for a stream that does not
/// exist.
pub fn entries_added(redis: &RedisServer, stream: &str) -> u64 {
    let info = redis.cli(&["XINFO", "STREAM", stream]);
    let mut lines = info.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "entries-added" {
            return lines
                .next()
                .and_then(|n| n.trim().parse().ok())
                .expect("a count after entries-added");
        }
    }
    0
}
