//! A floor under an upload's pace, so that a place to stream
//! ([`super::places`]) is held only by an upload that is arriving.
//!
//! The body idle timeout cuts a body that stops; it cannot cut one sent a
//! byte every few seconds, which would hold its place (one of its user's
//! and one of the process's) for days. So an upload, once it has its place,
//! has a head start (`limits.body_timeout_ms`, what a whole JSON body gets)
//! plus one second for every `files.min_upload_bytes_per_second` bytes it
//! has sent; past that it is cut off, and its place is free again. This is
//! Apache's `mod_reqtimeout` `MinRate` rule: an average over the whole
//! upload, so a client that slows down for a while after a quick start is
//! not cut, and one that never sends faster than the floor always is.
//!
//! The floor is set far below any link a person uploads from (4 KiB/s by
//! default, a tenth of a poor mobile link): it takes away the free ride, not
//! the slow client. Holding every place still works for a client that sends
//! at the floor for each of them, which costs it real bandwidth.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// How slowly an upload may arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinPace {
    /// Time allowed before the first byte counts for anything.
    pub head_start: Duration,
    /// Bytes each further second must be paid for with; 0 sets no floor.
    pub bytes_per_second: u64,
}

impl MinPace {
    /// How long an upload may have taken, from its start, once `received`
    /// bytes are in; `None` when there is no floor.
    pub fn allowed(&self, received: u64) -> Option<Duration> {
        if self.bytes_per_second == 0 {
            return None;
        }
        let whole_seconds = received / self.bytes_per_second;
        let rest = received % self.bytes_per_second;
        let rest_nanos = rest * 1_000_000_000 / self.bytes_per_second;
        Some(
            self.head_start
                .saturating_add(Duration::from_secs(whole_seconds))
                .saturating_add(Duration::from_nanos(rest_nanos)),
        )
    }
}

/// Why a paced body ended early.
#[derive(Debug, thiserror::Error)]
pub enum PaceError<E> {
    /// It fell behind [`MinPace`].
    #[error("the upload arrived slower than {bytes_per_second} bytes per second")]
    TooSlow { bytes_per_second: u64 },
    /// The body itself failed (cut, stalled, malformed).
    #[error("{0}")]
    Body(E),
}

/// A body stream that fails with [`PaceError::TooSlow`] once it falls
/// behind its [`MinPace`], counted from when it was made (when the upload
/// got its place, not when the request came: the wait is not its fault).
pub struct Paced<S> {
    body: S,
    pace: MinPace,
    started: Instant,
    received: u64,
    /// When the body falls behind; `None` with no floor or once it has.
    deadline: Option<Pin<Box<Sleep>>>,
    ended: bool,
}

impl<S> Paced<S> {
    pub fn new(body: S, pace: MinPace) -> Paced<S> {
        let started = Instant::now();
        Paced {
            body,
            pace,
            started,
            received: 0,
            deadline: pace
                .allowed(0)
                .map(|allowed| Box::pin(tokio::time::sleep_until(started + allowed))),
            ended: false,
        }
    }
}

impl<S, E> Stream for Paced<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, PaceError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.body).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                if let (Some(deadline), Some(allowed)) =
                    (this.deadline.as_mut(), this.pace.allowed(this.received))
                {
                    deadline.as_mut().reset(this.started + allowed);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(PaceError::Body(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let fell_behind = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if !fell_behind {
                    return Poll::Pending;
                }
                this.ended = true;
                this.deadline = None;
                Poll::Ready(Some(Err(PaceError::TooSlow {
                    bytes_per_second: this.pace.bytes_per_second,
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio::sync::mpsc;

    use super::*;

    const PACE: MinPace = MinPace {
        head_start: Duration::from_secs(10),
        bytes_per_second: 1000,
    };

    #[test]
    fn each_byte_buys_its_share_of_a_second_after_the_head_start() {
        assert_eq!(PACE.allowed(0), Some(Duration::from_secs(10)));
        assert_eq!(PACE.allowed(1), Some(Duration::from_millis(10_001)));
        assert_eq!(PACE.allowed(2500), Some(Duration::from_millis(12_500)));
        let no_floor = MinPace {
            bytes_per_second: 0,
            ..PACE
        };
        assert_eq!(no_floor.allowed(0), None);
        // The largest counts saturate instead of overflowing.
        let one_byte_a_second = MinPace {
            bytes_per_second: 1,
            ..PACE
        };
        assert_eq!(
            one_byte_a_second.allowed(u64::MAX),
            Some(Duration::from_secs(10).saturating_add(Duration::from_secs(u64::MAX)))
        );
    }

    type Chunks = mpsc::UnboundedSender<Result<Bytes, String>>;

    /// A paced body, and where its chunks are sent from.
    fn body(
        pace: MinPace,
    ) -> (
        Chunks,
        Paced<impl Stream<Item = Result<Bytes, String>> + Unpin>,
    ) {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let chunks = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        (sender, Paced::new(chunks, pace))
    }

    fn chunk(len: usize) -> Result<Bytes, String> {
        Ok(Bytes::from(vec![b'x'; len]))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_the_pace_is_read_whole() {
        let (sender, mut paced) = body(PACE);
        let started = Instant::now();
        tokio::spawn(async move {
            // Nothing for 9 s, then 1000 bytes every 0.9 s: always ahead.
            tokio::time::sleep(Duration::from_secs(9)).await;
            for _ in 0..20 {
                sender.send(chunk(1000)).unwrap();
                tokio::time::sleep(Duration::from_millis(900)).await;
            }
        });
        let mut read = 0;
        while let Some(chunk) = paced.next().await {
            read += chunk.unwrap().len();
        }
        assert_eq!(read, 20_000);
        assert!(started.elapsed() >= Duration::from_secs(27));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_falls_behind_is_cut_when_its_time_runs_out() {
        let (sender, mut paced) = body(PACE);
        let started = Instant::now();
        // 3000 bytes at once buy 3 s beyond the head start; then a trickle
        // too slow to buy more in time.
        sender.send(chunk(3000)).unwrap();
        assert_eq!(paced.next().await.unwrap().unwrap().len(), 3000);
        tokio::spawn(async move {
            while sender.send(chunk(1)).is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut trickled = 0;
        let cut = loop {
            match paced.next().await.unwrap() {
                Ok(chunk) => trickled += chunk.len(),
                Err(error) => break error,
            }
        };
        assert!(matches!(
            cut,
            PaceError::TooSlow {
                bytes_per_second: 1000
            }
        ));
        // 13 s for the first 3000 bytes, and a millisecond for each of the
        // ~130 trickled in meanwhile.
        let allowed = PACE.allowed(3000 + trickled as u64).unwrap();
        assert_eq!(started.elapsed(), allowed);
        assert!((130..=132).contains(&trickled), "{trickled}");
        assert!(paced.next().await.is_none(), "a cut body ends");
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_floor_only_the_body_ends_the_body() {
        let (sender, mut paced) = body(MinPace {
            bytes_per_second: 0,
            ..PACE
        });
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            sender.send(chunk(1)).unwrap();
            sender.send(Err("reset".to_owned())).unwrap();
        });
        assert_eq!(paced.next().await.unwrap().unwrap().len(), 1);
        let error = paced.next().await.unwrap().unwrap_err();
        assert_eq!(error.to_string(), "reset");
    }
}
