//! `chat-loadtest`: a bounded load generator for chatd that speaks only the
//! public protocol.
//!
//! A run registers `--users` users (names `lt_<run>_<i>`), creates
//! `--rooms` public rooms and puts users in them (`--membership`), opens
//! one WebSocket per user, sends `--rate` messages per second in total for
//! `--duration` seconds, waits at most `--drain` seconds for what is still
//! in flight, closes every connection and prints a summary. It contacts
//! only `--server` (one server, or several gateways of a cluster over
//! which the connections are spread), and reads `/proc` for the CPU and
//! memory of the processes it is told about (`--server-pid`, and
//! `--cluster-pid` / `--cluster-process` summed over a whole cluster).
//!
//! - [`args`]: the command line;
//! - [`setup`]: users, rooms, memberships and connections;
//! - [`conn`]: one simulated user's connection;
//! - [`stats`]: histograms and counters;
//! - [`report`]: the summary table and its JSON form;
//! - [`idle`]: the idle scenario (`--idle N`): connection cost and rate.

mod args;
mod conn;
mod idle;
mod report;
mod setup;
mod stats;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chat_loadtest::api::{Api, parse_server};
use chat_loadtest::procfs;
use chat_protocol::Codec;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::time::Instant;

use args::Args;
use conn::{ConnPlan, Control, Schedule};
use report::{
    ClusterSamples, ClusterUsage, Counts, Latencies, RunLength, ServerMemory, Setup, Summary,
    Throughput,
};
use stats::{ConnStats, Latency, Live};

