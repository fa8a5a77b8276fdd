//! Cases: [`PubSub`](crate::PubSub), at-most-once delivery to the
//! current subscribers of a channel, in publish order.

use std::time::Duration;

use tokio::time::timeout;

use super::helpers::{next_delivery, no_delivery, payload, unique};
use crate::{Bus, Payload, PubSub};

/// [`PubSub::publish`] reaches every subscription of the channel existing
/// when it is processed, at most once (a channel added twice is delivered
/// once), in publish order, and no other: neither a subscription to another
/// channel nor one that removed the channel. `add` and `remove` are
/// idempotent. The publisher is another process on the same backend.
pub async fn pubsub_delivers_to_current_subscribers_only(bus: &Bus, publisher: &Bus) {
    let [first, second, unheard] = ["room", "room", "room"].map(unique);
    let mut a = bus.pubsub.subscribe(16).await.unwrap();
    let mut b = bus.pubsub.subscribe(64).await.unwrap();
    a.control.add(&first).await.unwrap();
    a.control.add(&first).await.unwrap();
    b.control.add(&second).await.unwrap();
    let pubsub = &publisher.pubsub;
    pubsub.publish(&first, payload("x")).await.unwrap();
    pubsub.publish(&unheard, payload("nobody")).await.unwrap();
    let got = next_delivery(&mut a).await;
    assert_eq!(
        (&*got.channel, &got.payload[..]),
        (first.as_str(), &b"x"[..])
    );
    no_delivery(&mut a, "added twice, delivered once").await;
    no_delivery(&mut b, "another channel").await;

    // In publish order.
    for i in 0..50 {
        pubsub
            .publish(&second, payload(&i.to_string()))
            .await
            .unwrap();
    }
    for i in 0..50 {
        assert_eq!(next_delivery(&mut b).await.payload, payload(&i.to_string()));
    }

    a.control.remove(&first).await.unwrap();
    a.control.remove(&first).await.unwrap();
    pubsub.publish(&first, payload("y")).await.unwrap();
    no_delivery(&mut a, "removed").await;
    assert_eq!(a.control.dropped(), 0);
}

/// [`PubSub::publish_all`] is as many [`PubSub::publish`] calls: each
/// item reaches the subscriptions of its channel once, and the items of
/// one channel arrive in list order, whatever other channels are
/// interleaved with them. An empty batch is a no-op.
pub async fn publish_all_delivers_each_item_once_in_order_per_channel(bus: &Bus, publisher: &Bus) {
    let [rooms, users, unheard] = ["room", "user", "room"].map(unique);
    let mut subscription = bus.pubsub.subscribe(256).await.unwrap();
    subscription.control.add(&rooms).await.unwrap();
    subscription.control.add(&users).await.unwrap();
    let channel_of = |i: usize| match i % 5 {
        0 => users.clone(),
        4 => unheard.clone(),
        _ => rooms.clone(),
    };
    let items: Vec<(String, Payload)> = (0..60)
        .map(|i| (channel_of(i), payload(&i.to_string())))
        .collect();
    publisher.pubsub.publish_all(items).await.unwrap();
    let mut heard: Vec<(String, Payload)> = Vec::new();
    let expected = (0..60).filter(|i| i % 5 != 4).count();
    for _ in 0..expected {
        let delivery = next_delivery(&mut subscription).await;
        heard.push((delivery.channel.to_string(), delivery.payload));
    }
    no_delivery(&mut subscription, "each item once, none of another channel").await;
    for channel in [&rooms, &users] {
        let wanted: Vec<Payload> = (0..60)
            .filter(|&i| channel_of(i) == *channel)
            .map(|i| payload(&i.to_string()))
            .collect();
        let got: Vec<Payload> = heard
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(got, wanted, "in list order on {channel}");
    }
    publisher.pubsub.publish_all(Vec::new()).await.unwrap();
    no_delivery(&mut subscription, "an empty batch publishes nothing").await;
}

/// A subscriber that falls behind loses the deliveries beyond its
/// capacity, and counts them (`Subscriptions::dropped`), rather than
/// slowing the publisher; what it kept arrives in order.
pub async fn a_slow_subscriber_loses_deliveries_and_counts_them(pubsub: &dyn PubSub) {
    let channel = unique("c");
    let mut slow = pubsub.subscribe(2).await.unwrap();
    slow.control.add(&channel).await.unwrap();
    for i in 0..5 {
        pubsub
            .publish(&channel, payload(&i.to_string()))
            .await
            .unwrap();
    }
    // Deliveries may travel through a server; wait until all were counted.
    let counted = async {
        while slow.control.dropped() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if timeout(Duration::from_secs(2), counted).await.is_err() {
        panic!("3 drops counted within 2 s, not {}", slow.control.dropped());
    }
    assert_eq!(slow.control.dropped(), 3);
    assert_eq!(next_delivery(&mut slow).await.payload, payload("0"));
    assert_eq!(next_delivery(&mut slow).await.payload, payload("1"));
    no_delivery(&mut slow, "the rest was dropped").await;
}
