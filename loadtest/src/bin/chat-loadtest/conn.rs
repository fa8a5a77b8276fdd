//! One simulated user: a WebSocket connection that reads everything the
//! server sends from the moment it opens, sends on a fixed schedule once
//! the run starts, and measures what comes back.
//!
//! Each `send` carries a `client_id` of the form
//! `<run>-<user>-<seq>-<micros>`, where `micros` is the send time on this
//! process's clock. The ack and every delivered copy echo the `client_id`,
//! so any connection can compute the latency without shared state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chat_loadtest::ws::{self, CLOSE_NONE, Incoming, Socket};
use chat_protocol::frames::{ClientAction, ClientFrame, SendMessage, ServerFrame};
use chat_protocol::{Codec, Id, RoomId};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::stats::{ConnStats, Live, record};

/// When the run sends: set once every connection is open.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// The first send of user 0; user i starts i/rate seconds later, so
    /// the users' sends interleave evenly.
    pub start: Instant,
    /// No send is scheduled at or after this.
    pub end: Instant,
}

/// Everything one connection needs to know.
pub struct ConnPlan {
    pub index: u32,
    pub user_id: Id,
    /// The rooms it sends to, in turn, with the number of other members
    /// each message should reach.
    pub rooms: Vec<(RoomId, u64)>,
    pub codec: Codec,
    pub run_id: Arc<str>,
    pub content: Arc<str>,
    /// The clock `client_id` times count from.
    pub epoch: Instant,
    /// This user's offset from [`Schedule::start`].
    pub offset: Duration,
    pub interval: Duration,
}

/// Signals from the orchestrator.
pub struct Control {
    pub schedule: watch::Receiver<Option<Schedule>>,
    /// Turns `true` when the connection should close.
    pub stop: watch::Receiver<bool>,
    pub live: Arc<Live>,
}

/// A `client_id` of this run, taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub user: u32,
    pub seq: u64,
    pub micros: u64,
}

pub fn client_id(run_id: &str, tag: Tag) -> String {
    format!("{run_id}-{}-{}-{}", tag.user, tag.seq, tag.micros)
}

/// The tag of a `client_id` made by [`client_id`] in run `run_id`.
pub fn parse_client_id(run_id: &str, client_id: &str) -> Option<Tag> {
    let rest = client_id.strip_prefix(run_id)?.strip_prefix('-')?;
    let mut parts = rest.splitn(3, '-');
    let user = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let micros = parts.next()?.parse().ok()?;
    Some(Tag { user, seq, micros })
}

struct State {
    plan: ConnPlan,
    live: Arc<Live>,
    stats: ConnStats,
    /// Sequence numbers acked so far (to spot duplicate acks).
    acked: HashSet<u64>,
    /// Message ids delivered here (to spot duplicates).
    seen: HashSet<Id>,
    /// Highest sequence number seen per sending user and room (to spot
    /// reordering).
    last_seq: HashMap<(u32, RoomId), u64>,
}

/// Runs one connection until told to stop or until the server closes it.
pub async fn run(socket: Socket, plan: ConnPlan, control: Control) -> ConnStats {
    let Control {
        mut schedule,
        mut stop,
        live,
    } = control;
    let (mut sink, mut stream) = socket.split();
    let mut state = State {
        plan,
        live,
        stats: ConnStats::default(),
        acked: HashSet::new(),
        seen: HashSet::new(),
        last_seq: HashMap::new(),
    };
    let mut ticker: Option<Interval> = None;
    let mut end = None;
    let mut scheduled_once = false;
    let mut seq = 0u64;
    let stopped = loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break true,
            changed = schedule.changed(), if !scheduled_once => {
                if changed.is_err() {
                    break true;
                }
                let Some(plan) = *schedule.borrow_and_update() else { continue };
                let mut interval = tokio::time::interval_at(
                    plan.start + state.plan.offset,
                    state.plan.interval,
                );
                // Keep the target rate: if this tool falls behind, it
                // catches up (and the lag shows in `send_lag`).
                interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
                ticker = Some(interval);
                end = Some(plan.end);
                scheduled_once = true;
            }
            scheduled = tick(&mut ticker) => {
                if Some(scheduled) >= end {
                    ticker = None;
                    continue;
                }
                let message = state.next_send(seq, scheduled);
                seq += 1;
                if let Err(error) = sink.send(message).await {
                    state.disconnected(CLOSE_NONE, format!("send failed: {error}"));
                    break false;
                }
            }
            next = stream.next() => {
                match next {
                    None => {
                        state.disconnected(CLOSE_NONE, "connection ended without a close frame".into());
                        break false;
                    }
                    Some(Err(error)) => {
                        state.disconnected(CLOSE_NONE, format!("read failed: {error}"));
                        break false;
                    }
                    Some(Ok(message)) => {
                        if let Incoming::Closed(code, reason) = ws::decode(&message) {
                            state.disconnected(code, reason);
                            break false;
                        }
                        state.receive(&message);
                    }
                }
            }
        }
    };
    if stopped {
        // Close politely and read until the server's close comes back; what
        // arrives meanwhile still counts.
        let _ = sink.send(ws::close_normal()).await;
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(ws::decode(&message), Incoming::Closed(..)) {
                    break;
                }
                state.receive(&message);
            }
        })
        .await;
    }
    state.stats
}