/// Time between the last connection opening and the first send, so that
/// the connect-time presence traffic has settled.
const SETTLE: Duration = Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads as usize)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let servers = args
        .server
        .split(',')
        .map(|s| parse_server(s.trim()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let server = servers[0].clone();
    let codec = Codec::from(args.codec);
    let api = Api::new(&server)?;
    api.health()
        .await
        .with_context(|| format!("is chatd running at {server}?"))?;
    if let Some(connections) = args.idle {
        return idle::run(&args, &api, &server, &run_id(), connections).await;
    }

    let mut warnings = Vec::new();
    let per_user = args.per_user_rate();
    if per_user > args.server_send_rate {
        let warning = format!(
            "each user sends {per_user:.2} msg/s, above the server's per-user send limit of {} msg/s \
             (default 10/s, burst 20): start chatd with CHAT_RATES__SEND_PER_SECOND={} \
             CHAT_RATES__SEND_BURST={} (and pass --server-send-rate), or add --users",
            args.server_send_rate,
            per_user.ceil(),
            (per_user.ceil() as u64 * 2).max(20)
        );
        eprintln!("WARNING: {warning}");
        warnings.push(warning);
    }

    let run_id = run_id();
    let memory = |pid: Option<u32>| pid.and_then(procfs::memory);
    let mem_before = memory(args.server_pid);
    if let Some(pid) = args.server_pid
        && mem_before.is_none()
    {
        eprintln!("WARNING: cannot read /proc/{pid}/status; no server memory figures");
    }
    eprintln!(
        "run {run_id}: {} users, {} rooms ({}), {} msg/s for {} s, codec {}, server {server}",
        args.users,
        args.rooms,
        args.membership.as_str(),
        args.rate,
        args.duration,
        codec.subprotocol()
    );

    let started = std::time::Instant::now();
    let members = setup::register_users(&args, &api, &run_id).await?;
    let register_s = setup::secs(started);
    eprintln!("registered {} users in {register_s:.1} s", members.len());
    let mem_registered = memory(args.server_pid);

    let started = std::time::Instant::now();
    let rooms = setup::make_rooms(&args, &members, &run_id).await?;
    let rooms_and_joins_s = setup::secs(started);
    let members_per_room: Vec<u32> = (0..args.rooms).map(|r| args.members_per_room(r)).collect();
    eprintln!(
        "created {} rooms and joined in {rooms_and_joins_s:.1} s",
        rooms.len()
    );

    let live = Arc::new(Live::default());
    let (schedule_tx, schedule_rx) = watch::channel(None::<Schedule>);
    let (stop_tx, stop_rx) = watch::channel(false);
    let epoch = Instant::now();
    let content: Arc<str> = content(args.content_bytes as usize).into();
    let run_id_arc: Arc<str> = run_id.clone().into();
    let started = std::time::Instant::now();
    let tasks = setup::connect_all(&args, &members, &rooms, &servers, codec, |index, socket| {
        let member = &members[index as usize];
        let plan = ConnPlan {
            index,
            user_id: member.user.id,
            rooms: args
                .rooms_of(index)
                .into_iter()
                .map(|r| {
                    (
                        rooms[r as usize],
                        u64::from(members_per_room[r as usize] - 1),
                    )
                })
                .collect(),
            codec,
            run_id: run_id_arc.clone(),
            content: content.clone(),
            epoch,
            offset: Duration::from_secs_f64(f64::from(index) / args.rate),
            interval: args.send_interval(),
        };
        let control = Control {
            schedule: schedule_rx.clone(),
            stop: stop_rx.clone(),
            live: live.clone(),
        };
        tokio::spawn(conn::run(socket, plan, control))
    })
    .await?;
    let connect_s = setup::secs(started);
    eprintln!("opened {} connections in {connect_s:.1} s", tasks.len());
    let mem_connected = memory(args.server_pid);

    // The clock starts.
    let start = Instant::now() + SETTLE;
    let cpu = |pid: Option<u32>| pid.and_then(procfs::cpu_seconds);
    let own_pid = Some(std::process::id());
    tokio::time::sleep_until(start).await;
    let cpu_start = (cpu(args.server_pid), cpu(own_pid));
    let cluster_pids = cluster_pids(&args);
    if (!args.cluster_pids.is_empty() || !args.cluster_processes.is_empty())
        && cluster_pids.is_empty()
    {
        eprintln!("WARNING: no cluster process found; no cluster CPU or memory figures");
    }
    let cluster_labels: Vec<String> = cluster_pids.iter().map(|&pid| procfs::label(pid)).collect();
    let cluster_start = procfs::usage_of(&cluster_pids);
    let window = Duration::from_secs(args.duration);
    let end = start + window;
    schedule_tx.send_replace(Some(Schedule { start, end }));
    let progress = Progress::new(&args);
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    while Instant::now() < end {
        ticks.tick().await;
        progress.update(&live, start, window, "sending");
        if Live::get(&live.disconnects) >= u64::from(args.users) {
            eprintln!("every connection is gone; stopping early");
            break;
        }
    }
    let window_s = Instant::now().duration_since(start).as_secs_f64();
    let per_second = |before: Option<f64>, after: Option<f64>| Some((after? - before?) / window_s);
    let cpu_cores = report::CpuCores {
        server: per_second(cpu_start.0, cpu(args.server_pid)),
        loadtest: per_second(cpu_start.1, cpu(own_pid)),
    };
    let cluster_window = procfs::usage_of(&cluster_pids);
    // Drain: wait for acks and deliveries still in flight.
    let drain_end = Instant::now() + Duration::from_secs(args.drain);
    tokio::time::sleep(Duration::from_millis(50)).await;
    while Instant::now() < drain_end && !live.settled() {
        ticks.tick().await;
        progress.update(&live, start, window, "draining");
        if Live::get(&live.disconnects) >= u64::from(args.users) {
            break;
        }
    }
    progress.finish();
    if !live.settled() {
        let warning = format!(
            "not everything arrived within the {} s drain: {} of {} sends answered, {} of {} deliveries",
            args.drain,
            Live::get(&live.acked) + Live::get(&live.refused),
            Live::get(&live.sent),
            Live::get(&live.delivered),
            Live::get(&live.expected)
        );
        eprintln!("WARNING: {warning}");
        warnings.push(warning);
    }
    let mem_after_sending = memory(args.server_pid);
    let cluster_end = procfs::usage_of(&cluster_pids);
    if let Some(command) = &args.on_drained {
        let status = tokio::process::Command::new("sh")
            .args(["-c", command])
            .status()
            .await
            .context("--on-drained command")?;
        if !status.success() {
            warnings.push(format!("--on-drained command failed: {status}"));
        }
    }

    stop_tx.send_replace(true);
    let mut total = ConnStats::default();
    for task in tasks {
        total.merge(task.await.context("connection task")?);
    }
    // Let the server notice the closes before the last memory reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem_after_close = memory(args.server_pid);

    let rate_over = |count: u64, last: Option<Instant>| match last {
        Some(last) if last > start => count as f64 / (last - start).as_secs_f64(),
        _ => 0.0,
    };
    let summary = Summary {
        run_id,
        server: server.to_string(),
        codec: codec.subprotocol(),
        users: args.users,
        rooms: args.rooms,
        membership: args.membership,
        members_per_room,
        content_bytes: args.content_bytes,
        target_rate_per_s: args.rate,
        duration_s: args.duration,
        setup: Setup {
            register_s,
            rooms_and_joins_s,
            connect_s,
        },
        counts: Counts {
            scheduled: (args.rate * args.duration as f64).round() as u64,
            sent: total.sent,
            acked: total.acked,
            refused: total.refused,
            duplicate_acks: total.duplicate_acks,
            delivered: total.delivered,
            expected_deliveries: Live::get(&live.expected),
            echoes: total.echoes,
            duplicate_deliveries: total.duplicates,
            out_of_order: total.out_of_order,
            foreign_messages: total.foreign,
            undecodable_frames: total.undecodable,
        },
        throughput_per_s: Throughput {
            sent: total.sent as f64 / window.as_secs_f64(),
            acked: rate_over(total.acked, total.last_ack),
            delivered: rate_over(total.delivered, total.last_delivery),
        },
        latency_ms: Latencies {
            ack: Latency::of(&total.ack),
            delivery: Latency::of(&total.delivery),
            echo: Latency::of(&total.echo),
            send_lag: Latency::of(&total.send_lag),
        },
        errors: total.errors,
        disconnects: total.disconnects,
        close_reasons: total.close_reasons,
        frames: total.frames,
        server_memory: args.server_pid.map(|pid| ServerMemory {
            pid,
            before_setup: mem_before,
            registered: mem_registered,
            connected: mem_connected,
            after_sending: mem_after_sending,
            after_close: mem_after_close,
        }),
        cpu_cores,
        cluster: (!cluster_pids.is_empty()).then(|| {
            let samples = ClusterSamples {
                pids: cluster_pids,
                labels: cluster_labels,
                start: cluster_start,
                window_end: cluster_window,
                drain_end: cluster_end,
            };
            let run = RunLength {
                window_s,
                delivered: total.delivered,
            };
            ClusterUsage::new(&samples, run)
        }),
        warnings,
    };
    print!("{}", summary.table());
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&summary)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("summary written to {}", path.display());
    }
    Ok(())
}

