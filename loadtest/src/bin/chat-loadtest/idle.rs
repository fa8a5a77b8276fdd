//! The idle scenario (`--idle N`): N authenticated WebSocket connections
//! that only answer the server's pings, to measure what a connection costs
//! the server at rest (RSS per connection) and how fast it accepts them.
//!
//! Registration hashes a password with argon2 on the server, which would
//! dominate the set-up of tens of thousands of users; the fast path here
//! registers only `--users` users and spreads the N connections over them
//! round-robin — each connection still authenticates with its user's token
//! and gets its own `ready`, as a user's many devices would. Connections
//! leave from 127.0.0.2, 127.0.0.3, … ([`PER_SOURCE_ADDRESS`] each) so that
//! N is not capped by one source address's ephemeral ports (the server must
//! listen on 127.0.0.1 or 0.0.0.0 for that). Each side needs N file
//! descriptors (`ulimit -n`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_loadtest::api::Api;
use chat_loadtest::procfs::{self, Memory};
use chat_protocol::Codec;
use chat_protocol::frames::ServerFrame;
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::Url;
use serde::Serialize;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

use crate::args::Args;
use crate::setup;

/// Connections per source address (well below the ~28,000 ephemeral ports
/// of one address).
const PER_SOURCE_ADDRESS: u32 = 10_000;
/// Connections being opened at once.
const CONNECT_CONCURRENCY: usize = 128;
/// How long one connection may take to get its `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// This side's buffers: an idle client reads pings only.
const CLIENT_BUFFER_BYTES: usize = 4 * 1024;

/// What an idle run measured.
#[derive(Debug, Serialize)]
pub struct IdleSummary {
    pub run_id: String,
    pub server: String,
    pub users: u32,
    pub connections: u32,
    pub register_s: f64,
    pub connect_s: f64,
    pub connections_per_s: f64,
    pub hold_s: u64,
    /// Connections the server closed during the hold (should be 0).
    pub closed_during_hold: u64,
    pub server_memory: Option<IdleMemory>,
}

/// Server RSS at each step, and the cost of one connection.
#[derive(Debug, Serialize)]
pub struct IdleMemory {
    pub pid: u32,
    pub registered: Memory,
    pub connected: Memory,
    pub after_hold: Memory,
    /// (RSS after the hold − RSS before connecting) / connections.
    pub kib_per_connection: f64,
}

