//! What one connection measured, how connections' figures add up, and the
//! live counters behind the progress bar and the drain check.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

/// Highest latency a histogram holds, in microseconds (larger values are
/// recorded as this).
const MAX_MICROS: u64 = 120_000_000;

/// A latency histogram in microseconds, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Records `micros`, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, micros: u64) {
    histogram.saturating_record(micros.clamp(1, MAX_MICROS));
}

/// Counters every connection bumps as things happen; read by the progress
/// bar and by the drain check.
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// Sends answered with an `error` frame instead of an ack.
    pub refused: AtomicU64,
    pub delivered: AtomicU64,
    /// Deliveries the acked messages call for (acked × the room's other
    /// members).
    pub expected: AtomicU64,
    pub errors: AtomicU64,
    pub disconnects: AtomicU64,
}

impl Live {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Everything sent got its answer and every acked message reached
    /// every other member.
    pub fn settled(&self) -> bool {
        let sent = Live::get(&self.sent);
        let answered = Live::get(&self.acked) + Live::get(&self.refused);
        answered >= sent && Live::get(&self.delivered) >= Live::get(&self.expected)
    }
}

/// What one connection saw. Merged into one at the end.
#[derive(Debug)]
pub struct ConnStats {
    /// `send` → `ack` on the sending connection.
    pub ack: Histogram<u64>,
    /// `send` → `message` on another member's connection.
    pub delivery: Histogram<u64>,
    /// `send` → `message` back on the sender's own connection.
    pub echo: Histogram<u64>,
    /// How late this tool sent, against its own schedule (a saturated
    /// load generator shows here, not in the server's figures).
    pub send_lag: Histogram<u64>,
    pub sent: u64,
    pub acked: u64,
    pub duplicate_acks: u64,
    pub refused: u64,
    pub delivered: u64,
    pub echoes: u64,
    /// The same message id delivered twice to one connection.
    pub duplicates: u64,
    /// A message from one sender arriving after a later one of the same
    /// sender, on one connection.
    pub out_of_order: u64,
    /// `message` frames that are not from this run.
    pub foreign: u64,
    pub undecodable: u64,
    pub errors: BTreeMap<String, u64>,
    /// Server-initiated closes by code ("1006" = no close frame).
    pub disconnects: BTreeMap<String, u64>,
    pub close_reasons: Vec<String>,
    /// Every server frame by `type`.
    pub frames: BTreeMap<String, u64>,
    pub last_ack: Option<Instant>,
    pub last_delivery: Option<Instant>,
}

impl Default for ConnStats {
    fn default() -> ConnStats {
        ConnStats {
            ack: histogram(),
            delivery: histogram(),
            echo: histogram(),
            send_lag: histogram(),
            sent: 0,
            acked: 0,
            duplicate_acks: 0,
            refused: 0,
            delivered: 0,
            echoes: 0,
            duplicates: 0,
            out_of_order: 0,
            foreign: 0,
            undecodable: 0,
            errors: BTreeMap::new(),
            disconnects: BTreeMap::new(),
            close_reasons: Vec::new(),
            frames: BTreeMap::new(),
            last_ack: None,
            last_delivery: None,
        }
    }
}

impl ConnStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: ConnStats) {
        self.ack.add(&other.ack).expect("same bounds");
        self.delivery.add(&other.delivery).expect("same bounds");
        self.echo.add(&other.echo).expect("same bounds");
        self.send_lag.add(&other.send_lag).expect("same bounds");
        self.sent += other.sent;
        self.acked += other.acked;
        self.duplicate_acks += other.duplicate_acks;
        self.refused += other.refused;
        self.delivered += other.delivered;
        self.echoes += other.echoes;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
        self.undecodable += other.undecodable;
        add_counts(&mut self.errors, other.errors);
        add_counts(&mut self.disconnects, other.disconnects);
        add_counts(&mut self.frames, other.frames);
        for reason in other.close_reasons {
            if self.close_reasons.len() < 10 && !self.close_reasons.contains(&reason) {
                self.close_reasons.push(reason);
            }
        }
        self.last_ack = self.last_ack.max(other.last_ack);
        self.last_delivery = self.last_delivery.max(other.last_delivery);
    }
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (key, count) in from {
        *into.entry(key).or_default() += count;
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if histogram.is_empty() {
            return Latency {
                count: 0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        Latency {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
            mean_ms: histogram.mean() / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = ConnStats::default();
        record(&mut a.ack, 1_000);
        a.sent = 2;
        a.errors.insert("rate_limited".into(), 1);
        let mut b = ConnStats::default();
        record(&mut b.ack, 3_000);
        record(&mut b.ack, 0);
        record(&mut b.ack, u64::MAX);
        b.sent = 3;
        b.errors.insert("rate_limited".into(), 2);
        b.disconnects.insert("4003".into(), 1);
        a.merge(b);
        assert_eq!(a.sent, 5);
        assert_eq!(a.ack.len(), 4);
        assert_eq!(a.errors["rate_limited"], 3);
        assert_eq!(a.disconnects["4003"], 1);
        let latency = Latency::of(&a.ack);
        assert_eq!(latency.count, 4);
        assert!(latency.max_ms >= 119_000.0);
        assert_eq!(Latency::of(&histogram()).count, 0);
    }
}