/// The processes of the cluster: `--cluster-pid`s and the processes named
/// by `--cluster-process`, without repeats.
fn cluster_pids(args: &Args) -> Vec<u32> {
    let mut pids = args.cluster_pids.clone();
    for name in &args.cluster_processes {
        pids.extend(procfs::pids_named(name));
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// A short id that keeps this run's users and rooms apart from others':
/// 7 base-36 digits of the clock and the pid.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut n = (nanos / 1000) ^ (u64::from(std::process::id()) << 40);
    let mut id = String::new();
    for _ in 0..7 {
        let digit = (n % 36) as u32;
        id.push(char::from_digit(digit, 36).expect("digit below 36"));
        n /= 36;
    }
    id
}

/// `len` bytes of printable ASCII without `@` (no mentions) and without
/// spaces at either end (content is trimmed).
fn content(len: usize) -> String {
    const TEXT: &[u8] = b"the quick brown fox jumps over the lazy dog 0123456789 ";
    let mut content: Vec<u8> = TEXT.iter().copied().cycle().take(len).collect();
    for byte in content.iter_mut() {
        if *byte == b' ' {
            *byte = b'_';
        } else {
            break;
        }
    }
    if let Some(last) = content.last_mut()
        && *last == b' '
    {
        *last = b'.';
    }
    String::from_utf8(content).expect("ASCII")
}

/// A progress bar on a terminal; plain status lines every 5 s elsewhere.
struct Progress {
    bar: Option<ProgressBar>,
    last_line: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    fn new(args: &Args) -> Progress {
        let bar = (std::io::stdout().is_terminal() && !args.no_progress).then(|| {
            let bar = ProgressBar::new(args.duration * 1000);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                    .expect("valid template"),
            );
            bar
        });
        Progress {
            bar,
            last_line: std::sync::Mutex::new(None),
        }
    }

    fn update(&self, live: &Live, start: Instant, window: Duration, phase: &str) {
        let elapsed = Instant::now().saturating_duration_since(start).min(window);
        let status = format!(
            "{phase}: sent {} acked {} delivered {}/{} errors {} disconnects {}",
            Live::get(&live.sent),
            Live::get(&live.acked),
            Live::get(&live.delivered),
            Live::get(&live.expected),
            Live::get(&live.errors),
            Live::get(&live.disconnects)
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(elapsed.as_millis() as u64);
                bar.set_message(status);
            }
            None => {
                let mut last = self.last_line.lock().expect("not poisoned");
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    *last = Some(Instant::now());
                    eprintln!("[{:>5.1} s] {status}", elapsed.as_secs_f64());
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_exact_and_mention_free() {
        for len in [1, 2, 44, 100, 4000] {
            let c = content(len);
            assert_eq!(c.len(), len);
            assert_eq!(c.trim().len(), len);
            assert!(!c.contains('@'));
        }
    }

    #[test]
    fn run_ids_fit_usernames() {
        let id = run_id();
        assert_eq!(id.len(), 7);
        let name = format!("lt_{id}_4999");
        assert!(chat_protocol::limits::is_valid_username(&name));
    }
}
