//! The Redis bus against real `redis-server` processes started by
//! `chat_bus::testing` (never the Redis on 6379): the bus conformance suite
//! (`chat_bus::conformance`, every guarantee of the bus traits) on a single
//! server, then what only Redis has: keys that expire, re-subscription and
//! lost data after a restart, trimming, sharded streams, key prefixes, and
//! a 3-master Redis Cluster with sharded pub/sub.

use std::collections::HashSet;
use std::time::Duration;

use chat_bus::conformance::{
    APPEND_TIMEOUT, BusUnderTest, STREAM_CAPACITY,
    a_batch_admission_acts_like_single_calls_in_turn, ids, next_delivery, no_delivery, payload,
    payloads,
};
use chat_bus::redis::{RedisBus, RedisConfig};
use chat_bus::testing::{RedisCluster, RedisServer, ServerOptions};
use chat_bus::{
    Backlog, Bucket, BusError, Entry, EntryId, Payload, PubSub, RateDecision, SharedState,
    WorkQueue,
};
use tokio::time::timeout;

async fn connect(config: RedisConfig) -> RedisBus {
    RedisBus::connect(config).await.expect("connect to redis")
}

/// A fresh server, with two connections to it (two processes), its streams
/// bounded (and trimmed exactly) as the suite expects.
async fn fresh_bus() -> BusUnderTest {
    let redis = RedisServer::start();
    let config = RedisConfig {
        stream_capacity: STREAM_CAPACITY,
        append_timeout: APPEND_TIMEOUT,
        exact_trim: true,
        ..redis.config()
    };
    let bus = connect(config.clone()).await;
    let peer = connect(config).await;
    BusUnderTest::new(bus.bus(), peer.bus(), bus.queue.clone()).keeping_alive(redis)
}

mod conformance {
    chat_bus::bus_conformance_tests!(super::fresh_bus);
}

