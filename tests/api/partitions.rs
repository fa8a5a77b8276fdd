//! Per-room order in a cluster: several routers and persistence workers
//! over a real Redis, each room's partition held by one of each at a time
//! (or by one router that also writes, `realtime.write_stage = router`).
//! Several users send quickly into one room while processes die or join;
//! every member must see each sender's messages exactly once and in the
//! order sent, and history must hold them in the same order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chat_bus::partitions::{DEFAULT_PARTITIONS, partition_of};
use chat_bus::testing::RedisServer;
use serde_json::{Value, json};

use crate::cluster::{Cluster, entries_added};
use crate::harness::{Client, Server, UNTHROTTLED, assert_error, dm_id};
use crate::ws::Ws;

/// Messages each sender sends.
const PER_SENDER: usize = 100;

/// A room member: their REST client, user id and WebSocket.
struct Member {
    client: Client,
    id: String,
    ws: Ws,
}

/// Users spread over `gateways`, all members of one new room.
async fn members_of_a_room(gateways: &[&Server], count: usize) -> (Vec<Member>, String) {
    members_of_a_room_where(gateways, count, |_| true).await
}

/// Users spread over `gateways`, all members of a new room that `wanted`
/// accepts (rooms are made until one is).
async fn members_of_a_room_where(
    gateways: &[&Server],
    count: usize,
    wanted: impl Fn(&str) -> bool,
) -> (Vec<Member>, String) {
    let mut users = Vec::new();
    for i in 0..count {
        let gateway = gateways[i % gateways.len()];
        let (client, id) = gateway.user(&format!("sender{i}")).await;
        users.push((gateway, client, id));
    }
    let others: Vec<&str> = users[1..].iter().map(|(_, _, id)| id.as_str()).collect();
    let room = loop {
        let room = users[0].1.create_room("ordered", "public", &others).await;
        if wanted(&room) {
            break room;
        }
    };
    let mut members = Vec::new();
    for (gateway, client, id) in users {
        let ws = Ws::connect(gateway, client.token()).await;
        members.push(Member { client, id, ws });
    }
    (members, room)
}

/// Every member sends [`PER_SENDER`] messages into `room`, `pause` apart,
/// each from a task of its own, without waiting for acks, each with a
/// `client_id` or without; `during` runs once they are half-way.
async fn send_concurrently(
    members: Vec<Member>,
    room: &str,
    pause: Duration,
    client_ids: bool,
    during: impl FnOnce(),
) -> Vec<Member> {
    let senders: Vec<_> = members
        .into_iter()
        .map(|mut member| {
            let room = room.to_owned();
            tokio::spawn(async move {
                for n in 0..PER_SENDER {
                    let key = format!("{}:{n}", member.id);
                    let mut send = json!({"type": "send", "room_id": room, "content": key});
                    if client_ids {
                        send["client_id"] = json!(key);
                    }
                    member.ws.send(send).await;
                    tokio::time::sleep(pause).await;
                }
                member
            })
        })
        .collect();
    tokio::time::sleep(pause * (PER_SENDER as u32) / 2).await;
    during();
    let mut members = Vec::new();
    for sender in senders {
        members.push(sender.await.expect("a sender task"));
    }
    members
}

/// The sender's number of a message sent by [`send_concurrently`].
fn sequence(message: &Value) -> (String, usize) {
    let content = message["content"].as_str().expect("content");
    let (sender, n) = content.split_once(':').expect("sender:n");
    (sender.to_owned(), n.parse().expect("a number"))
}

/// Checks that `messages` hold each of `senders`' messages exactly once,
/// each sender's in the order sent, with increasing ids.
fn assert_each_sender_in_order(messages: &[Value], senders: &[String], whose: &str) {
    let ids: HashSet<&str> = messages
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), messages.len(), "{whose}: a message twice");
    let mut by_sender: HashMap<String, Vec<(usize, u64)>> = HashMap::new();
    for message in messages {
        let (sender, n) = sequence(message);
        assert_eq!(message["sender_id"].as_str(), Some(sender.as_str()));
        let id: u64 = message["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("numeric id");
        by_sender.entry(sender).or_default().push((n, id));
    }
    for sender in senders {
        let got = by_sender.remove(sender).unwrap_or_default();
        let order: Vec<usize> = got.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            order,
            (0..PER_SENDER).collect::<Vec<_>>(),
            "{whose}: {sender}'s messages, exactly once, in the order sent"
        );
        assert!(
            got.windows(2).all(|w| w[0].1 < w[1].1),
            "{whose}: {sender}'s ids increase in send order"
        );
    }
    assert!(by_sender.is_empty(), "{whose}: messages of strangers");
}

