//! Cases: [`WorkQueue`](crate::WorkQueue), durable work streams read by
//! consumer groups: one consumer per entry, pending until acknowledged,
//! bounded with push-back.

use std::collections::HashSet;
use std::time::Duration;

use super::helpers::{ids, payload, payloads, unique};
use super::{APPEND_TIMEOUT, STREAM_CAPACITY, StreamLengths};
use crate::{Bus, BusError, WorkQueue};

/// [`WorkQueue::read`] hands each entry to one consumer of each group, in
/// append order, at most `max` at a time, as a first delivery; entry ids
/// increase in append order.
pub async fn each_entry_goes_to_one_consumer_of_each_group(queue: &dyn WorkQueue) {
    let stream = unique("s");
    for p in ["a", "b", "c"] {
        queue.append(&stream, payload(p)).await.unwrap();
    }
    let read = |group: &'static str, consumer: &'static str, max: usize| {
        queue.read(&stream, group, consumer, max, Duration::ZERO)
    };
    let one = read("g", "c1", 2).await.unwrap();
    let two = read("g", "c2", 10).await.unwrap();
    let none = read("g", "c3", 10).await.unwrap();
    let other_group = read("h", "c1", 10).await.unwrap();
    assert_eq!(payloads(&one), ["a", "b"]);
    assert_eq!(payloads(&two), ["c"]);
    assert!(none.is_empty());
    assert_eq!(payloads(&other_group), ["a", "b", "c"]);
    assert!(one.iter().all(|e| e.deliveries == 1));
    assert!(one[0].id < one[1].id);
}

