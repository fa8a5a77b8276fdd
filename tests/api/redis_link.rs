//! A TCP proxy in front of a real Redis, for one process of a cluster:
//! the network between that process and Redis, which a test can break in
//! the two ways that matter to a client of Redis.
//!
//! - **Held**: commands (SUBSCRIBE included) wait, while what Redis pushes
//!   to existing subscriptions still flows: a Redis that answers slowly.
//! - **Cut after a command**: the command reaches Redis, which applies it,
//!   and the connection closes before its answer comes back. The client
//!   sees an error for a command that took effect: the outcome it cannot
//!   know, which every append and claim must be ready for.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a cut connection stays open after passing its last command:
/// Redis applies a command as soon as it reads it, well within this.
const APPLIED_WITHIN: Duration = Duration::from_millis(200);

pub struct RedisLink {
    address: SocketAddr,
    hold: watch::Sender<bool>,
    shared: Arc<Cuts>,
}

/// The armed cut, shared by every connection of the link.
#[derive(Default)]
struct Cuts {
    /// Bytes that mark the command to cut after, until one connection
    /// takes them.
    armed: Mutex<Option<Vec<u8>>>,
    made: AtomicUsize,
}

impl Cuts {
    /// Whether `chunk` is the one to cut after (once per arming).
    fn take_if_marked(&self, chunk: &[u8]) -> bool {
        let mut armed = self.armed.lock().unwrap();
        let marked = armed
            .as_deref()
            .is_some_and(|marker| chunk.windows(marker.len()).any(|w| w == marker));
        if marked {
            *armed = None;
        }
        marked
    }
}

impl RedisLink {
    /// Starts the proxy on a thread of its own: the harness blocks the
    /// test's runtime while a server starts, and this server needs the
    /// proxy to start.
    pub fn to(redis: SocketAddr) -> RedisLink {
        let (hold, held) = watch::channel(false);
        let shared = Arc::new(Cuts::default());
        let cuts = shared.clone();
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                address_tx.send(listener.local_addr().unwrap()).unwrap();
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(upstream) = TcpStream::connect(redis).await else {
                        continue;
                    };
                    tokio::spawn(pass(client, upstream, held.clone(), cuts.clone()));
                }
            });
        });
        let address = address_rx.recv().unwrap();
        RedisLink {
            address,
            hold,
            shared,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.address)
    }

    /// Holds (or lets go) every command on the link.
    pub fn hold(&self, held: bool) {
        self.hold.send_replace(held);
    }

    /// Cuts the connection that next sends a command containing `marker`:
    /// the command goes through, nothing more does either way, and the
    /// connection closes once Redis has applied it.
    pub fn cut_after(&self, marker: &[u8]) {
        *self.shared.armed.lock().unwrap() = Some(marker.to_vec());
    }

    /// How many connections were cut (counted as their command goes
    /// through).
    pub fn cuts(&self) -> usize {
        self.shared.made.load(Ordering::SeqCst)
    }
}

/// Copies both ways; the client-to-Redis direction waits while held, and
/// a cut stops both.
async fn pass(
    client: TcpStream,
    upstream: TcpStream,
    mut held: watch::Receiver<bool>,
    cuts: Arc<Cuts>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut redis_read, mut redis_write) = upstream.into_split();
    let severed = Arc::new(AtomicBool::new(false));
    let answers = tokio::spawn({
        let severed = severed.clone();
        async move {
            let mut buffer = vec![0u8; 16 * 1024];
            while let Ok(n) = redis_read.read(&mut buffer).await {
                // Checked after the read: an answer to the cut command
                // arrives only after `severed` was set.
                if n == 0 || severed.load(Ordering::SeqCst) {
                    break;
                }
                if client_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n) = client_read.read(&mut buffer).await {
        if n == 0 || held.wait_for(|held| !*held).await.is_err() {
            break;
        }
        let cut = cuts.take_if_marked(&buffer[..n]);
        if cut {
            severed.store(true, Ordering::SeqCst);
            cuts.made.fetch_add(1, Ordering::SeqCst);
        }
        if redis_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        if cut {
            tokio::time::sleep(APPLIED_WITHIN).await;
            break;
        }
    }
    // Both halves of the client's socket go, so it sees the connection
    // close.
    answers.abort();
}