/// Reads a member's connection until every one of their sends is acked and
/// every message of the room has arrived; then a moment more, to catch
/// copies. Answers the `message` frames' messages, in arrival order.
async fn receive_everything(member: &mut Member, total: usize) -> Vec<Value> {
    let mut acked = HashSet::new();
    let mut messages = Vec::new();
    let mut distinct = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while acked.len() < PER_SENDER || distinct.len() < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: {} acks and {} messages only",
            member.id,
            acked.len(),
            distinct.len()
        );
        let frame = member.ws.next_frame().await;
        match frame["type"].as_str() {
            Some("ack") => {
                acked.insert(frame["message_id"].as_str().expect("message_id").to_owned());
            }
            Some("message") => {
                distinct.insert(frame["message"]["id"].as_str().expect("id").to_owned());
                messages.push(frame["message"].clone());
            }
            Some("error") => panic!("{}: a send failed: {frame}", member.id),
            _ => {}
        }
    }
    let late = member
        .ws
        .frames_within(Duration::from_millis(1500), &["presence", "ack"])
        .await;
    messages.extend(
        late.into_iter()
            .filter(|f| f["type"] == "message")
            .map(|f| f["message"].clone()),
    );
    messages
}

/// The room's whole history, oldest first.
async fn history(client: &Client, room: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(id) => format!("/api/v1/rooms/{room}/messages?limit=100&before={id}"),
            None => format!("/api/v1/rooms/{room}/messages?limit=100"),
        };
        let (_, page) = client.get(&path).await;
        let page: Vec<Value> = page["messages"].as_array().expect("messages").clone();
        before = page
            .first()
            .map(|m| m["id"].as_str().expect("id").to_owned());
        let more = !page.is_empty();
        messages.splice(0..0, page);
        if !more {
            return messages;
        }
    }
}

/// Sends (each message with a `client_id`), receives and checks; `during`
/// runs half-way through the sends.
async fn senders_keep_their_order(
    members: Vec<Member>,
    room: &str,
    pause: Duration,
    during: impl FnOnce(),
) {
    sends_arrive_once_in_order(members, room, pause, true, during).await;
}

/// Sends, with `client_id`s or without, receives and checks; `during` runs
/// half-way through the sends.
async fn sends_arrive_once_in_order(
    members: Vec<Member>,
    room: &str,
    pause: Duration,
    client_ids: bool,
    during: impl FnOnce(),
) {
    let senders: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let total = senders.len() * PER_SENDER;
    let mut members = send_concurrently(members, room, pause, client_ids, during).await;
    for member in &mut members {
        let received = receive_everything(member, total).await;
        assert_each_sender_in_order(&received, &senders, &format!("live at {}", member.id));
    }
    let stored = history(&members[0].client, room).await;
    assert_eq!(stored.len(), total, "history holds every message once");
    assert_each_sender_in_order(&stored, &senders, "history");
}

/// Setting for a cluster whose persistence workers write in parallel, each
/// its share of the persist stream's partitions (one per work partition,
/// as on ScyllaDB), instead of one writing and the others standing by (the
/// default on SQLite).
const PARALLEL_WRITERS: (&str, &str) = ("CHAT_REALTIME__PERSIST_PARTITIONS", "16");