/// Runs the idle scenario with `connections` connections.
pub async fn run(
    args: &Args,
    api: &Api,
    server: &Url,
    run_id: &str,
    connections: u32,
) -> anyhow::Result<()> {
    let codec = Codec::from(args.codec);
    let target = resolve(server).await?;
    eprintln!(
        "run {run_id}: idle, {connections} connections over {} users, server {server}",
        args.users
    );
    let started = Instant::now();
    let members = setup::register_users(args, api, run_id).await?;
    let register_s = setup::secs(started);
    eprintln!("registered {} users in {register_s:.1} s", members.len());
    let memory = |pid: Option<u32>| pid.and_then(procfs::memory);
    let registered = memory(args.server_pid);

    let (stop_tx, stop_rx) = watch::channel(false);
    let (closed_tx, closed_rx) = watch::channel(0u64);
    let closed_tx = std::sync::Arc::new(closed_tx);
    let url = chat_loadtest::ws::ws_url(server)?;
    let started = Instant::now();
    let tasks: Vec<_> = stream::iter(0..connections)
        .map(|index| {
            let member = &members[(index % args.users) as usize];
            let token = member.api.token().unwrap_or_default().to_owned();
            let url = url.clone();
            let (stop, closed) = (stop_rx.clone(), closed_tx.clone());
            async move {
                let socket = open(&url, target, source_address(index), &token, codec)
                    .await
                    .with_context(|| format!("connection {index}"))?;
                anyhow::Ok(tokio::spawn(hold(socket, stop, closed)))
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .try_collect()
        .await?;
    let connect_s = setup::secs(started);
    let connections_per_s = f64::from(connections) / connect_s;
    eprintln!("opened {connections} connections in {connect_s:.1} s ({connections_per_s:.0}/s)");
    let connected = memory(args.server_pid);
    eprintln!("holding them idle for {} s", args.duration);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let after_hold = memory(args.server_pid);
    let closed_during_hold = *closed_rx.borrow();
    stop_tx.send_replace(true);
    for task in tasks {
        task.await.context("connection task")?;
    }

    let server_memory = match (args.server_pid, registered, connected, after_hold) {
        (Some(pid), Some(registered), Some(connected), Some(after_hold)) => Some(IdleMemory {
            pid,
            registered,
            connected,
            after_hold,
            kib_per_connection: after_hold.rss_kib.saturating_sub(registered.rss_kib) as f64
                / f64::from(connections),
        }),
        _ => None,
    };
    let summary = IdleSummary {
        run_id: run_id.to_owned(),
        server: server.to_string(),
        users: args.users,
        connections,
        register_s,
        connect_s,
        connections_per_s,
        hold_s: args.duration,
        closed_during_hold,
        server_memory,
    };
    print!("{}", table(&summary));
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&summary)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// 127.0.0.2 for the first [`PER_SOURCE_ADDRESS`] connections, then
/// 127.0.0.3, … (127.0.0.1 is left to the set-up's REST calls).
fn source_address(index: u32) -> IpAddr {
    let n = 2 + index / PER_SOURCE_ADDRESS;
    IpAddr::V4(Ipv4Addr::new(127, 0, (n >> 8) as u8, n as u8))
}

async fn resolve(server: &Url) -> anyhow::Result<SocketAddr> {
    let host = server.host_str().context("the server URL has no host")?;
    let port = server.port_or_known_default().unwrap_or(80);
    tokio::net::lookup_host((host, port))
        .await?
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("{host} has no IPv4 address"))
}

type IdleSocket = WebSocketStream<tokio::net::TcpStream>;

/// Opens `/ws` from `source` and waits for `ready`.
async fn open(
    url: &Url,
    target: SocketAddr,
    source: IpAddr,
    token: &str,
    codec: Codec,
) -> anyhow::Result<IdleSocket> {
    let tcp = TcpSocket::new_v4()?;
    tcp.bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding {source}"))?;
    let stream = tcp.connect(target).await?;
    let request = chat_loadtest::ws::handshake_request(url, token, codec)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(CLIENT_BUFFER_BYTES)
        .write_buffer_size(0);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    let first = tokio::time::timeout(READY_TIMEOUT, socket.next())
        .await
        .map_err(|_| anyhow::anyhow!("no ready within {READY_TIMEOUT:?}"))?;
    match first {
        Some(Ok(message)) => match chat_loadtest::ws::decode(&message) {
            chat_loadtest::ws::Incoming::Frame(frame)
                if matches!(*frame, ServerFrame::Ready { .. }) =>
            {
                Ok(socket)
            }
            other => anyhow::bail!("first frame is not ready: {other:?}"),
        },
        Some(Err(error)) => Err(error.into()),
        None => anyhow::bail!("closed before ready"),
    }
}

/// Reads (which answers the server's pings) until told to stop, then
/// closes; counts a close by the server.
async fn hold(
    mut socket: IdleSocket,
    mut stop: watch::Receiver<bool>,
    closed: std::sync::Arc<watch::Sender<u64>>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            next = socket.next() => match next {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    closed.send_modify(|count| *count += 1);
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
}

fn table(summary: &IdleSummary) -> String {
    let mut out = format!(
        "idle run {}: {} connections over {} users\n\
         connect        {:>10.1} s   {:>8.0} connections/s\n\
         closed by server during the {} s hold: {}\n",
        summary.run_id,
        summary.connections,
        summary.users,
        summary.connect_s,
        summary.connections_per_s,
        summary.hold_s,
        summary.closed_during_hold,
    );
    if let Some(memory) = &summary.server_memory {
        out += &format!(
            "server RSS     registered {}, connected {}, after hold {}\n\
             per connection {:>10.1} KiB\n",
            procfs::mib(memory.registered.rss_kib),
            procfs::mib(memory.connected.rss_kib),
            procfs::mib(memory.after_hold.rss_kib),
            memory.kib_per_connection,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_stay_in_loopback_and_skip_127_0_0_1() {
        assert_eq!(source_address(0), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(
            source_address(PER_SOURCE_ADDRESS),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))
        );
        assert_eq!(
            source_address(300 * PER_SOURCE_ADDRESS),
            IpAddr::V4(Ipv4Addr::new(127, 0, 1, 46))
        );
        assert!(source_address(u32::MAX).is_loopback());
    }
}