/// A group's backlog is what it has not acknowledged, handed out or not,
/// aged by its oldest entry.
pub async fn the_backlog_counts_what_a_group_has_not_acknowledged(queue: &dyn WorkQueue) {
    let stream = unique("s");
    assert_eq!(
        queue.backlog(&stream, "g").await.unwrap(),
        crate::Backlog::default()
    );
    for p in ["a", "b", "c"] {
        queue.append(&stream, payload(p)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before_reading = queue.backlog(&stream, "g").await.unwrap();
    assert_eq!(before_reading.entries, 3);
    assert!(before_reading.oldest_age >= Some(Duration::from_millis(20)));
    let read = queue
        .read(&stream, "g", "c1", 2, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(queue.backlog(&stream, "g").await.unwrap().entries, 3);
    queue.ack(&stream, "g", &ids(&read)).await.unwrap();
    let after_ack = queue.backlog(&stream, "g").await.unwrap();
    assert_eq!(after_ack.entries, 1);
    assert!(after_ack.oldest_age.is_some());
    let rest = queue
        .read(&stream, "g", "c1", 10, Duration::ZERO)
        .await
        .unwrap();
    queue.ack(&stream, "g", &ids(&rest)).await.unwrap();
    assert_eq!(
        queue.backlog(&stream, "g").await.unwrap(),
        crate::Backlog::default()
    );
}

/// Consumers of one group reading concurrently share the stream without
/// overlap: every entry goes to exactly one of them. Once all are
/// acknowledged, the stream is empty.
pub async fn concurrent_consumers_split_the_stream_without_overlap(
    bus: &Bus,
    lengths: &dyn StreamLengths,
) {
    let stream = unique("s");
    for i in 0..200 {
        bus.queue
            .append(&stream, payload(&i.to_string()))
            .await
            .unwrap();
    }
    let mut readers = Vec::new();
    for c in 0..4 {
        let (q, stream) = (bus.queue.clone(), stream.clone());
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = q
                    .read(&stream, "g", &format!("c{c}"), 7, Duration::from_millis(50))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                q.ack(&stream, "g", &ids(&batch)).await.unwrap();
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
    bus.queue.trim(&stream, "g").await.unwrap();
    assert_eq!(lengths.stream_len(&stream).await.unwrap(), 0, "all trimmed");
}

/// An entry stays pending with its consumer until acknowledged: it is not
/// handed out again as new, and [`WorkQueue::claim_stale`] hands it (at
/// most `max`, only once idle for `min_idle`) to another consumer, counting
/// the deliveries. Acknowledging twice is harmless; acknowledged entries
/// are not claimed again and leave the stream. Claiming from a stream or
/// group that does not exist answers nothing.
pub async fn unacknowledged_entries_stay_pending_until_claimed(
    bus: &Bus,
    lengths: &dyn StreamLengths,
) {
    let q = &*bus.queue;
    let s = &unique("s");
    assert!(
        q.claim_stale(s, "g", "alive", Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty(),
        "no stream, no group: nothing to claim"
    );
    q.append(s, payload("a")).await.unwrap();
    q.append(s, payload("b")).await.unwrap();
    let taken = q.read(s, "g", "dead", 10, Duration::ZERO).await.unwrap();
    assert_eq!(taken.len(), 2);
    // Pending with "dead": not handed out again as new.
    assert!(
        q.read(s, "g", "alive", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        q.claim_stale(s, "g", "alive", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "not idle long enough"
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    let claimed = q
        .claim_stale(s, "g", "alive", Duration::from_millis(100), 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "at most max");
    assert_eq!(claimed[0].id, taken[0].id);
    assert_eq!(claimed[0].payload, payload("a"));
    assert_eq!(claimed[0].deliveries, 2);
    let again = q
        .claim_stale(s, "g", "third", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(payloads(&again), ["a", "b"]);
    assert_eq!(again[0].deliveries, 3);
    assert_eq!(again[1].deliveries, 2);
    q.ack(s, "g", &ids(&again)).await.unwrap();
    q.ack(s, "g", &ids(&again)).await.unwrap(); // twice is harmless
    assert!(
        q.claim_stale(s, "g", "alive", Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
    q.trim(s, "g").await.unwrap();
    assert_eq!(
        lengths.stream_len(s).await.unwrap(),
        0,
        "acknowledged entries are dropped"
    );
}

/// A group is created on first use and starts at the oldest entry still in
/// the stream, even when that use is by another process than the appender.
pub async fn a_group_created_after_the_entries_still_sees_them(bus: &Bus, late: &Bus) {
    let stream = unique("s");
    bus.queue.append(&stream, payload("early")).await.unwrap();
    let got = late
        .queue
        .read(&stream, "new-group", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(payloads(&got), ["early"]);
}

/// A reader waits up to `wait` for an entry and gets one appended
/// meanwhile at once; with none, it answers empty after about `wait`.
pub async fn readers_wait_for_appends(bus: &Bus) {
    let stream = unique("s");
    // Create the group first so the reader blocks on an existing stream.
    assert!(
        bus.queue
            .read(&stream, "g", "c", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    let reader = {
        let (q, stream) = (bus.queue.clone(), stream.clone());
        tokio::spawn(async move { q.read(&stream, "g", "c", 10, Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    bus.queue.append(&stream, payload("late")).await.unwrap();
    let got = reader.await.unwrap().unwrap();
    assert_eq!(payloads(&got), ["late"]);
    assert!(started.elapsed() < Duration::from_secs(1));
    // An empty wait answers empty after about the wait.
    let started = std::time::Instant::now();
    let none = bus
        .queue
        .read(&stream, "g", "c", 10, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(190));
}

/// Streams are bounded: [`WorkQueue::append`] to a full stream waits for
/// room and fails with `Unavailable` when none frees up in time, and takes
/// room that acknowledgements free while it waits.
pub async fn a_full_stream_pushes_back_until_entries_are_acknowledged(
    bus: &Bus,
    lengths: &dyn StreamLengths,
) {
    let q = &bus.queue;
    let s = &unique("s");
    let _ = q.read(s, "g", "c", 1, Duration::ZERO).await.unwrap();
    for i in 0..STREAM_CAPACITY {
        q.append(s, payload(&i.to_string())).await.unwrap();
    }
    let started = std::time::Instant::now();
    assert!(matches!(
        q.append(s, payload("x")).await,
        Err(BusError::Unavailable(_))
    ));
    assert!(
        started.elapsed() >= APPEND_TIMEOUT - Duration::from_millis(10),
        "it waited"
    );

    // Room that frees up while waiting is taken.
    let waiting = {
        let (q, s) = (q.clone(), s.clone());
        tokio::spawn(async move { q.append(&s, payload("waited")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let taken = q.read(s, "g", "c", 2, Duration::ZERO).await.unwrap();
    q.ack(s, "g", &ids(&taken)).await.unwrap();
    waiting.await.unwrap().unwrap();
    q.append(s, payload("fits")).await.unwrap();
    assert_eq!(lengths.stream_len(s).await.unwrap(), STREAM_CAPACITY as u64);
}

/// [`WorkQueue::read_many`] answers entries of every stream asked for, each
/// stream's in append order and tagged with its index, at most `max` per
/// stream, and wakes for an append to any of them.
pub async fn read_many_takes_from_every_stream_in_order(bus: &Bus) {
    let base = unique("parts");
    let streams: Vec<String> = (0..3).map(|p| format!("{base}.{p}")).collect();
    for (index, stream) in streams.iter().enumerate() {
        for n in 0..4 {
            bus.queue
                .append(stream, payload(&format!("{index}-{n}")))
                .await
                .unwrap();
        }
    }
    let got = bus
        .queue
        .read_many(&streams, "g", "c", 3, Duration::ZERO)
        .await
        .unwrap();
    for index in 0..3 {
        let of_stream: Vec<String> = got
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, e)| String::from_utf8_lossy(&e.payload).into_owned())
            .collect();
        let expected: Vec<String> = (0..3).map(|n| format!("{index}-{n}")).collect();
        assert_eq!(of_stream, expected, "stream {index}: the first 3, in order");
    }
    let rest = bus
        .queue
        .read_many(&streams, "g", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(rest.len(), 3, "one more in each");
    let reader = {
        let (q, streams) = (bus.queue.clone(), streams.clone());
        tokio::spawn(async move {
            q.read_many(&streams, "g", "c", 10, Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.queue
        .append(&streams[2], payload("late"))
        .await
        .unwrap();
    let late = reader.await.unwrap().unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, 2, "tagged with its stream");
    assert_eq!(&late[0].1.payload[..], b"late");
}
