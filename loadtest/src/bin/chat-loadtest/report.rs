//! The run's summary: a table on stdout and, on request, the same figures
//! as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chat_loadtest::procfs::{Memory, mib};
use serde::Serialize;

use crate::args::Membership;
use crate::stats::Latency;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub server: String,
    pub codec: &'static str,
    pub users: u32,
    pub rooms: u32,
    pub membership: Membership,
    /// Members of each room.
    pub members_per_room: Vec<u32>,
    pub content_bytes: u32,
    pub target_rate_per_s: f64,
    pub duration_s: u64,
    pub setup: Setup,
    pub counts: Counts,
    pub throughput_per_s: Throughput,
    pub latency_ms: Latencies,
    /// `error` frames by code.
    pub errors: BTreeMap<String, u64>,
    /// Connections the server closed, by close code ("1006": no close
    /// frame, the connection just ended).
    pub disconnects: BTreeMap<String, u64>,
    pub close_reasons: Vec<String>,
    /// Every server frame received, by type.
    pub frames: BTreeMap<String, u64>,
    pub server_memory: Option<ServerMemory>,
    /// CPU used during the send window, in seconds per second (1.0 = one
    /// core busy): the server's (with `--server-pid`) and this tool's.
    pub cpu_cores: CpuCores,
    /// With `--cluster-pid` / `--cluster-process`: the whole cluster's CPU
    /// and memory.
    pub cluster: Option<ClusterUsage>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Setup {
    pub register_s: f64,
    pub rooms_and_joins_s: f64,
    pub connect_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Counts {
    /// Sends the schedule called for (rate × duration).
    pub scheduled: u64,
    pub sent: u64,
    pub acked: u64,
    /// Sends answered with an error frame.
    pub refused: u64,
    pub duplicate_acks: u64,
    /// `message` frames that reached another member.
    pub delivered: u64,
    /// acked × (the room's members − 1).
    pub expected_deliveries: u64,
    /// `message` frames back on the sender's own connection.
    pub echoes: u64,
    pub duplicate_deliveries: u64,
    pub out_of_order: u64,
    pub foreign_messages: u64,
    pub undecodable_frames: u64,
}

#[derive(Debug, Serialize)]
pub struct Throughput {
    /// Sent over the send window.
    pub sent: f64,
    /// Acked over the time from the first send to the last ack.
    pub acked: f64,
    /// Delivered over the time from the first send to the last delivery.
    pub delivered: f64,
}

#[derive(Debug, Serialize)]
pub struct Latencies {
    pub ack: Latency,
    pub delivery: Latency,
    pub echo: Latency,
    /// Lateness of this tool's own sends against its schedule.
    pub send_lag: Latency,
}

#[derive(Debug, Serialize)]
pub struct CpuCores {
    pub server: Option<f64>,
    pub loadtest: Option<f64>,
}

/// CPU and memory summed over every process of the cluster under test
/// (`--cluster-pid`, `--cluster-process`), Redis included when named.
#[derive(Debug, Serialize)]
pub struct ClusterUsage {
    pub pids: Vec<u32>,
    /// CPU over the send window, in cores (1.0 = one core busy).
    pub cpu_cores_send_window: f64,
    /// CPU seconds from the start of the send window to the end of the
    /// drain (all the work of the messages sent).
    pub cpu_seconds_through_drain: f64,
    /// `cpu_seconds_through_drain` per million deliveries to other members.
    pub cpu_seconds_per_million_deliveries: Option<f64>,
    /// Summed VmRSS after the drain.
    pub rss_after_sending_kib: u64,
    /// Summed VmHWM (each process's peak; not a peak of the sum).
    pub peak_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct ServerMemory {
    pub pid: u32,
    pub before_setup: Option<Memory>,
    /// After the users were registered (argon2 hashing on the server).
    pub registered: Option<Memory>,
    pub connected: Option<Memory>,
    pub after_sending: Option<Memory>,
    pub after_close: Option<Memory>,
}

impl Summary {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let fanout: Vec<String> = self.members_per_room.iter().map(u32::to_string).collect();
        let _ = writeln!(
            w,
            "\nchat-loadtest run {} against {}",
            self.run_id, self.server
        );
        let _ = writeln!(
            w,
            "  {} users, {} rooms ({}; members per room: {}), codec {}, {} B content",
            self.users,
            self.rooms,
            self.membership.as_str(),
            compact(&fanout),
            self.codec,
            self.content_bytes
        );
        let _ = writeln!(
            w,
            "  target {} msg/s for {} s ({:.2} msg/s per user)",
            self.target_rate_per_s,
            self.duration_s,
            self.target_rate_per_s / f64::from(self.users)
        );
        let _ = writeln!(
            w,
            "  setup: register {:.1} s, rooms+joins {:.1} s, connect {:.1} s",
            self.setup.register_s, self.setup.rooms_and_joins_s, self.setup.connect_s
        );
        let c = &self.counts;
        let t = &self.throughput_per_s;
        let _ = writeln!(w, "\n  {:<22}{:>12}{:>12}", "", "count", "per s");
        let _ = writeln!(w, "  {:<22}{:>12}", "scheduled", c.scheduled);
        let _ = writeln!(w, "  {:<22}{:>12}{:>12.1}", "sent", c.sent, t.sent);
        let _ = writeln!(w, "  {:<22}{:>12}{:>12.1}", "acked", c.acked, t.acked);
        let _ = writeln!(
            w,
            "  {:<22}{:>12}{:>12.1}",
            "delivered (others)", c.delivered, t.delivered
        );
        let pct = if c.expected_deliveries == 0 {
            100.0
        } else {
            100.0 * c.delivered as f64 / c.expected_deliveries as f64
        };
        let _ = writeln!(
            w,
            "  {:<22}{:>12}   ({pct:.2} % delivered)",
            "expected deliveries", c.expected_deliveries
        );
        let _ = writeln!(w, "  {:<22}{:>12}", "echoes (own conn)", c.echoes);
        for (label, value) in [
            ("refused sends", c.refused),
            ("duplicate acks", c.duplicate_acks),
            ("duplicate deliveries", c.duplicate_deliveries),
            ("out of order", c.out_of_order),
            ("foreign messages", c.foreign_messages),
            ("undecodable frames", c.undecodable_frames),
        ] {
            let _ = writeln!(w, "  {label:<22}{value:>12}");
        }
        let _ = writeln!(w, "  {:<22}{:>12}", "errors", fmt_counts(&self.errors));
        let _ = writeln!(
            w,
            "  {:<22}{:>12}",
            "disconnects",
            fmt_counts(&self.disconnects)
        );
        for reason in &self.close_reasons {
            let _ = writeln!(w, "      close: {reason}");
        }

        let _ = writeln!(
            w,
            "\n  {:<22}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}",
            "latency (ms)", "p50", "p90", "p99", "p99.9", "max", "mean", "n"
        );
        for (label, l) in [
            ("ack (send→ack)", &self.latency_ms.ack),
            ("delivery (→others)", &self.latency_ms.delivery),
            ("echo (→own conn)", &self.latency_ms.echo),
            ("send lag (this tool)", &self.latency_ms.send_lag),
        ] {
            let _ = writeln!(
                w,
                "  {label:<22}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>10}",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms, l.count
            );
        }
        let _ = writeln!(w, "\n  frames received: {}", fmt_counts(&self.frames));
        let cores = |c: Option<f64>| c.map_or("n/a".to_string(), |c| format!("{:.0} %", c * 100.0));
        let _ = writeln!(
            w,
            "  CPU during the send window (% of one core): server {}, chat-loadtest {}",
            cores(self.cpu_cores.server),
            cores(self.cpu_cores.loadtest)
        );
        if let Some(c) = &self.cluster {
            let per_million = c
                .cpu_seconds_per_million_deliveries
                .map_or("n/a".to_string(), |s| format!("{s:.1}"));
            let _ = writeln!(
                w,
                "  cluster ({} processes): CPU {:.0} % of one core over the send window, \
                 {:.1} CPU-s to the end of the drain = {per_million} CPU-s per million deliveries; \
                 RSS {} after sending (peaks summed {})",
                c.pids.len(),
                c.cpu_cores_send_window * 100.0,
                c.cpu_seconds_through_drain,
                mib(c.rss_after_sending_kib),
                mib(c.peak_kib)
            );
        }
        if let Some(m) = &self.server_memory {
            let show = |m: &Option<Memory>| match m {
                Some(m) => format!("{} (peak {})", mib(m.rss_kib), mib(m.hwm_kib)),
                None => "n/a".into(),
            };
            let _ = writeln!(w, "\n  server pid {} VmRSS:", m.pid);
            let _ = writeln!(w, "    before setup   {}", show(&m.before_setup));
            let _ = writeln!(w, "    registered     {}", show(&m.registered));
            let _ = writeln!(w, "    connected      {}", show(&m.connected));
            let _ = writeln!(w, "    after sending  {}", show(&m.after_sending));
            let _ = writeln!(w, "    after close    {}", show(&m.after_close));
        }
        for warning in &self.warnings {
            let _ = writeln!(w, "\n  WARNING: {warning}");
        }
        out
    }
}

fn fmt_counts(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "0".into();
    }
    counts
        .iter()
        .map(|(key, count)| format!("{key}={count}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// "10" when every room has 10 members, else the list.
fn compact(values: &[String]) -> String {
    match values.first() {
        Some(first) if values.iter().all(|v| v == first) => first.clone(),
        _ => values.join(","),
    }
}
