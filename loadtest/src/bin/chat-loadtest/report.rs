//! The run's summary: a table on stdout and, on request, the same figures
//! as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chat_loadtest::procfs::{Memory, Usage, mib};
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
/// (`--cluster-pid`, `--cluster-process`), Redis included when named, and
/// the same for each process.
#[derive(Debug, Serialize)]
pub struct ClusterUsage {
    pub pids: Vec<u32>,
    #[serde(flatten)]
    pub total: UsageFigures,
    /// Each process's share, in the order of `pids`: which role a
    /// cluster's CPU goes to.
    pub processes: Vec<ProcessUsage>,
}

/// One process of the cluster.
#[derive(Debug, Serialize)]
pub struct ProcessUsage {
    pub pid: u32,
    /// Its program and role, e.g. `chatd gateway`, `redis-server`.
    pub label: String,
    #[serde(flatten)]
    pub figures: UsageFigures,
}

/// The CPU and memory of a process, or of several summed, over a run.
#[derive(Debug, PartialEq, Serialize)]
pub struct UsageFigures {
    /// CPU over the send window, in cores (1.0 = one core busy).
    pub cpu_cores_send_window: f64,
    /// CPU seconds from the start of the send window to the end of the
    /// drain (all the work of the messages sent).
    pub cpu_seconds_through_drain: f64,
    /// `cpu_seconds_through_drain` per million deliveries to other members.
    pub cpu_seconds_per_million_deliveries: Option<f64>,
    /// VmRSS after the drain (summed: the sum of each process's).
    pub rss_after_sending_kib: u64,
    /// VmHWM (summed: each process's own peak, not a peak of the sum).
    pub peak_kib: u64,
}

/// The cluster's processes' [`Usage`] when the send window starts, when it
/// ends and when the drain ends, in the order of their pids.
pub struct ClusterSamples {
    pub pids: Vec<u32>,
    pub labels: Vec<String>,
    pub start: Vec<Usage>,
    pub window_end: Vec<Usage>,
    pub drain_end: Vec<Usage>,
}

/// How long the send window lasted and what the run delivered: what the
/// figures are divided by.
#[derive(Clone, Copy)]
pub struct RunLength {
    pub window_s: f64,
    pub delivered: u64,
}

impl UsageFigures {
    /// The figures of usage sampled at the three moments of [`ClusterSamples`].
    fn between(start: Usage, window_end: Usage, drain_end: Usage, run: RunLength) -> UsageFigures {
        let cpu_seconds = drain_end.cpu_seconds - start.cpu_seconds;
        UsageFigures {
            cpu_cores_send_window: (window_end.cpu_seconds - start.cpu_seconds) / run.window_s,
            cpu_seconds_through_drain: cpu_seconds,
            cpu_seconds_per_million_deliveries: (run.delivered > 0)
                .then(|| cpu_seconds / (run.delivered as f64 / 1e6)),
            rss_after_sending_kib: drain_end.rss_kib,
            peak_kib: drain_end.hwm_kib,
        }
    }
}

impl ClusterUsage {
    pub fn new(samples: &ClusterSamples, run: RunLength) -> ClusterUsage {
        let processes = (samples.pids.iter().zip(&samples.labels).enumerate())
            .map(|(i, (&pid, label))| ProcessUsage {
                pid,
                label: label.clone(),
                figures: UsageFigures::between(
                    samples.start[i],
                    samples.window_end[i],
                    samples.drain_end[i],
                    run,
                ),
            })
            .collect();
        ClusterUsage {
            pids: samples.pids.clone(),
            total: UsageFigures::between(
                Usage::sum(&samples.start),
                Usage::sum(&samples.window_end),
                Usage::sum(&samples.drain_end),
                run,
            ),
            processes,
        }
    }
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
            let t = &c.total;
            let _ = writeln!(
                w,
                "  cluster ({} processes): CPU {:.0} % of one core over the send window, \
                 {:.1} CPU-s to the end of the drain = {} CPU-s per million deliveries; \
                 RSS {} after sending (peaks summed {})",
                c.pids.len(),
                t.cpu_cores_send_window * 100.0,
                t.cpu_seconds_through_drain,
                per_million(t),
                mib(t.rss_after_sending_kib),
                mib(t.peak_kib)
            );
            for p in &c.processes {
                let f = &p.figures;
                let _ = writeln!(
                    w,
                    "    {:<24} {:>3.0} % of one core, {:>5} CPU-s per million; RSS {}",
                    format!("{} ({})", p.label, p.pid),
                    f.cpu_cores_send_window * 100.0,
                    per_million(f),
                    mib(f.rss_after_sending_kib)
                );
            }
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

/// CPU-s per million deliveries with one decimal, "n/a" without deliveries.
fn per_million(figures: &UsageFigures) -> String {
    figures
        .cpu_seconds_per_million_deliveries
        .map_or("n/a".to_string(), |s| format!("{s:.1}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(cpu_seconds: f64, rss_kib: u64) -> Usage {
        Usage {
            cpu_seconds,
            rss_kib,
            hwm_kib: rss_kib + 1,
        }
    }

    #[test]
    fn a_clusters_usage_is_the_sum_of_its_processes() {
        let samples = ClusterSamples {
            pids: vec![10, 20],
            labels: vec!["chatd gateway".into(), "redis-server".into()],
            start: vec![usage(1.0, 100), usage(5.0, 50)],
            window_end: vec![usage(3.0, 200), usage(6.0, 60)],
            drain_end: vec![usage(4.0, 300), usage(6.5, 70)],
        };
        let run = RunLength {
            window_s: 2.0,
            delivered: 500_000,
        };
        let cluster = ClusterUsage::new(&samples, run);
        let gateway = &cluster.processes[0];
        assert_eq!((gateway.pid, gateway.label.as_str()), (10, "chatd gateway"));
        assert_eq!(
            gateway.figures,
            UsageFigures {
                cpu_cores_send_window: 1.0,
                cpu_seconds_through_drain: 3.0,
                cpu_seconds_per_million_deliveries: Some(6.0),
                rss_after_sending_kib: 300,
                peak_kib: 301,
            }
        );
        let redis = &cluster.processes[1];
        assert_eq!(redis.figures.cpu_cores_send_window, 0.5);
        assert_eq!(redis.figures.cpu_seconds_per_million_deliveries, Some(3.0));
        assert_eq!(cluster.pids, vec![10, 20]);
        assert_eq!(
            cluster.total,
            UsageFigures {
                cpu_cores_send_window: 1.5,
                cpu_seconds_through_drain: 4.5,
                cpu_seconds_per_million_deliveries: Some(9.0),
                rss_after_sending_kib: 370,
                peak_kib: 372,
            }
        );
        let nothing_delivered = RunLength {
            delivered: 0,
            ..run
        };
        let cluster = ClusterUsage::new(&samples, nothing_delivered);
        assert_eq!(cluster.total.cpu_seconds_per_million_deliveries, None);
        // The JSON keeps the figures beside the pids, as before.
        let json = serde_json::to_value(&cluster).expect("JSON");
        assert_eq!(json["cpu_seconds_through_drain"], 4.5);
        assert_eq!(json["processes"][1]["label"], "redis-server");
        assert_eq!(json["processes"][1]["cpu_cores_send_window"], 0.5);
    }
}