// ---------------------------------------------------------------- pub/sub

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_come_back_by_themselves_after_a_redis_restart() {
    let mut redis = RedisServer::start_with(ServerOptions { aof: true });
    let bus = connect(redis.config()).await;
    let mut sub = bus.pubsub.subscribe(64).await.unwrap();
    sub.control.add("room:1").await.unwrap();
    sub.control.add("user:7").await.unwrap();
    bus.pubsub
        .publish("room:1", payload("before"))
        .await
        .unwrap();
    assert_eq!(next_delivery(&mut sub).await.payload, payload("before"));
    bus.queue.append("s", payload("durable")).await.unwrap();

    redis.restart();

    // Publish until the subscription hears again; never re-added.
    let heard = async {
        loop {
            let _ = bus.pubsub.publish("user:7", payload("after")).await;
            if let Ok(Some(d)) = timeout(Duration::from_millis(100), sub.deliveries.recv()).await {
                return d;
            }
        }
    };
    let d = timeout(Duration::from_secs(15), heard)
        .await
        .expect("re-subscribed after the restart");
    assert_eq!((&*d.channel, &d.payload[..]), ("user:7", &b"after"[..]));
    // Both channels are back.
    bus.pubsub
        .publish("room:1", payload("again"))
        .await
        .unwrap();
    loop {
        let d = next_delivery(&mut sub).await;
        if &*d.channel == "room:1" {
            assert_eq!(d.payload, payload("again"));
            break;
        }
    }

    // With AOF on, the stream entry survived the crash.
    let got = bus
        .queue
        .read("s", "g", "c", 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(payloads(&got), ["durable"]);
    bus.state.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_is_unavailable_not_a_hang() {
    let mut redis = RedisServer::start();
    let bus = connect(RedisConfig {
        command_timeout: Duration::from_millis(500),
        ..redis.config()
    })
    .await;
    redis.kill();
    let started = std::time::Instant::now();
    let published = bus.pubsub.publish("c", payload("x")).await;
    assert!(
        matches!(published, Err(BusError::Unavailable(_))),
        "{published:?}"
    );
    let pinged = bus.state.ping().await;
    assert!(
        matches!(pinged, Err(BusError::Unavailable(_))),
        "{pinged:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // And connecting to nothing fails fast too.
    let refused = RedisBus::connect(RedisConfig {
        command_timeout: Duration::from_millis(500),
        ..redis.config()
    })
    .await;
    assert!(matches!(refused, Err(BusError::Unavailable(_))));
}

// ---------------------------------------------------------------- streams

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_drops_only_what_every_group_acknowledged() {
    let redis = RedisServer::start();
    let bus = connect(RedisConfig {
        stream_capacity: 100,
        append_timeout: Duration::from_millis(200),
        exact_trim: true,
        ..redis.config()
    })
    .await;
    let q = &bus.queue;
    // Two groups, both exist before the entries.
    for g in ["persisters", "audit"] {
        assert!(
            q.read("s", g, "c", 1, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
    }
    for i in 0..10 {
        q.append("s", payload(&i.to_string())).await.unwrap();
    }
    let p = q
        .read("s", "persisters", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    // Acknowledge all but the 3rd, out of order.
    let mut acked = ids(&p);
    let kept = acked.remove(2);
    q.ack("s", "persisters", &acked).await.unwrap();
    q.trim("s", "persisters").await.unwrap();
    assert_eq!(q.len("s").await.unwrap(), 10, "audit has read nothing yet");

    let a = q.read("s", "audit", "c", 10, Duration::ZERO).await.unwrap();
    q.ack("s", "audit", &ids(&a)).await.unwrap();
    assert_eq!(q.len("s").await.unwrap(), 10, "acknowledging does not trim");
    q.trim("s", "audit").await.unwrap();
    // Everything from the persisters' pending entry on stays.
    assert_eq!(q.len("s").await.unwrap(), 8);
    let claimed = q
        .claim_stale("s", "persisters", "other", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), std::slice::from_ref(&kept));
    assert_eq!(claimed[0].payload, payload("2"));
    q.ack("s", "persisters", &[kept]).await.unwrap();
    q.trim("s", "persisters").await.unwrap();
    assert_eq!(q.len("s").await.unwrap(), 0);

    // An entry not yet read by a group is never trimmed.
    q.append("s", payload("new")).await.unwrap();
    let p = q
        .read("s", "persisters", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    q.ack("s", "persisters", &ids(&p)).await.unwrap();
    q.trim("s", "persisters").await.unwrap();
    assert_eq!(q.len("s").await.unwrap(), 1, "audit still needs it");
    let a = q.read("s", "audit", "c", 10, Duration::ZERO).await.unwrap();
    assert_eq!(payloads(&a), ["new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_come_back_after_redis_lost_its_data() {
    let mut redis = RedisServer::start(); // no AOF: a restart loses all
    let bus = connect(redis.config()).await;
    bus.queue.append("s", payload("lost")).await.unwrap();
    let _ = bus
        .queue
        .read("s", "g", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    redis.restart();
    let appended = async {
        loop {
            if bus.queue.append("s", payload("new")).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(Duration::from_secs(10), appended).await.unwrap();
    // The group this process knew is gone; reading makes it again.
    let got = bus
        .queue
        .read("s", "g", "c", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(payloads(&got), ["new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_buckets_expire_once_full_again() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    for _ in 0..20 {
        assert_eq!(
            bus.state
                .take_token(&Bucket::new("u", 10.0, 20))
                .await
                .unwrap(),
            RateDecision::Allowed
        );
    }
    // Empty: full again in 2 s at 10/s.
    let ttl: i64 = redis.cli(&["pttl", "chat:rate:u"]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 2_001, "{ttl}");
}

/// A worker id lease is a key that expires with the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_worker_id_lease_leaves_no_key() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    let id = bus
        .state
        .lease_worker_id("short-lived", Duration::from_millis(1000))
        .await
        .unwrap();
    // Long enough for `redis-cli` to look on a loaded machine (a lease of
    // 100 ms was gone before it did).
    let key = format!("chat:{{workers}}:{id}");
    assert_eq!(redis.cli(&["get", &key]), "short-lived");
    let ttl: i64 = redis.cli(&["pttl", &key]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 1_000, "{ttl}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(redis.cli(&["exists", &key]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_id_taken_is_unavailable() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    for id in 0..=chat_bus::MAX_WORKER_ID {
        redis.cli(&[
            "set",
            &format!("chat:{{workers}}:{id}"),
            "other",
            "px",
            "60000",
        ]);
    }
    assert!(matches!(
        bus.state
            .lease_worker_id("me", Duration::from_secs(60))
            .await,
        Err(BusError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_prefixes_keep_deployments_apart() {
    let redis = RedisServer::start();
    let blue = connect(RedisConfig {
        key_prefix: "blue:".into(),
        ..redis.config()
    })
    .await;
    let green = connect(RedisConfig {
        key_prefix: "green:".into(),
        ..redis.config()
    })
    .await;
    let mut sub = green.pubsub.subscribe(8).await.unwrap();
    sub.control.add("room:1").await.unwrap();
    blue.pubsub
        .publish("room:1", payload("blue"))
        .await
        .unwrap();
    no_delivery(&mut sub, "another deployment").await;
    blue.queue.append("s", payload("blue")).await.unwrap();
    assert!(
        green
            .queue
            .read("s", "g", "c", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        blue.state
            .connection_opened("u", "c", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert_eq!(green.state.online(&["u".into()]).await.unwrap(), [false]);
    assert!(matches!(
        RedisBus::connect(RedisConfig {
            key_prefix: "{bad}".into(),
            ..redis.config()
        })
        .await,
        Err(BusError::Internal(_))
    ));
}

// ---------------------------------------------------------------- cluster

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_pubsub_is_sharded_and_streams_and_state_work() {
    let cluster = RedisCluster::start(3);
    let bus = connect(cluster.config()).await;
    assert!(bus.is_cluster());
    let publisher = connect(cluster.config()).await;

    // Channels on several slots, hence several nodes.
    let channels: Vec<String> = (0..12).map(|i| format!("room:{i}")).collect();
    let owners: HashSet<String> = channels
        .iter()
        .map(|c| {
            let slot = cluster.cli(&["cluster", "keyslot", &format!("chat:{c}")]);
            cluster
                .cli(&["cluster", "nodes"])
                .lines()
                .find(|line| {
                    line.contains("master")
                        && line.split_whitespace().skip(8).any(|range| {
                            let slot: u16 = slot.parse().unwrap();
                            match range.split_once('-') {
                                Some((lo, hi)) => (lo.parse::<u16>().unwrap()
                                    ..=hi.parse().unwrap())
                                    .contains(&slot),
                                None => range.parse::<u16>().ok() == Some(slot),
                            }
                        })
                })
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(owners.len(), 3, "the channels span every node");

    let mut sub = bus.pubsub.subscribe(64).await.unwrap();
    for c in &channels {
        sub.control.add(c).await.unwrap();
    }
    // Sharded: the nodes list them as shard channels, not plain ones.
    let shard_channels: usize = cluster
        .nodes()
        .iter()
        .map(|node| node.cli(&["pubsub", "shardchannels"]).lines().count())
        .sum();
    assert_eq!(shard_channels, channels.len());
    for c in &channels {
        publisher.pubsub.publish(c, payload(c)).await.unwrap();
    }
    let mut heard = HashSet::new();
    for _ in &channels {
        let d = next_delivery(&mut sub).await;
        assert_eq!(d.payload, payload(&d.channel));
        heard.insert(d.channel.to_string());
    }
    assert_eq!(heard.len(), channels.len());
    sub.control.remove("room:0").await.unwrap();
    publisher
        .pubsub
        .publish("room:0", payload("gone"))
        .await
        .unwrap();
    no_delivery(&mut sub, "removed").await;

    // A stream round trip, with a second consumer claiming.
    for i in 0..5 {
        publisher
            .queue
            .append("inbound", payload(&i.to_string()))
            .await
            .unwrap();
    }
    let got = bus
        .queue
        .read("inbound", "routers", "r1", 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(payloads(&got), ["0", "1", "2", "3", "4"]);
    bus.queue
        .ack("inbound", "routers", &ids(&got[..3]))
        .await
        .unwrap();
    let claimed = publisher
        .queue
        .claim_stale("inbound", "routers", "r2", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(payloads(&claimed), ["3", "4"]);

    // Shared state spreads over the nodes too.
    let users: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    for u in &users {
        assert!(
            bus.state
                .connection_opened(u, "c", Duration::from_secs(60))
                .await
                .unwrap()
        );
    }
    assert!(
        publisher
            .state
            .online(&users)
            .await
            .unwrap()
            .iter()
            .all(|o| *o)
    );
    // Expiry sweeps every presence shard (several slots, several nodes).
    for u in &users {
        bus.state
            .connection_opened(&format!("gone-{u}"), "c", Duration::from_millis(50))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut gone = Vec::new();
    for _ in 0..20 {
        gone.extend(publisher.state.expired_connections(1000).await.unwrap());
    }
    gone.sort();
    let mut expected: Vec<String> = users.iter().map(|u| format!("gone-{u}")).collect();
    expected.sort();
    assert_eq!(gone, expected);
    assert_eq!(
        bus.state
            .take_token(&Bucket::new("k", 1.0, 1))
            .await
            .unwrap(),
        RateDecision::Allowed
    );
    assert!(
        bus.state
            .put_if_absent("cid", payload("x"), Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
    let id = bus
        .state
        .lease_worker_id("me", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        bus.state
            .renew_worker_id(id, "me", Duration::from_secs(60))
            .await
            .unwrap()
    );
    bus.state.ping().await.unwrap();
    // A batch's keys live in many slots: admitted action by action, with
    // the guarantees of the one script.
    a_batch_admission_acts_like_single_calls_in_turn(bus.state.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_partition_streams_are_read_across_the_nodes() {
    let cluster = RedisCluster::start(3);
    let bus = connect(cluster.config()).await;
    // Four partitions: four hash slots, spread over the nodes.
    let streams: Vec<String> = (0..4).map(|p| format!("persist.{p}")).collect();
    for i in 0..20 {
        bus.queue
            .append(&streams[i % 4], payload(&i.to_string()))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    loop {
        let batch = bus
            .queue
            .read_many(&streams, "persisters", "p", 3, Duration::from_millis(100))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        for (index, entry) in batch {
            bus.queue
                .ack(
                    &streams[index],
                    "persisters",
                    std::slice::from_ref(&entry.id),
                )
                .await
                .unwrap();
            let n: usize = String::from_utf8_lossy(&entry.payload).parse().unwrap();
            assert_eq!(n % 4, index, "tagged with its own stream");
            got.push(n);
        }
    }
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_sharded_subscriptions_come_back_after_a_node_restart() {
    let mut cluster = RedisCluster::start(3);
    let bus = connect(cluster.config()).await;
    let mut sub = bus.pubsub.subscribe(256).await.unwrap();
    let channels: Vec<String> = (0..12).map(|i| format!("room:{i}")).collect();
    for c in &channels {
        sub.control.add(c).await.unwrap();
    }
    cluster.nodes_mut()[1].restart();
    // Every channel is heard again, on whichever node owns it; never
    // re-added.
    let mut heard = HashSet::new();
    let all_heard = async {
        while heard.len() < channels.len() {
            for c in &channels {
                if !heard.contains(c) {
                    let _ = bus.pubsub.publish(c, payload(c)).await;
                }
            }
            while let Ok(Some(d)) = timeout(Duration::from_millis(100), sub.deliveries.recv()).await
            {
                heard.insert(d.channel.to_string());
            }
        }
    };
    timeout(Duration::from_secs(20), all_heard)
        .await
        .expect("every sharded subscription restored");
}

// ------------------------------------------------------------- consumers

/// Redis's queue, except that the answer to the first `read_many` that took
/// entries is lost: the read was served (its entries are pending with the
/// consumer), the consumer sees an error. What a dropped connection or a
/// timeout after the command ran does.
struct LosesOneReadAnswer {
    inner: std::sync::Arc<chat_bus::redis::RedisQueue>,
    lost: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl WorkQueue for LosesOneReadAnswer {
    async fn append(&self, stream: &str, payload: Payload) -> chat_bus::Result<EntryId> {
        self.inner.append(stream, payload).await
    }

    async fn read_many(
        &self,
        streams: &[String],
        group: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> chat_bus::Result<Vec<(usize, Entry)>> {
        use std::sync::atomic::Ordering;
        let read = self
            .inner
            .read_many(streams, group, consumer, max, wait)
            .await?;
        if !read.is_empty() && !self.lost.swap(true, Ordering::SeqCst) {
            return Err(BusError::Unavailable("the answer was lost".into()));
        }
        Ok(read)
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> chat_bus::Result<()> {
        self.inner.ack(stream, group, ids).await
    }

    async fn trim(&self, stream: &str, group: &str) -> chat_bus::Result<()> {
        self.inner.trim(stream, group).await
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> chat_bus::Result<Vec<Entry>> {
        self.inner
            .claim_stale(stream, group, consumer, min_idle, max)
            .await
    }

    async fn backlog(&self, stream: &str, group: &str) -> chat_bus::Result<Backlog> {
        self.inner.backlog(stream, group).await
    }
}

/// Entries taken by a read whose answer was lost are not stranded with the
/// consumer that still holds their partition: they are handled, before
/// what was appended after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_read_whose_answer_was_lost_are_handled_first() {
    use chat_bus::consumer::{ConsumerOptions, consume};

    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    let queue = std::sync::Arc::new(LosesOneReadAnswer {
        inner: bus.queue.clone(),
        lost: std::sync::atomic::AtomicBool::new(false),
    });
    let stream = chat_bus::partitions::stream("work", 0);
    queue.append(&stream, payload("first")).await.unwrap();

    let (handled, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let consumer = tokio::spawn(consume(
        queue.clone(),
        bus.state.clone(),
        ConsumerOptions {
            stream: "work",
            group: "workers",
            consumer: "c1".into(),
            partitions: 1,
            batch: 16,
            lease: Duration::from_secs(3),
            min_read_interval: Duration::ZERO,
        },
        shutdown.clone(),
        move |batches| {
            for batch in batches {
                for text in payloads(&batch.entries) {
                    let _ = handled.send(text);
                }
            }
            async {}
        },
    ));
    // Once the first read's answer is lost, something newer arrives.
    timeout(Duration::from_secs(10), async {
        while !queue.lost.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the consumer reads");
    queue.append(&stream, payload("second")).await.unwrap();

    let mut order = Vec::new();
    while order.len() < 2 {
        match timeout(Duration::from_secs(5), heard.recv()).await {
            Ok(Some(text)) => order.push(text),
            _ => break,
        }
    }
    assert_eq!(order, ["first", "second"]);
    shutdown.cancel();
    timeout(Duration::from_secs(5), consumer)
        .await
        .expect("the consumer stops")
        .unwrap();
}

/// A batch the role takes longer over than the lease: its member renews
/// its leases meanwhile, so another member never takes the partition and
/// handles the same entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_longer_than_the_lease_keeps_its_partition() {
    use chat_bus::consumer::{ConsumerOptions, consume};

    let redis = RedisServer::start();
    let (one, other) = (connect(redis.config()).await, connect(redis.config()).await);
    let options = |consumer: &str| ConsumerOptions {
        stream: "work",
        group: "workers",
        consumer: consumer.into(),
        partitions: 1,
        batch: 16,
        lease: Duration::from_millis(1500),
        min_read_interval: Duration::ZERO,
    };
    let stream = chat_bus::partitions::stream("work", 0);
    one.queue.append(&stream, payload("slow")).await.unwrap();

    let (handled, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let member = |bus: &RedisBus, name: &'static str| {
        let handled = handled.clone();
        tokio::spawn(consume(
            bus.queue.clone(),
            bus.state.clone(),
            options(name),
            shutdown.clone(),
            move |batches| {
                for batch in &batches {
                    for text in payloads(&batch.entries) {
                        let _ = handled.send((name, text));
                    }
                }
                // Well past the lease (1.5 s).
                tokio::time::sleep(Duration::from_secs(4))
            },
        ))
    };
    let first = member(&one, "first");
    let (holder, text) = timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("the first member handles the entry")
        .unwrap();
    assert_eq!((holder, text.as_str()), ("first", "slow"));
    let second = member(&other, "second");

    let again = timeout(Duration::from_secs(5), heard.recv()).await;
    assert!(
        again.is_err(),
        "handled a second time while the first member was still at it: {again:?}"
    );
    shutdown.cancel();
    for consumer in [first, second] {
        timeout(Duration::from_secs(10), consumer)
            .await
            .expect("the members stop")
            .unwrap();
    }
}
