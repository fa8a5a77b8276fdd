//! The Redis bus against real `redis-server` processes started by
//! `chat_bus::testing` (never the Redis on 6379): every guarantee of the
//! bus traits, the Redis-specific ones (re-subscription after a restart,
//! trimming, back-pressure, presence expiry, worker id leases), and a
//! 3-master Redis Cluster with sharded pub/sub.

use std::collections::HashSet;
use std::time::Duration;

use chat_bus::redis::{RedisBus, RedisConfig};
use chat_bus::testing::{RedisCluster, RedisServer, ServerOptions};
use chat_bus::{
    BusError, Delivery, EntryId, Payload, PubSub, RateDecision, SharedState, Subscription,
    WorkQueue,
};
use tokio::time::timeout;

fn payload(s: &str) -> Payload {
    Payload::copy_from_slice(s.as_bytes())
}

async fn connect(config: RedisConfig) -> RedisBus {
    RedisBus::connect(config).await.expect("connect to redis")
}

/// The next delivery, within a second.
async fn next(sub: &mut Subscription) -> Delivery {
    timeout(Duration::from_secs(1), sub.deliveries.recv())
        .await
        .expect("a delivery within a second")
        .expect("subscription open")
}

/// Nothing arrives within a short while.
async fn nothing(sub: &mut Subscription) {
    if let Ok(Some(d)) = timeout(Duration::from_millis(150), sub.deliveries.recv()).await {
        panic!("unexpected delivery on {}: {:?}", d.channel, d.payload);
    }
}

fn ids(entries: &[chat_bus::Entry]) -> Vec<EntryId> {
    entries.iter().map(|e| e.id.clone()).collect()
}