/// The holder of a partition of a group's leases, as Redis has it.
fn holder(redis: &RedisServer, group: &str, partition: u16) -> String {
    let key = format!("chat:{{parts:{group}}}:leases");
    let lease = redis.cli(&["hget", &key, &partition.to_string()]);
    lease
        .split_once(':')
        .map(|(_, holder)| holder.to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_routers_and_two_writers_each_senders_order_is_kept() {
    let redis = RedisServer::start();
    let (key, value) = PARALLEL_WRITERS;
    let cluster = Cluster::on(redis.url(), false).with(key, value);
    let _routers = [cluster.start("router"), cluster.start("router")];
    let _writers = [cluster.start("persist"), cluster.start("persist")];
    let gateways = [cluster.start("gateway"), cluster.start("gateway")];
    let (members, room) = members_of_a_room(&[&gateways[0], &gateways[1]], 4).await;
    senders_keep_their_order(members, &room, Duration::ZERO, || {}).await;
}

/// `realtime.read_interval_ms` makes a router wait between reads, so each
/// read brings several entries: they are still handled in order, each
/// message written once, and the writer's batches grow with the router's
/// reads, although the writer itself never waits. (The senders pace
/// themselves, 200 messages a second in all: without the interval the
/// writer took them about 1.6 at a time, with 50 ms about 9.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_interval_batches_messages_and_keeps_each_senders_order() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let patient = [("CHAT_REALTIME__READ_INTERVAL_MS", "50")];
    let _router = cluster.start_with("router", &patient);
    let writer = cluster.start("persist");
    let gateways = [cluster.start("gateway"), cluster.start("gateway")];
    let (members, room) = members_of_a_room(&[&gateways[0], &gateways[1]], 4).await;
    senders_keep_their_order(members, &room, Duration::from_millis(20), || {}).await;

    let written = writer.metric("chat_persist_batch_size_sum").await;
    let batches = writer.metric("chat_persist_batch_size_count").await;
    assert_eq!(
        written as usize,
        4 * PER_SENDER,
        "each message written once"
    );
    assert!(
        batches * 4.0 <= written,
        "{written} messages in {batches} writes: reads 50 ms apart should batch them"
    );
}

/// On SQLite the persist stream is one partition, so a router read hands
/// on the messages of every work partition it read in one entry: rounds of
/// one message into each of four rooms of four work partitions (the next
/// round once the last is acked, so a read holds at most one round) make
/// about one persist entry a round, where one entry per work partition
/// made four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_hands_on_the_messages_of_all_its_rooms_in_one_persist_entry() {
    const ROUNDS: usize = 10;
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let patient = [("CHAT_REALTIME__READ_INTERVAL_MS", "50")];
    let _router = cluster.start_with("router", &patient);
    let _writer = cluster.start("persist");
    let gateway = cluster.start("gateway");
    let (alice, _) = gateway.user("alice").await;
    let mut rooms: Vec<String> = Vec::new();
    while rooms.len() < 4 {
        let room = alice.create_room("spread", "public", &[]).await;
        let partition = partition_of(&room, DEFAULT_PARTITIONS);
        if rooms
            .iter()
            .all(|r| partition_of(r, DEFAULT_PARTITIONS) != partition)
        {
            rooms.push(room);
        }
    }
    let mut ws = Ws::connect(&gateway, alice.token()).await;
    let added_before = persist_entries_added(&redis);
    for round in 0..ROUNDS {
        for room in &rooms {
            ws.send(json!({"type": "send", "room_id": room, "content": format!("round {round}")}))
                .await;
        }
        for _ in &rooms {
            ws.next_of("ack").await;
        }
    }
    let entries = persist_entries_added(&redis) - added_before;
    assert!(
        entries <= 2 * ROUNDS as u64,
        "{entries} persist entries for {ROUNDS} rounds of 4 rooms: each read's messages should share one"
    );
    for room in &rooms {
        assert_eq!(history(&alice, room).await.len(), ROUNDS, "{room}");
    }
}