/// The next tick of an optional interval; never, if there is none.
async fn tick(ticker: &mut Option<Interval>) -> Instant {
    match ticker {
        Some(ticker) => ticker.tick().await,
        None => std::future::pending().await,
    }
}

impl State {
    fn next_send(&mut self, seq: u64, scheduled: Instant) -> ws::Message {
        let now = Instant::now();
        record(
            &mut self.stats.send_lag,
            now.saturating_duration_since(scheduled).as_micros() as u64,
        );
        let tag = Tag {
            user: self.plan.index,
            seq,
            micros: now.duration_since(self.plan.epoch).as_micros() as u64,
        };
        let (room, _) = self.plan.rooms[(seq % self.plan.rooms.len() as u64) as usize];
        let frame = ClientFrame {
            reference: None,
            action: ClientAction::Send(SendMessage {
                room_id: room,
                content: self.plan.content.to_string(),
                client_id: Some(client_id(&self.plan.run_id, tag)),
                reply_to: None,
                attachment_ids: Vec::new(),
            }),
        };
        self.stats.sent += 1;
        Live::bump(&self.live.sent);
        ws::encode(self.plan.codec, &frame)
    }

    fn disconnected(&mut self, code: u16, reason: String) {
        *self.stats.disconnects.entry(code.to_string()).or_default() += 1;
        if !reason.is_empty() && self.stats.close_reasons.len() < 10 {
            self.stats.close_reasons.push(format!("{code} {reason}"));
        }
        Live::bump(&self.live.disconnects);
    }

    fn micros_since(&self, tag: Tag, now: Instant) -> u64 {
        (now.duration_since(self.plan.epoch).as_micros() as u64).saturating_sub(tag.micros)
    }

    fn receive(&mut self, message: &ws::Message) {
        let now = Instant::now();
        let frame = match ws::decode(message) {
            Incoming::Frame(frame) => frame,
            Incoming::Undecodable(_) => {
                self.stats.undecodable += 1;
                return;
            }
            Incoming::Closed(..) | Incoming::Control => return,
        };
        *self
            .stats
            .frames
            .entry(frame.kind().to_string())
            .or_default() += 1;
        match *frame {
            ServerFrame::Ack { client_id, .. } => {
                let Some(tag) = client_id
                    .as_deref()
                    .and_then(|id| parse_client_id(&self.plan.run_id, id))
                    .filter(|tag| tag.user == self.plan.index)
                else {
                    return;
                };
                if !self.acked.insert(tag.seq) {
                    self.stats.duplicate_acks += 1;
                    return;
                }
                let latency = self.micros_since(tag, now);
                record(&mut self.stats.ack, latency);
                self.stats.acked += 1;
                self.stats.last_ack = Some(now);
                Live::bump(&self.live.acked);
                let (_, fanout) =
                    self.plan.rooms[(tag.seq % self.plan.rooms.len() as u64) as usize];
                self.live
                    .expected
                    .fetch_add(fanout, std::sync::atomic::Ordering::Relaxed);
            }
            ServerFrame::Message { message } => {
                let Some(tag) = message
                    .client_id
                    .as_deref()
                    .and_then(|id| parse_client_id(&self.plan.run_id, id))
                else {
                    self.stats.foreign += 1;
                    return;
                };
                if !self.seen.insert(message.id) {
                    self.stats.duplicates += 1;
                    return;
                }
                let latency = self.micros_since(tag, now);
                if message.sender_id == self.plan.user_id {
                    record(&mut self.stats.echo, latency);
                    self.stats.echoes += 1;
                    return;
                }
                match self.last_seq.get(&(tag.user, message.room_id)) {
                    Some(&last) if last >= tag.seq => self.stats.out_of_order += 1,
                    _ => {
                        self.last_seq.insert((tag.user, message.room_id), tag.seq);
                    }
                }
                record(&mut self.stats.delivery, latency);
                self.stats.delivered += 1;
                self.stats.last_delivery = Some(now);
                Live::bump(&self.live.delivered);
            }
            ServerFrame::Error(error) => {
                *self
                    .stats
                    .errors
                    .entry(error.code.as_str().to_string())
                    .or_default() += 1;
                Live::bump(&self.live.errors);
                let ours = error
                    .client_id
                    .as_deref()
                    .and_then(|id| parse_client_id(&self.plan.run_id, id))
                    .is_some_and(|tag| tag.user == self.plan.index);
                if ours {
                    self.stats.refused += 1;
                    Live::bump(&self.live.refused);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_round_trip() {
        let tag = Tag {
            user: 199,
            seq: 1234,
            micros: 31_000_000,
        };
        let id = client_id("k3x9q2", tag);
        assert!(id.len() <= chat_protocol::limits::CLIENT_ID_MAX);
        assert_eq!(parse_client_id("k3x9q2", &id), Some(tag));
        assert_eq!(parse_client_id("other", &id), None);
        assert_eq!(parse_client_id("k3x9q2", "k3x9q2-1-2"), None);
        assert_eq!(parse_client_id("k3x9q2", "cli-7"), None);
    }
}