fn payloads(entries: &[chat_bus::Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect()
}

// ---------------------------------------------------------------- pub/sub

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_delivers_to_current_subscribers_only() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    let publisher = connect(redis.config()).await; // another process
    let mut a = bus.pubsub.subscribe(16).await.unwrap();
    let mut b = bus.pubsub.subscribe(64).await.unwrap();
    a.control.add("room:1").await.unwrap();
    a.control.add("room:1").await.unwrap();
    b.control.add("room:2").await.unwrap();
    let pubsub = &publisher.pubsub;
    pubsub.publish("room:1", payload("x")).await.unwrap();
    pubsub.publish("room:3", payload("nobody")).await.unwrap();
    let got = next(&mut a).await;
    assert_eq!((&*got.channel, &got.payload[..]), ("room:1", &b"x"[..]));
    nothing(&mut a).await; // added twice, delivered once
    nothing(&mut b).await;

    // In publish order.
    for i in 0..50 {
        pubsub
            .publish("room:2", payload(&i.to_string()))
            .await
            .unwrap();
    }
    for i in 0..50 {
        assert_eq!(next(&mut b).await.payload, payload(&i.to_string()));
    }

    a.control.remove("room:1").await.unwrap();
    a.control.remove("room:1").await.unwrap();
    pubsub.publish("room:1", payload("y")).await.unwrap();
    nothing(&mut a).await;
    assert_eq!(a.control.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_loses_deliveries_and_counts_them() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    let mut slow = bus.pubsub.subscribe(2).await.unwrap();
    slow.control.add("c").await.unwrap();
    for i in 0..5 {
        bus.pubsub
            .publish("c", payload(&i.to_string()))
            .await
            .unwrap();
    }
    // Deliveries travel through the server; wait until all were counted.
    let counted = async {
        while slow.control.dropped() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(Duration::from_secs(2), counted)
        .await
        .expect("3 drops counted");
    assert_eq!(slow.control.dropped(), 3);
    assert_eq!(next(&mut slow).await.payload, payload("0"));
    assert_eq!(next(&mut slow).await.payload, payload("1"));
    nothing(&mut slow).await;
}

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
    assert_eq!(next(&mut sub).await.payload, payload("before"));
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
        let d = next(&mut sub).await;
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

fn queue_config(redis: &RedisServer) -> RedisConfig {
    RedisConfig {
        stream_capacity: 4,
        append_timeout: Duration::from_millis(200),
        exact_trim: true,
        ..redis.config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_entry_goes_to_one_consumer_of_each_group() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    let q = &bus.queue;
    for p in ["a", "b", "c"] {
        q.append("s", payload(p)).await.unwrap();
    }
    let one = q.read("s", "g", "c1", 2, Duration::ZERO).await.unwrap();
    let two = q.read("s", "g", "c2", 10, Duration::ZERO).await.unwrap();
    let none = q.read("s", "g", "c3", 10, Duration::ZERO).await.unwrap();
    let other_group = q.read("s", "h", "c1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(payloads(&one), ["a", "b"]);
    assert_eq!(payloads(&two), ["c"]);
    assert!(none.is_empty());
    assert_eq!(payloads(&other_group), ["a", "b", "c"]);
    assert!(one.iter().all(|e| e.deliveries == 1));
    assert!(one[0].id < one[1].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumers_split_the_stream_without_overlap() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    for i in 0..200 {
        bus.queue
            .append("s", payload(&i.to_string()))
            .await
            .unwrap();
    }
    let mut readers = Vec::new();
    for c in 0..4 {
        let q = bus.queue.clone();
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = q
                    .read("s", "g", &format!("c{c}"), 7, Duration::from_millis(50))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                q.ack("s", "g", &ids(&batch)).await.unwrap();
                got.extend(payloads(&batch));
            }
        }));
    }
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(unique.len(), 200);
    assert_eq!(bus.queue.len("s").await.unwrap() as usize, 0, "all trimmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_entries_stay_pending_until_claimed() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    let q = &bus.queue;
    assert!(
        q.claim_stale("s", "g", "alive", Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty(),
        "no stream, no group: nothing to claim"
    );
    q.append("s", payload("a")).await.unwrap();
    q.append("s", payload("b")).await.unwrap();
    let taken = q.read("s", "g", "dead", 10, Duration::ZERO).await.unwrap();
    assert_eq!(taken.len(), 2);
    // Pending with "dead": not handed out again as new.
    assert!(
        q.read("s", "g", "alive", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        q.claim_stale("s", "g", "alive", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "not idle long enough"
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    let claimed = q
        .claim_stale("s", "g", "alive", Duration::from_millis(100), 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "at most max");
    assert_eq!(claimed[0].id, taken[0].id);
    assert_eq!(claimed[0].payload, payload("a"));
    assert_eq!(claimed[0].deliveries, 2);
    let again = q
        .claim_stale("s", "g", "third", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(payloads(&again), ["a", "b"]);
    assert_eq!(again[0].deliveries, 3);
    assert_eq!(again[1].deliveries, 2);
    q.ack("s", "g", &ids(&again)).await.unwrap();
    q.ack("s", "g", &ids(&again)).await.unwrap(); // twice is harmless
    assert!(
        q.claim_stale("s", "g", "alive", Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_created_after_the_entries_still_sees_them() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    bus.queue.append("s", payload("early")).await.unwrap();
    let late = connect(redis.config()).await; // a consumer starting later
    let got = late
        .queue
        .read("s", "new-group", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(payloads(&got), ["early"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_wait_for_appends() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    // Create the group first so the reader blocks on an existing stream.
    assert!(
        bus.queue
            .read("s", "g", "c", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    let reader = {
        let q = bus.queue.clone();
        tokio::spawn(async move { q.read("s", "g", "c", 10, Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    bus.queue.append("s", payload("late")).await.unwrap();
    let got = reader.await.unwrap().unwrap();
    assert_eq!(payloads(&got), ["late"]);
    assert!(started.elapsed() < Duration::from_secs(1));
    // An empty wait answers empty after about the wait.
    let started = std::time::Instant::now();
    let none = bus
        .queue
        .read("s", "g", "c", 10, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(190));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_drops_only_what_every_group_acknowledged() {
    let redis = RedisServer::start();
    let bus = connect(RedisConfig {
        stream_capacity: 100,
        ..queue_config(&redis)
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
    assert_eq!(q.len("s").await.unwrap(), 10, "audit has read nothing yet");

    let a = q.read("s", "audit", "c", 10, Duration::ZERO).await.unwrap();
    q.ack("s", "audit", &ids(&a)).await.unwrap();
    // Everything from the persisters' pending entry on stays.
    assert_eq!(q.len("s").await.unwrap(), 8);
    let claimed = q
        .claim_stale("s", "persisters", "other", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), std::slice::from_ref(&kept));
    assert_eq!(claimed[0].payload, payload("2"));
    q.ack("s", "persisters", &[kept]).await.unwrap();
    assert_eq!(q.len("s").await.unwrap(), 0);

    // An entry not yet read by a group is never trimmed.
    q.append("s", payload("new")).await.unwrap();
    let p = q
        .read("s", "persisters", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    q.ack("s", "persisters", &ids(&p)).await.unwrap();
    assert_eq!(q.len("s").await.unwrap(), 1, "audit still needs it");
    let a = q.read("s", "audit", "c", 10, Duration::ZERO).await.unwrap();
    assert_eq!(payloads(&a), ["new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_pushes_back_until_entries_are_acknowledged() {
    let redis = RedisServer::start();
    let bus = connect(queue_config(&redis)).await;
    let q = &bus.queue;
    let _ = q.read("s", "g", "c", 1, Duration::ZERO).await.unwrap();
    for i in 0..4 {
        q.append("s", payload(&i.to_string())).await.unwrap();
    }
    let started = std::time::Instant::now();
    assert!(matches!(
        q.append("s", payload("x")).await,
        Err(BusError::Unavailable(_))
    ));
    assert!(started.elapsed() >= Duration::from_millis(190), "it waited");

    // Room that frees up while waiting is taken.
    let waiting = {
        let q = bus.queue.clone();
        tokio::spawn(async move { q.append("s", payload("waited")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let taken = q.read("s", "g", "c", 2, Duration::ZERO).await.unwrap();
    q.ack("s", "g", &ids(&taken)).await.unwrap();
    waiting.await.unwrap().unwrap();
    q.append("s", payload("fits")).await.unwrap();
    assert_eq!(q.len("s").await.unwrap(), 4);
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
async fn sharded_streams_hand_out_every_entry_once() {
    let redis = RedisServer::start();
    let config = RedisConfig {
        stream_shards: 3,
        stream_capacity: 30,
        exact_trim: true,
        append_timeout: Duration::from_millis(100),
        ..redis.config()
    };
    let bus = connect(config.clone()).await;
    let mut appended = HashSet::new();
    for i in 0..30 {
        let id = bus
            .queue
            .append("s", payload(&i.to_string()))
            .await
            .unwrap();
        assert!(appended.insert(id));
    }
    assert!(matches!(
        bus.queue.append("s", payload("full")).await,
        Err(BusError::Unavailable(_))
    ));
    // Three keys, ten entries each.
    for shard in 0..3 {
        assert_eq!(redis.cli(&["xlen", &format!("chat:{{s:{shard}}}")]), "10");
    }
    let other = connect(config).await;
    let mut seen = Vec::new();
    let first = bus
        .queue
        .read("s", "g", "a", 7, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(first.len(), 7, "at most max, across shards");
    let dead: Vec<EntryId> = ids(&first);
    loop {
        let batch = other
            .queue
            .read("s", "g", "b", 8, Duration::from_millis(100))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        other.queue.ack("s", "g", &ids(&batch)).await.unwrap();
        seen.extend(ids(&batch));
    }
    assert_eq!(seen.len(), 23);
    let claimed = other
        .queue
        .claim_stale("s", "g", "b", Duration::ZERO, 100)
        .await
        .unwrap();
    let mut claimed_ids = ids(&claimed);
    claimed_ids.sort();
    let mut dead_sorted = dead.clone();
    dead_sorted.sort();
    assert_eq!(claimed_ids, dead_sorted);
    other.queue.ack("s", "g", &claimed_ids).await.unwrap();
    seen.extend(claimed_ids);
    let seen: HashSet<EntryId> = seen.into_iter().collect();
    assert_eq!(seen, appended);
    assert_eq!(bus.queue.len("s").await.unwrap(), 0);

    // A blocked reader wakes for an entry on any shard.
    let reader = {
        let q = other.queue.clone();
        tokio::spawn(async move { q.read("s", "g", "b", 10, Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    for i in 0..3 {
        bus.queue
            .append("s", payload(&format!("late{i}")))
            .await
            .unwrap();
    }
    let got = reader.await.unwrap().unwrap();
    assert!(!got.is_empty());
    assert!(started.elapsed() < Duration::from_secs(1));
}

// ---------------------------------------------------------------- shared state

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_allows_a_burst_then_the_rate() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    let state = &bus.state;
    for _ in 0..20 {
        assert_eq!(
            state.take_token("u", 10.0, 20).await.unwrap(),
            RateDecision::Allowed
        );
    }
    let RateDecision::Limited { retry_after } = state.take_token("u", 10.0, 20).await.unwrap()
    else {
        panic!("the 21st is limited");
    };
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_millis(100),
        "{retry_after:?}"
    );
    assert_eq!(
        state.take_token("other", 10.0, 20).await.unwrap(),
        RateDecision::Allowed
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        state.take_token("u", 10.0, 20).await.unwrap(),
        RateDecision::Allowed
    );
    // The bucket expires once it would be full again (2 s at 10/s).
    let ttl: i64 = redis.cli(&["pttl", "chat:rate:u"]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 2_001, "{ttl}");

    // Shared by every process: 20 concurrent takers from two connections
    // of a bucket of 10 get exactly 10 tokens.
    let other = connect(redis.config()).await;
    let takers = (0..20).map(|i| {
        let state = if i % 2 == 0 {
            bus.state.clone()
        } else {
            other.state.clone()
        };
        tokio::spawn(async move { state.take_token("shared", 0.001, 10).await.unwrap() })
    });
    let mut allowed = 0;
    for t in takers {
        if t.await.unwrap() == RateDecision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_if_absent_is_atomic_and_keeps_the_first_live_value() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    let other = connect(redis.config()).await;
    let callers = (0..20).map(|i| {
        let state = if i % 2 == 0 {
            bus.state.clone()
        } else {
            other.state.clone()
        };
        tokio::spawn(async move {
            let mine = payload(&i.to_string());
            let answer = state
                .put_if_absent("k", mine.clone(), Duration::from_secs(60))
                .await
                .unwrap();
            (mine, answer)
        })
    });
    let mut stored = Vec::new();
    let mut answers = Vec::new();
    for c in callers {
        let (mine, answer) = c.await.unwrap();
        match answer {
            None => stored.push(mine),
            Some(existing) => answers.push(existing),
        }
    }
    assert_eq!(stored.len(), 1, "exactly one stores");
    assert!(answers.iter().all(|a| *a == stored[0]), "the others see it");

    let state = &bus.state;
    assert_eq!(
        state
            .put_if_absent("short", payload("a"), Duration::from_millis(50))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        state
            .put_if_absent("short", payload("b"), Duration::from_millis(50))
            .await
            .unwrap(),
        Some(payload("a"))
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(
        state
            .put_if_absent("short", payload("c"), Duration::from_secs(60))
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        state
            .put_if_absent("zero", payload("a"), Duration::ZERO)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        state
            .put_if_absent("zero", payload("b"), Duration::ZERO)
            .await
            .unwrap(),
        None,
        "a zero ttl keeps nothing"
    );
    state.remove("k").await.unwrap();
    state.remove("k").await.unwrap();
    assert_eq!(
        state
            .put_if_absent("k", payload("again"), Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
    // Binary values survive.
    let binary = Payload::from_static(&[0, 159, 146, 150, 255]);
    state
        .put_if_absent("bin", binary.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        state
            .put_if_absent("bin", payload("x"), Duration::from_secs(60))
            .await
            .unwrap(),
        Some(binary)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_turns_on_with_the_first_connection_and_off_with_the_last() {
    let redis = RedisServer::start();
    let bus = connect(redis.config()).await;
    let state = &bus.state;
    let ttl = Duration::from_secs(60);
    assert!(state.connection_opened("u", "c1", ttl).await.unwrap());
    assert!(!state.connection_opened("u", "c2", ttl).await.unwrap());
    assert!(!state.connection_opened("u", "c2", ttl).await.unwrap());
    assert_eq!(
        state.online(&["u".into(), "v".into()]).await.unwrap(),
        [true, false]
    );
    assert!(!state.connection_closed("u", "c1").await.unwrap());
    assert!(
        !state.connection_closed("u", "c1").await.unwrap(),
        "closing twice"
    );
    assert!(state.connection_closed("u", "c2").await.unwrap());
    assert!(!state.connection_closed("u", "c2").await.unwrap());
    assert_eq!(state.online(&["u".into()]).await.unwrap(), [false]);
    assert!(state.online(&[]).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_transitions_are_answered_once_under_concurrency() {
    let redis = RedisServer::start();
    let a = connect(redis.config()).await;
    let b = connect(redis.config()).await;
    let ttl = Duration::from_secs(60);
    for round in 0..5 {
        let user = format!("user{round}");
        let opens = (0..20).map(|c| {
            let state = if c % 2 == 0 {
                a.state.clone()
            } else {
                b.state.clone()
            };
            let user = user.clone();
            tokio::spawn(async move {
                state
                    .connection_opened(&user, &format!("conn{c}"), ttl)
                    .await
                    .unwrap()
            })
        });
        let mut online = 0;
        for o in opens {
            online += usize::from(o.await.unwrap());
        }
        assert_eq!(online, 1, "one online transition");
        let closes = (0..20).map(|c| {
            let state = if c % 2 == 0 {
                a.state.clone()
            } else {
                b.state.clone()
            };
            let user = user.clone();
            tokio::spawn(async move {
                state
                    .connection_closed(&user, &format!("conn{c}"))
                    .await
                    .unwrap()
            })
        });
        let mut offline = 0;
        for c in closes {
            offline += usize::from(c.await.unwrap());
        }
        assert_eq!(offline, 1, "one offline transition");
    }
    assert!(
        a.state.expired_connections(100).await.unwrap().is_empty(),
        "closed connections never expire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_are_not_kept_alive_expire_once() {
    let redis = RedisServer::start();
    let a = connect(redis.config()).await;
    let b = connect(redis.config()).await;
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(60);
    // "crashed": two connections on a dead gateway.
    assert!(
        a.state
            .connection_opened("crashed", "g1-1", short)
            .await
            .unwrap()
    );
    assert!(
        !a.state
            .connection_opened("crashed", "g1-2", short)
            .await
            .unwrap()
    );
    // "kept": one connection kept alive, one dead.
    assert!(
        a.state
            .connection_opened("kept", "g2-1", short)
            .await
            .unwrap()
    );
    assert!(
        !a.state
            .connection_opened("kept", "g1-3", short)
            .await
            .unwrap()
    );
    // "stayed": a long-lived connection.
    assert!(
        a.state
            .connection_opened("stayed", "g2-2", long)
            .await
            .unwrap()
    );
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.state
            .connection_alive("kept", "g2-1", short)
            .await
            .unwrap();
    }
    a.state
        .connection_alive("kept", "g2-1", long)
        .await
        .unwrap();
    assert_eq!(
        a.state
            .online(&["crashed".into(), "kept".into(), "stayed".into()])
            .await
            .unwrap(),
        [false, true, true],
        "expired connections do not count, even before a sweep"
    );
    // An expired connection is not revived by a late heartbeat.
    a.state
        .connection_alive("crashed", "g1-1", long)
        .await
        .unwrap();
    assert_eq!(a.state.online(&["crashed".into()]).await.unwrap(), [false]);

    // Two routers sweep at once; "crashed" is answered once, by one.
    let sweeps = [a.state.clone(), b.state.clone()].map(|state| {
        tokio::spawn(async move {
            // One connection per call, more calls than connections.
            let mut users = Vec::new();
            for _ in 0..10 {
                users.extend(state.expired_connections(1).await.unwrap());
            }
            users
        })
    });
    let mut offline = Vec::new();
    for s in sweeps {
        offline.extend(s.await.unwrap());
    }
    assert_eq!(offline, ["crashed"]);
    assert!(a.state.expired_connections(100).await.unwrap().is_empty());
    // Closing what was swept answers nothing more.
    assert!(!a.state.connection_closed("crashed", "g1-1").await.unwrap());
    assert_eq!(
        a.state
            .online(&["crashed".into(), "kept".into()])
            .await
            .unwrap(),
        [false, true]
    );

    // A connection that expired but was closed before any sweep: the close
    // answers the transition, the sweep does not.
    assert!(a.state.connection_opened("late", "x", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(a.state.connection_closed("late", "x").await.unwrap());
    assert!(a.state.expired_connections(100).await.unwrap().is_empty());

    // Re-opening after an unswept expiry answers online again, and the old
    // connection's expiry is not reported afterwards.
    assert!(
        a.state
            .connection_opened("back", "old", short)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        a.state
            .connection_opened("back", "new", long)
            .await
            .unwrap()
    );
    assert!(a.state.expired_connections(100).await.unwrap().is_empty());
    assert_eq!(a.state.online(&["back".into()]).await.unwrap(), [true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_ids_are_leased_uniquely_and_renewed_only_by_their_owner() {
    let redis = RedisServer::start();
    let a = connect(redis.config()).await;
    let b = connect(redis.config()).await;
    let ttl = Duration::from_secs(60);
    let leasers = (0..50).map(|i| {
        let state = if i % 2 == 0 {
            a.state.clone()
        } else {
            b.state.clone()
        };
        tokio::spawn(async move {
            let owner = format!("process-{i}");
            let id = state.lease_worker_id(&owner, ttl).await.unwrap();
            (owner, id)
        })
    });
    let mut leases = Vec::new();
    for l in leasers {
        leases.push(l.await.unwrap());
    }
    let unique: HashSet<u16> = leases.iter().map(|(_, id)| *id).collect();
    assert_eq!(unique.len(), 50, "no two owners share an id");
    assert!(unique.iter().all(|id| *id <= chat_bus::MAX_WORKER_ID));

    let (owner, id) = &leases[0];
    assert!(a.state.renew_worker_id(*id, owner, ttl).await.unwrap());
    assert!(
        !a.state
            .renew_worker_id(*id, "someone else", ttl)
            .await
            .unwrap()
    );
    let free = (0..=chat_bus::MAX_WORKER_ID)
        .find(|i| !unique.contains(i))
        .unwrap();
    assert!(
        !a.state.renew_worker_id(free, owner, ttl).await.unwrap(),
        "an id never leased"
    );

    // A lease that runs out can be taken by someone else, and its old
    // owner cannot renew it any more.
    let short_id = a
        .state
        .lease_worker_id("short-lived", Duration::from_millis(100))
        .await
        .unwrap();
    assert!(!unique.contains(&short_id));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !a.state
            .renew_worker_id(short_id, "short-lived", ttl)
            .await
            .unwrap()
    );
    assert_eq!(
        redis.cli(&["exists", &format!("chat:{{workers}}:{short_id}")]),
        "0"
    );
    a.state.ping().await.unwrap();
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
    nothing(&mut sub).await;
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
        let d = next(&mut sub).await;
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
    nothing(&mut sub).await;

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
        bus.state.take_token("k", 1.0, 1).await.unwrap(),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_sharded_streams_spread_over_the_nodes() {
    let cluster = RedisCluster::start(3);
    let bus = connect(RedisConfig {
        stream_shards: 4,
        ..cluster.config()
    })
    .await;
    for i in 0..20 {
        bus.queue
            .append("persist", payload(&i.to_string()))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    loop {
        let batch = bus
            .queue
            .read("persist", "persisters", "p", 6, Duration::from_millis(100))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        bus.queue
            .ack("persist", "persisters", &ids(&batch))
            .await
            .unwrap();
        got.extend(payloads(&batch));
    }
    got.sort_by_key(|p| p.parse::<u32>().unwrap());
    assert_eq!(got, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(bus.queue.len("persist").await.unwrap(), 0);
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
