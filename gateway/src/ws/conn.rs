//! A connection as the hub and the relay see it: who it is, how it encodes,
//! a bounded queue of frames to write, and a way to close it.
//!
//! Fan-out never waits for a connection: a frame that does not fit in the
//! queue closes the connection with 4003, so one slow reader can neither
//! grow memory nor stall its rooms. The connection's own answers (`ready`,
//! `history`, `resume`) do wait for room, since the client asked for them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::Message;
use chat_protocol::frames::close_code;
use chat_protocol::{Codec, Id};
use tokio::sync::{mpsc, watch};

/// How long an answer to the client may wait for room in the queue.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Event ids remembered per connection to pass each event on once. A
/// `message` event's id is its message's id, so this also drops the
/// republished copies of a persistence batch taken over after its worker
/// died (up to a batch's worth for one connection's rooms).
const RECENT_EVENTS: usize = 256;

/// Why and how a connection is being closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

/// One live WebSocket connection.
pub struct Conn {
    pub id: u64,
    pub user: Id,
    pub codec: Codec,
    /// The session of the token it was opened with: revoking the session
    /// closes the connection.
    pub session: Option<Id>,
    outbound: mpsc::Sender<Message>,
    close: watch::Sender<Option<CloseReason>>,
    recent_events: Mutex<VecDeque<u64>>,
    /// Set once `ready` is queued: live events come after it.
    live: AtomicBool,
}

/// The receiving ends the session's writer needs.
pub struct ConnReceivers {
    pub outbound: mpsc::Receiver<Message>,
    pub close: watch::Receiver<Option<CloseReason>>,
}

impl Conn {
    /// A connection with a queue of `queue` frames.
    pub fn new(id: u64, user: Id, codec: Codec, queue: usize) -> (Conn, ConnReceivers) {
        let (outbound, outbound_rx) = mpsc::channel(queue.max(1));
        let (close, close_rx) = watch::channel(None);
        let conn = Conn {
            id,
            user,
            codec,
            session: None,
            outbound,
            close,
            recent_events: Mutex::new(VecDeque::new()),
            live: AtomicBool::new(false),
        };
        (
            conn,
            ConnReceivers {
                outbound: outbound_rx,
                close: close_rx,
            },
        )
    }

    /// The connection of a token of `session`.
    pub fn with_session(mut self, session: Id) -> Conn {
        self.session = Some(session);
        self
    }

    /// Queues a live frame without waiting; a full queue closes the
    /// connection as too slow. Answers whether the frame was queued.
    pub fn push_live(&self, message: Message) -> bool {
        match self.outbound.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.closing() {
                    crate::metrics::SLOW_CONSUMERS.inc();
                }
                self.close_with(close_code::TOO_SLOW, "too slow: outbound queue overflowed");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues an answer, waiting for room for a while; a client that does
    /// not read its answers is closed as too slow.
    pub async fn push_answer(&self, message: Message) -> bool {
        match tokio::time::timeout(ANSWER_WAIT, self.outbound.send(message)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                if !self.closing() {
                    crate::metrics::SLOW_CONSUMERS.inc();
                }
                self.close_with(close_code::TOO_SLOW, "too slow: answers not read");
                false
            }
        }
    }

    /// Asks the session to close the connection. The first reason wins.
    pub fn close_with(&self, code: u16, reason: &'static str) {
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(CloseReason { code, reason });
                true
            } else {
                false
            }
        });
    }

    /// Resolves (via `changed`) when a close is asked for.
    pub fn close_receiver(&self) -> watch::Receiver<Option<CloseReason>> {
        self.close.subscribe()
    }

    /// The close code asked for, if any.
    pub fn close_code(&self) -> Option<u16> {
        self.close.borrow().map(|reason| reason.code)
    }

    /// Whether a close was asked for.
    pub fn closing(&self) -> bool {
        self.close.borrow().is_some()
    }

    /// Lets live events through; called once `ready` is queued.
    pub fn go_live(&self) {
        self.live.store(true, Ordering::Release);
    }

    /// Whether live events may be queued (after `ready`).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Whether this is the first time this connection sees `event` (the same
    /// event can arrive on several channels).
    pub fn first_sight(&self, event: u64) -> bool {
        let mut recent = self.recent_events.lock().unwrap_or_else(|p| p.into_inner());
        if recent.contains(&event) {
            return false;
        }
        if recent.len() == RECENT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(event);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overflow_closes_with_4003_and_keeps_the_first_reason() {
        let (conn, receivers) = Conn::new(1, Id(1), Codec::Json, 2);
        assert!(conn.push_live(Message::Text("a".into())));
        assert!(conn.push_live(Message::Text("b".into())));
        assert!(!conn.closing());
        assert!(!conn.push_live(Message::Text("c".into())));
        conn.close_with(close_code::RESTARTING, "later reason");
        assert_eq!(
            *receivers.close.borrow(),
            Some(CloseReason {
                code: close_code::TOO_SLOW,
                reason: "too slow: outbound queue overflowed"
            })
        );
    }

    #[test]
    fn events_are_seen_once() {
        let (conn, _receivers) = Conn::new(1, Id(1), Codec::Json, 1);
        assert!(conn.first_sight(7));
        assert!(!conn.first_sight(7));
        for id in 100..100 + RECENT_EVENTS as u64 {
            conn.first_sight(id);
        }
        assert!(
            conn.first_sight(7),
            "old ids are forgotten, memory stays bounded"
        );
    }
}
