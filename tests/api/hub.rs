//! The gateway's hub under a slow broker, with real gateways on a real
//! Redis: subscription changes wait for Redis, deliveries to rooms already
//! subscribed do not.

use std::net::SocketAddr;
use std::time::Duration;

use chat_bus::testing::RedisServer;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::harness::Server;
use crate::ws::Ws;

const CLUSTER_ENV: &[(&str, &str)] = &[
    ("CHAT_REALTIME__REPLY_TIMEOUT_MS", "3000"),
    ("CHAT_RATES__SEND_PER_SECOND", "100000"),
    ("CHAT_RATES__SEND_BURST", "100000"),
];

fn start(role: &str, dir: &TempDir, redis_url: &str) -> Server {
    let mut env = CLUSTER_ENV.to_vec();
    env.push(("CHAT_REDIS_URL", redis_url));
    Server::start_role(role, dir.path(), &env)
}

/// A TCP proxy in front of Redis whose client-to-Redis direction can be
/// held: commands (SUBSCRIBE included) wait, while what Redis pushes to
/// existing subscriptions still flows — a Redis that answers slowly, as
/// seen from one gateway.
struct SlowLink {
    address: SocketAddr,
    hold: watch::Sender<bool>,
}

impl SlowLink {
    async fn to(redis: SocketAddr) -> SlowLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (hold, held) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(redis).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut redis_read, mut redis_write) = upstream.into_split();
                let mut held = held.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    loop {
                        let Ok(n) = client_read.read(&mut buffer).await else {
                            break;
                        };
                        if n == 0 || held.wait_for(|held| !*held).await.is_err() {
                            break;
                        }
                        if redis_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut redis_read, &mut client_write).await;
                });
            }
        });
        SlowLink { address, hold }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.address)
    }

    fn hold(&self, held: bool) {
        self.hold.send_replace(held);
    }
}

/// Bob's gateway reaches Redis through a link that stops passing commands
/// while Carol connects there: her SUBSCRIBEs wait, yet Bob keeps getting
/// the messages of his room, which the gateway already listens to. Once
/// Redis answers again, Carol is served too.
#[tokio::test]
async fn a_slow_redis_does_not_stop_deliveries_to_subscribed_rooms() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let redis_address: SocketAddr = format!("127.0.0.1:{}", redis.port()).parse().unwrap();
    let link = SlowLink::to(redis_address).await;
    let _router = start("router", &dir, &redis.url());
    let _persist = start("persist", &dir, &redis.url());
    let gw_direct = start("gateway", &dir, &redis.url());
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
        .map(|r| r["room"]["id"].as_str().unwrap())
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