/// How many entries were ever appended to the persist stream's one
/// partition.
fn persist_entries_added(redis: &RedisServer) -> u64 {
    entries_added(redis, "chat:{persist.0}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_rooms_router_and_writer_mid_run_loses_and_repeats_nothing() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let mut routers = vec![cluster.start("router"), cluster.start("router")];
    let mut writers = vec![cluster.start("persist"), cluster.start("persist")];
    let gateways = [cluster.start("gateway"), cluster.start("gateway")];
    let (members, room) = members_of_a_room(&[&gateways[0], &gateways[1]], 3).await;
    let partition = partition_of(&room, DEFAULT_PARTITIONS);
    let mut killed = Vec::new();
    senders_keep_their_order(members, &room, Duration::from_millis(10), || {
        killed.push(kill_holder(&redis, &mut routers, "routers", partition));
        // On SQLite the persist stream is one partition: one worker writes
        // while the other stands by.
        killed.push(kill_holder(&redis, &mut writers, "persisters", 0));
    })
    .await;
    // The survivors hold the room's partitions now.
    assert_ne!(holder(&redis, "routers", partition), killed[0]);
    assert_ne!(holder(&redis, "persisters", 0), killed[1]);
    assert!(
        routers[0]
            .log()
            .contains(&holder(&redis, "routers", partition))
    );
    assert!(writers[0].log().contains(&holder(&redis, "persisters", 0)));
}

/// Sends without a `client_id` have nothing a client could retry them
/// by, so the server alone must keep them from being posted twice when the
/// router that handled them dies before acknowledging them (its successor
/// handles them again). Before the claim by entry, a message arrived twice
/// in every run. With persistence workers (`routers_write` false) or
/// routers that write.
async fn killing_the_rooms_router_repeats_no_send_without_a_client_id(routers_write: bool) {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let cluster = match routers_write {
        true => cluster.with(ROUTERS_WRITE.0, ROUTERS_WRITE.1),
        false => cluster,
    };
    let mut routers = vec![cluster.start("router"), cluster.start("router")];
    let _writer = (!routers_write).then(|| cluster.start("persist"));
    let gateways = [cluster.start("gateway"), cluster.start("gateway")];
    let (members, room) = members_of_a_room(&[&gateways[0], &gateways[1]], 3).await;
    let partition = partition_of(&room, DEFAULT_PARTITIONS);
    sends_arrive_once_in_order(members, &room, Duration::from_millis(10), false, || {
        kill_holder(&redis, &mut routers, "routers", partition);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_rooms_router_posts_no_send_without_a_client_id_twice() {
    killing_the_rooms_router_repeats_no_send_without_a_client_id(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_rooms_router_that_writes_posts_no_send_without_a_client_id_twice() {
    killing_the_rooms_router_repeats_no_send_without_a_client_id(true).await;
}

/// Kills (-9) the process of `processes` that holds `partition` of
/// `group`; answers its consumer name.
fn kill_holder(
    redis: &RedisServer,
    processes: &mut Vec<Server>,
    group: &str,
    partition: u16,
) -> String {
    let holder = holder(redis, group, partition);
    let index = holder_index(processes, &holder, group, partition);
    processes.remove(index).kill();
    holder
}

/// Freezes `processes[index]`, a member of `group`, and reads what the
/// group has pending on `stream`: if anything, kills it (its successor
/// will handle those entries again) and answers true; else lets it go on.
/// Frozen, it cannot acknowledge between the look and the kill.
fn kill_if_unacknowledged(
    redis: &RedisServer,
    processes: &mut Vec<Server>,
    index: usize,
    stream: &str,
    group: &str,
) -> bool {
    processes[index].pause();
    let pending = redis.cli(&["xpending", stream, group]);
    let unacknowledged: usize = pending
        .lines()
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    if unacknowledged > 0 {
        processes.remove(index).kill();
        return true;
    }
    processes[index].resume();
    false
}

/// Which of `processes` is `holder`, the consumer holding `partition` of
/// `group`.
fn holder_index(processes: &[Server], holder: &str, group: &str, partition: u16) -> usize {
    processes
        .iter()
        .position(|p| p.log().contains(holder))
        .unwrap_or_else(|| panic!("no process holds partition {partition} of {group}"))
}

/// Setting for routers that write the messages they accept themselves, in
/// the same read, instead of handing them to persistence workers.
const ROUTERS_WRITE: (&str, &str) = ("CHAT_REALTIME__WRITE_STAGE", "router");

/// The messages a process's writer stage wrote, from its metrics.
async fn messages_written(processes: &[&Server]) -> usize {
    let mut written = 0.0;
    for process in processes {
        written += process.metric("chat_persist_batch_size_sum").await;
    }
    written as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_routers_that_write_and_no_workers_each_senders_order_is_kept() {
    let redis = RedisServer::start();
    let (key, value) = ROUTERS_WRITE;
    let cluster = Cluster::on(redis.url(), false).with(key, value);
    let routers = [cluster.start("router"), cluster.start("router")];
    let gateways = [cluster.start("gateway"), cluster.start("gateway")];
    let (members, room) = members_of_a_room(&[&gateways[0], &gateways[1]], 4).await;
    senders_keep_their_order(members, &room, Duration::ZERO, || {}).await;
    assert_eq!(
        messages_written(&[&routers[0], &routers[1]]).await,
        4 * PER_SENDER,
        "the routers wrote each message once"
    );
    assert_eq!(
        redis.cli(&["exists", "chat:{persist.0}"]),
        "0",
        "nothing went through the persist stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_rooms_router_that_writes_mid_run_loses_and_repeats_nothing() {
    let redis = RedisServer::start();
    let (key, value) = ROUTERS_WRITE;
    let cluster = Cluster::on(redis.url(), false).with(key, value);
    let mut routers = vec![cluster.start("router"), cluster.start("router")];
    let gateways = [cluster.start("gateway"), cluster.start("gateway")];
    let (members, room) = members_of_a_room(&[&gateways[0], &gateways[1]], 3).await;
    let partition = partition_of(&room, DEFAULT_PARTITIONS);
    let mut killed = String::new();
    senders_keep_their_order(members, &room, Duration::from_millis(10), || {
        killed = kill_holder(&redis, &mut routers, "routers", partition);
    })
    .await;
    assert_ne!(holder(&redis, "routers", partition), killed);
    assert!(
        routers[0]
            .log()
            .contains(&holder(&redis, "routers", partition)),
        "the survivor holds the room's partition"
    );
}

/// One process (`chatd serve`, the in-process bus) whose router writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_server_whose_router_writes_keeps_each_senders_order() {
    let mut env = UNTHROTTLED.to_vec();
    env.push(ROUTERS_WRITE);
    let server = Server::start_with(&env);
    let (members, room) = members_of_a_room(&[&server], 3).await;
    senders_keep_their_order(members, &room, Duration::ZERO, || {}).await;
    assert_eq!(messages_written(&[&server]).await, 3 * PER_SENDER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_and_writer_joining_mid_run_take_partitions_without_gap_or_copy() {
    let redis = RedisServer::start();
    let (key, value) = PARALLEL_WRITERS;
    let cluster = Cluster::on(redis.url(), false).with(key, value);
    let _router = cluster.start("router");
    let _writer = cluster.start("persist");
    let gateway = cluster.start("gateway");
    // A room in the upper half of the partitions: the half a first member
    // gives to a second one when it joins.
    let (members, room) = members_of_a_room_where(&[&gateway], 3, |room| {
        partition_of(room, DEFAULT_PARTITIONS) >= DEFAULT_PARTITIONS / 2
    })
    .await;
    let partition = partition_of(&room, DEFAULT_PARTITIONS);
    let mut joined = Vec::new();
    senders_keep_their_order(members, &room, Duration::from_millis(20), || {
        joined.push(cluster.start("router"));
        joined.push(cluster.start("persist"));
    })
    .await;
    assert!(
        joined[0]
            .log()
            .contains(&holder(&redis, "routers", partition)),
        "the joining router took the room's partition"
    );
    assert!(
        joined[1]
            .log()
            .contains(&holder(&redis, "persisters", partition)),
        "the joining writer took the room's partition"
    );
}

/// Whether `user` is among the room's members, as `client` sees them.
async fn is_member(client: &Client, room: &str, user: &str) -> bool {
    let (_, body) = client.get(&format!("/api/v1/rooms/{room}/members")).await;
    body["members"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m["user"]["id"].as_str() == Some(user))
}

/// Waits until `user`'s membership of `room` is `wanted`.
async fn until_member(client: &Client, room: &str, user: &str, wanted: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while is_member(client, room, user).await != wanted {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user} member of {room}: never {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_websocket_actions_behave_alike_past_a_killed_router() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let mut routers = vec![cluster.start("router"), cluster.start("router")];
    let _writer = cluster.start("persist");
    let gateway = cluster.start("gateway");
    let (alice, _) = gateway.user("alice").await;
    let (bob, bob_id) = gateway.user("bob").await;
    let (carol, carol_id) = gateway.user("carol").await;
    let room = alice.create_room("open", "public", &[]).await;
    let last = alice.send(&room, "hello").await["id"].clone();
    let partition = partition_of(&room, DEFAULT_PARTITIONS);
    kill_the_rooms_router(&redis, &mut routers, &room);

    // join: REST answers the room once the survivor took the partition;
    // the WebSocket action has the same effect.
    let (status, joined) = bob.post_empty(&format!("/api/v1/rooms/{room}/join")).await;
    assert_eq!(status.as_u16(), 200, "{joined}");
    assert_eq!(joined["id"].as_str(), Some(room.as_str()));
    let mut ws = Ws::connect(&gateway, carol.token()).await;
    ws.send(json!({"type": "join", "room_id": room})).await;
    until_member(&alice, &room, &carol_id, true).await;
    assert!(is_member(&alice, &room, &bob_id).await);

    // read: both accepted.
    let (status, _) = bob
        .post(
            &format!("/api/v1/rooms/{room}/read"),
            json!({"message_id": last}),
        )
        .await;
    assert_eq!(status.as_u16(), 204);
    ws.send(json!({"type": "read", "room_id": room, "message_id": last}))
        .await;
    let errors = ws
        .frames_within(
            Duration::from_millis(500),
            &["presence", "room_added", "member_joined"],
        )
        .await;
    assert!(errors.iter().all(|f| f["type"] != "error"), "{errors:?}");

    // leave: the same again.
    let (status, _) = bob.post_empty(&format!("/api/v1/rooms/{room}/leave")).await;
    assert_eq!(status.as_u16(), 204);
    ws.send(json!({"type": "leave", "room_id": room})).await;
    until_member(&alice, &room, &carol_id, false).await;
    assert!(!is_member(&alice, &room, &bob_id).await);

    // And both are refused alike: leaving a room one is not in.
    let (status, refused) = bob.post_empty(&format!("/api/v1/rooms/{room}/leave")).await;
    assert!(status.is_client_error(), "{refused}");
    ws.send(json!({"type": "leave", "room_id": room, "ref": "again"}))
        .await;
    let error = ws.next_of("error").await;
    assert_eq!(error["code"], refused["error"]["code"]);
    assert!(
        routers[0]
            .log()
            .contains(&holder(&redis, "routers", partition)),
        "the survivor holds the room's partition"
    );
}

/// Kills the router holding `room`'s partition; answers its consumer name.
fn kill_the_rooms_router(redis: &RedisServer, routers: &mut Vec<Server>, room: &str) -> String {
    let dead = holder(redis, "routers", partition_of(room, DEFAULT_PARTITIONS));
    let index = routers
        .iter()
        .position(|r| r.log().contains(&dead))
        .expect("a router holds the room's partition");
    routers.remove(index).kill();
    dead
}

/// How many `action`s ended with `result` on `router`, from its `/metrics`
/// (0 when none did): proof that an action took the router's path.
async fn router_actions(router: &Server, action: &str, result: &str) -> f64 {
    router
        .metric(&format!(
            "chat_router_actions_total{{action=\"{action}\",result=\"{result}\"}}"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_add_and_kick_behave_like_websocket_actions_past_a_killed_router() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let mut routers = vec![cluster.start("router"), cluster.start("router")];
    let _writer = cluster.start("persist");
    let gateway = cluster.start("gateway");
    let (alice, _) = gateway.user("alice").await;
    let (bob, bob_id) = gateway.user("bob").await;
    let (carol, carol_id) = gateway.user("carol").await;
    let room = alice.create_room("open", "public", &[]).await;
    let mut room_ws = Ws::connect(&gateway, alice.token()).await;
    let mut bob_ws = Ws::connect(&gateway, bob.token()).await;
    let mut carol_ws = Ws::connect(&gateway, carol.token()).await;
    kill_the_rooms_router(&redis, &mut routers, &room);

    // REST add (answered once the survivor took the partition) and a
    // WebSocket join: the newcomer hears `room_added`, the room
    // `member_joined`, in the order the actions were taken.
    let (status, body) = alice
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": bob_id}),
        )
        .await;
    assert_eq!(status.as_u16(), 204, "{body}");
    carol_ws
        .send(json!({"type": "join", "room_id": room}))
        .await;
    for (ws, who) in [(&mut bob_ws, &bob_id), (&mut carol_ws, &carol_id)] {
        let added = ws.next_of("room_added").await;
        assert_eq!(added["room"]["id"].as_str(), Some(room.as_str()), "{who}");
        assert_eq!(added["room"]["role"], "member", "{who}");
    }
    for who in [&bob_id, &carol_id] {
        let joined = room_ws.next_of("member_joined").await;
        assert_eq!(joined["room_id"].as_str(), Some(room.as_str()));
        assert_eq!(joined["user_id"].as_str(), Some(who.as_str()));
    }
    assert!(is_member(&alice, &room, &bob_id).await);
    assert!(is_member(&alice, &room, &carol_id).await);

    // REST kick and a WebSocket leave: the one removed hears
    // `room_removed`, the room `member_left`.
    let (status, body) = alice
        .delete(&format!("/api/v1/rooms/{room}/members/{bob_id}"))
        .await;
    assert_eq!(status.as_u16(), 204, "{body}");
    carol_ws
        .send(json!({"type": "leave", "room_id": room}))
        .await;
    for (ws, who) in [(&mut bob_ws, &bob_id), (&mut carol_ws, &carol_id)] {
        let removed = ws.next_of("room_removed").await;
        assert_eq!(removed["room_id"].as_str(), Some(room.as_str()), "{who}");
    }
    for who in [&bob_id, &carol_id] {
        let left = room_ws.next_of("member_left").await;
        assert_eq!(left["user_id"].as_str(), Some(who.as_str()));
    }
    until_member(&alice, &room, &carol_id, false).await;
    assert!(!is_member(&alice, &room, &bob_id).await);

    // Refusals come from the one implementation with one code: a
    // non-member kicking (REST) and leaving (WebSocket) are both refused
    // by the membership check; kicking a non-member and adding an unknown
    // user are `not_found`.
    let refused = bob
        .delete(&format!("/api/v1/rooms/{room}/members/{carol_id}"))
        .await;
    assert_error(&refused, 403, "forbidden");
    bob_ws
        .send(json!({"type": "leave", "room_id": room, "ref": "not-in"}))
        .await;
    let error = bob_ws.next_of("error").await;
    assert_eq!(error["code"], refused.1["error"]["code"]);
    let answer = alice
        .delete(&format!("/api/v1/rooms/{room}/members/{bob_id}"))
        .await;
    assert_error(&answer, 404, "not_found");
    let answer = alice
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "123456789"}),
        )
        .await;
    assert_error(&answer, 404, "not_found");

    // All of it took the router's path: the survivor counted each.
    let survivor = &routers[0];
    assert_eq!(router_actions(survivor, "add_member", "ok").await, 1.0);
    assert_eq!(router_actions(survivor, "kick", "ok").await, 1.0);
    assert_eq!(
        router_actions(survivor, "add_member", "not_found").await,
        1.0
    );
    assert_eq!(router_actions(survivor, "kick", "not_found").await, 1.0);
    assert_eq!(router_actions(survivor, "kick", "forbidden").await, 1.0);
}

/// Members that leave one after another while the room's router is
/// killed.
const LEAVERS: usize = 24;

/// A `leave` is answered only when refused. A router that applied some
/// and died before acknowledging them left their entries to its
/// successor, which finds those members already gone: it must not answer
/// a refusal for a leave that was done (before, each such member got
/// `error` `forbidden`, "not a member of this room", after its own
/// `room_removed`). It publishes the leave's events again, since its
/// predecessor may have died before publishing them, under the ids they
/// had the first time: each is heard once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_handled_again_past_a_killed_router_are_not_refused() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let mut routers = vec![cluster.start("router"), cluster.start("router")];
    let _writer = cluster.start("persist");
    let gateway = cluster.start("gateway");
    let (mut members, room) = members_of_a_room(&[&gateway], LEAVERS + 1).await;
    let partition = partition_of(&room, DEFAULT_PARTITIONS);
    let mut owner = members.remove(0);
    let leave = |n: usize| json!({"type": "leave", "room_id": room, "ref": format!("leave-{n}")});
    // Members leave one after another. Once the room's router has handled
    // every leave sent so far, it is frozen; if some of them are still
    // unacknowledged (for up to 100 ms after handling) it is killed and
    // its successor handles those again, else it goes on and the next
    // member leaves.
    let dead = holder(&redis, "routers", partition);
    let index = holder_index(&routers, &dead, "routers", partition);
    let stream = format!("chat:{{inbound.{partition}}}");
    let mut sent = 0;
    loop {
        assert!(
            sent < LEAVERS / 2,
            "never caught the router with leaves unacknowledged"
        );
        members[sent].ws.send(leave(sent)).await;
        sent += 1;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while router_actions(&routers[index], "leave", "ok").await < sent as f64 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the leaves were handled"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if kill_if_unacknowledged(&redis, &mut routers, index, &stream, "routers") {
            break;
        }
    }
    for (n, leaver) in members.iter_mut().enumerate().skip(sent) {
        leaver.ws.send(leave(n)).await;
    }
    // The survivor handles what the dead router left pending before
    // anything newer: once this post is answered, every leave has been
    // handled, again or for the first time.
    owner.client.send(&room, "after the leaves").await;

    let mut left = Vec::new();
    for leaver in &mut members {
        let frames = leaver
            .ws
            .frames_within(Duration::from_millis(300), &["presence", "message"])
            .await;
        let errors: Vec<&Value> = frames.iter().filter(|f| f["type"] == "error").collect();
        assert!(
            errors.is_empty(),
            "{}'s leave was refused: {errors:?}",
            leaver.id
        );
        // Once, however the gateway learns it first: from the user's
        // `room_removed`, or from the room's `member_left` at a membership
        // version without them (it then tells them itself, as for a lost
        // `room_removed`, and the user's own is not passed on again).
        let removed = frames
            .iter()
            .filter(|f| f["type"] == "room_removed" && f["room_id"] == room.as_str())
            .count();
        assert_eq!(
            removed, 1,
            "{} heard room_removed once: {frames:?}",
            leaver.id
        );
        left.push(leaver.id.clone());
    }
    let mut heard: Vec<String> = owner
        .ws
        .frames_within(Duration::from_millis(300), &["presence"])
        .await
        .into_iter()
        .filter(|f| f["type"] == "member_left")
        .map(|f| f["user_id"].as_str().expect("user_id").to_owned())
        .collect();
    heard.sort();
    left.sort();
    assert_eq!(heard, left, "the room heard member_left once for each");
    let (_, body) = owner
        .client
        .get(&format!("/api/v1/rooms/{room}/members"))
        .await;
    let remaining: Vec<&str> = body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["user"]["id"].as_str())
        .collect();
    assert_eq!(remaining, [owner.id.as_str()], "only the owner stays");
    assert!(
        router_actions(&routers[0], "leave", "ok").await > (LEAVERS - sent) as f64,
        "the survivor handled leaves again"
    );
}

/// A persistence worker that published a batch and died before
/// acknowledging it leaves the batch to its successor, which publishes it
/// again: the `message` under its id, and its `mention` and `notification`
/// under ids derived from the message's, so the mentioned user's
/// connection passes each on once (before, the mention and the
/// notification came twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_published_again_by_the_next_writer_mentions_once() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let _router = cluster.start("router");
    let mut writers = vec![cluster.start("persist"), cluster.start("persist")];
    let gateway = cluster.start("gateway");
    let (alice, _) = gateway.user("alice").await;
    let (bob, bob_id) = gateway.user("bob").await;
    let room = alice.create_room("mentions", "public", &[&bob_id]).await;
    let mut bob_ws = Ws::connect(&gateway, bob.token()).await;
    // On SQLite the persist stream is one partition, written by one
    // worker. Each post is answered once its batch is written and
    // published; the worker is then caught, frozen, with it unacknowledged.
    let dead = holder(&redis, "persisters", 0);
    let index = holder_index(&writers, &dead, "persisters", 0);
    let mut sent = Vec::new();
    loop {
        assert!(
            sent.len() < 20,
            "never caught the writer with a batch unacknowledged"
        );
        let message = alice.send(&room, &format!("@bob {}", sent.len())).await;
        sent.push(message["id"].as_str().expect("id").to_owned());
        if kill_if_unacknowledged(
            &redis,
            &mut writers,
            index,
            "chat:{persist.0}",
            "persisters",
        ) {
            break;
        }
    }
    // Answered by the survivor, after what the dead worker left pending.
    for n in 0..3 {
        let message = alice.send(&room, &format!("@bob after {n}")).await;
        sent.push(message["id"].as_str().expect("id").to_owned());
    }
    let frames = bob_ws
        .frames_within(Duration::from_millis(1000), &["presence"])
        .await;
    for kind in ["message", "mention", "notification"] {
        let mut heard: Vec<String> = frames
            .iter()
            .filter(|f| f["type"] == kind)
            .map(|f| {
                let id = match kind {
                    "message" => &f["message"]["id"],
                    "mention" => &f["message_id"],
                    _ => &f["notification"]["message_id"],
                };
                id.as_str().expect("message id").to_owned()
            })
            .collect();
        heard.sort();
        let mut expected = sent.clone();
        expected.sort();
        assert_eq!(heard, expected, "bob heard each {kind} once");
    }
    assert!(
        writers[0].log().contains(&holder(&redis, "persisters", 0)),
        "the survivor took the persist stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_dms_takes_the_dm_rooms_router_past_a_killed_one() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let mut routers = vec![cluster.start("router"), cluster.start("router")];
    let _writer = cluster.start("persist");
    let gateway = cluster.start("gateway");
    let (alice, alice_id) = gateway.user("alice").await;
    let (bob, bob_id) = gateway.user("bob").await;
    let dm = dm_id(&alice_id, &bob_id);
    let mut alice_ws = Ws::connect(&gateway, alice.token()).await;
    let mut bob_ws = Ws::connect(&gateway, bob.token()).await;
    kill_the_rooms_router(&redis, &mut routers, &dm);

    // Opened by the survivor once it holds the DM room's partition; both
    // users hear `room_added`, once.
    let (status, room) = alice.post("/api/v1/dms", json!({"user_id": bob_id})).await;
    assert_eq!(status.as_u16(), 200, "{room}");
    assert_eq!(room["id"].as_str(), Some(dm.as_str()));
    assert_eq!(room["kind"], "dm");
    for ws in [&mut alice_ws, &mut bob_ws] {
        assert_eq!(ws.next_of("room_added").await["room"]["id"], dm.as_str());
    }
    // Opening it again (from the other side) answers the same room and
    // announces nothing new.
    let (status, again) = bob.post("/api/v1/dms", json!({"user_id": alice_id})).await;
    assert_eq!(status.as_u16(), 200, "{again}");
    assert_eq!(again["id"].as_str(), Some(dm.as_str()));
    for ws in [&mut alice_ws, &mut bob_ws] {
        let more = ws
            .frames_within(Duration::from_millis(500), &["presence"])
            .await;
        assert!(more.iter().all(|f| f["type"] != "room_added"), "{more:?}");
    }
    // The DM works at once: a message reaches the other side.
    let message = alice.send(&dm, "hi bob").await;
    assert_eq!(
        bob_ws.next_of("message").await["message"]["id"],
        message["id"]
    );

    // Refusals come from the router with the codes of the protocol.
    let answer = alice
        .post("/api/v1/dms", json!({"user_id": alice_id}))
        .await;
    assert_error(&answer, 400, "bad_request");
    let answer = alice
        .post("/api/v1/dms", json!({"user_id": "123456789"}))
        .await;
    assert_error(&answer, 404, "not_found");

    let survivor = &routers[0];
    assert_eq!(router_actions(survivor, "open_dm", "ok").await, 2.0);
    assert!(router_actions(survivor, "open_dm", "not_found").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_rooms_is_created_and_announced_by_a_router() {
    let redis = RedisServer::start();
    let cluster = Cluster::on(redis.url(), false);
    let router = cluster.start("router");
    let _writer = cluster.start("persist");
    let gateway = cluster.start("gateway");
    let (alice, alice_id) = gateway.user("alice").await;
    let (bob, bob_id) = gateway.user("bob").await;
    let mut alice_ws = Ws::connect(&gateway, alice.token()).await;
    let mut bob_ws = Ws::connect(&gateway, bob.token()).await;

    let (status, room) = alice
        .post(
            "/api/v1/rooms",
            json!({"name": "plans", "visibility": "private", "member_ids": [bob_id]}),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{room}");
    assert_eq!(room["owner_id"].as_str(), Some(alice_id.as_str()));
    let id = room["id"].as_str().expect("room id");
    for (ws, role) in [(&mut alice_ws, "owner"), (&mut bob_ws, "member")] {
        let added = ws.next_of("room_added").await;
        assert_eq!(added["room"]["id"].as_str(), Some(id));
        assert_eq!(added["room"]["role"], role);
    }
    assert!(is_member(&alice, id, &bob_id).await);

    // A refusal comes from the router, with the code of the protocol.
    let answer = alice
        .post(
            "/api/v1/rooms",
            json!({"name": "   ", "visibility": "public"}),
        )
        .await;
    assert_error(&answer, 400, "bad_request");
    let answer = alice
        .post(
            "/api/v1/rooms",
            json!({"name": "ghosts", "member_ids": ["123456789"]}),
        )
        .await;
    assert_error(&answer, 400, "bad_request");

    assert_eq!(router_actions(&router, "create_room", "ok").await, 1.0);
    assert_eq!(
        router_actions(&router, "create_room", "bad_request").await,
        2.0
    );
}
