//! The bounds on a connection, whatever it carries: a cap on those open at
//! once, a deadline for a new connection's request headers, a cap on
//! connections still sending them, and a deadline for a client that stops
//! reading.
//!
//! Every connection, WebSockets included (an upgraded connection keeps its
//! stream), holds a descriptor for as long as it is open. Past the
//! process's open-file limit `accept` fails, and so does everything else
//! that needs a descriptor: a link to Redis, a file being uploaded. So each
//! listener takes at most `max_open` connections at once (by default a
//! little under the open-file limit, see `chatd`'s `descriptors`); one
//! accepted beyond it is closed at once, while the descriptors held back
//! keep the process's own links working.
//!
//! axum's server has no request-header timeout: a client that connects and
//! never finishes its request line (silent, or trickling a header a byte at
//! a time) holds a file descriptor for as long as it likes. Each accepted
//! connection here holds a permit from the moment it is accepted until the
//! end of its first request's headers (`\r\n\r\n`) has been read; a
//! connection still without them after the header timeout is closed, and a
//! connection accepted while every permit is held is closed at once. Both,
//! and the connections closed for the open cap, are counted in
//! `chat_handshakes_closed_total{reason}` (`timeout`, `cap`, `full`).
//! Request bodies (uploads) and WebSocket frames are not subject to the
//! deadline; later requests on a kept-alive connection have one of their
//! own, hyper's (see [`crate::server`]).
//!
//! Nothing else bounds a client that stops reading: a download's response,
//! or a WebSocket's frames, wait in the socket's buffer for as long as it
//! likes, and with them its connection, the file or object stream it reads
//! and the memory of what is queued. So a write that can make no progress
//! for `send_timeout` (the time between two writes that take bytes, as
//! nginx's `send_timeout`) fails the connection, counted in
//! `chat_send_stalls_total`. A client that reads, however slowly, makes
//! progress and is not cut.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::metrics::{HANDSHAKES_CLOSED, SEND_STALLS, handshake_reason};

/// The bounds on connections (defaults in the configuration's `limits`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// How long a new connection may take to send its request headers.
    pub header_timeout: Duration,
    /// Most connections still sending their first request's headers.
    pub max_pending: usize,
    /// Most connections open at once, each from its accept to its close.
    pub max_open: usize,
    /// How long a write may wait for the client to take any bytes.
    pub send_timeout: Duration,
    /// How long a connection may wait, after answering a request, for the
    /// next request's headers to be complete (and the bound on the first
    /// request's too, if shorter than `header_timeout`).
    pub keep_alive_timeout: Duration,
}

/// A listener whose connections must send their request headers in time.
pub struct GuardedListener {
    inner: TcpListener,
    limits: ConnectionLimits,
    pending: Arc<Semaphore>,
    open: Arc<Semaphore>,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> GuardedListener {
        let permits =
            |count: usize| Arc::new(Semaphore::new(count.clamp(1, Semaphore::MAX_PERMITS)));
        GuardedListener {
            inner,
            limits,
            pending: permits(limits.max_pending),
            open: permits(limits.max_open),
        }
    }
}

impl Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedStream, SocketAddr) {
        loop {
            let (tcp, addr) = Listener::accept(&mut self.inner).await;
            // Without a place, the connection is dropped (closed) at once.
            let Some(open) = take_place(&self.open, handshake_reason::FULL) else {
                continue;
            };
            let Some(pending) = take_place(&self.pending, handshake_reason::CAP) else {
                continue;
            };
            let waiting = Waiting {
                deadline: Box::pin(tokio::time::sleep(self.limits.header_timeout)),
                tail: [0; 3],
                _permit: pending,
            };
            let stream = GuardedStream {
                tcp,
                waiting: Some(waiting),
                send_timeout: self.limits.send_timeout,
                stall: None,
                stalled: false,
                _open: open,
            };
            return (stream, addr);
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One of `places`, or `None`, counted as a connection closed for `reason`.
fn take_place(places: &Arc<Semaphore>, reason: &str) -> Option<OwnedSemaphorePermit> {
    let place = places.clone().try_acquire_owned().ok();
    if place.is_none() {
        HANDSHAKES_CLOSED.with_label_values(&[reason]).inc();
    }
    place
}

/// An accepted connection; until its first request's headers are read it
/// has a deadline and holds a permit.
pub struct GuardedStream {
    tcp: TcpStream,
    waiting: Option<Waiting>,
    send_timeout: Duration,
    /// When a write that cannot go on gives up; made on the first stall.
    stall: Option<Pin<Box<Sleep>>>,
    /// Whether the last write could not go on (`stall` is armed).
    stalled: bool,
    /// Its place among the listener's open connections, given back when
    /// the stream (or the WebSocket it became) is dropped.
    _open: OwnedSemaphorePermit,
}

struct Waiting {
    deadline: Pin<Box<Sleep>>,
    /// The last bytes read, to find a `\r\n\r\n` split across reads.
    tail: [u8; 3],
    _permit: OwnedSemaphorePermit,
}

impl Waiting {
    /// Whether `read` (following what was read before) completes the
    /// headers.
    fn headers_end_in(&mut self, read: &[u8]) -> bool {
        let mut window = self.tail.to_vec();
        window.extend_from_slice(read);
        if window.windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
        let keep = window.len().min(3);
        self.tail = [0; 3];
        self.tail[3 - keep..].copy_from_slice(&window[window.len() - keep..]);
        false
    }
}

impl GuardedStream {
    /// The TCP stream underneath (to set socket options).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Passes on a write's `result`; a write that cannot go on arms the
    /// stall deadline (if it is not armed), and fails once it has passed.
    fn watch_write(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if result.is_ready() {
            self.stalled = false;
            return result;
        }
        let send_timeout = self.send_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(send_timeout)));
        if !self.stalled {
            stall
                .as_mut()
                .reset(tokio::time::Instant::now() + send_timeout);
            self.stalled = true;
        }
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        SEND_STALLS.inc();
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client took no bytes in time",
        )))
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(waiting) = &mut this.waiting
            && waiting.deadline.as_mut().poll(cx).is_ready()
        {
            HANDSHAKES_CLOSED
                .with_label_values(&[handshake_reason::TIMEOUT])
                .inc();
            this.waiting = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers not received in time",
            )));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(waiting)) = (&result, &mut this.waiting)
            && waiting.headers_end_in(&buf.filled()[before..])
        {
            // Headers complete: the deadline and the permit go.
            this.waiting = None;
        }
        result
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.watch_write(cx, result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.watch_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_the_end_of_headers_across_reads() {
        let semaphore = Arc::new(Semaphore::new(1));
        let mut waiting = Waiting {
            deadline: Box::pin(tokio::time::sleep(Duration::from_secs(1))),
            tail: [0; 3],
            _permit: semaphore.try_acquire_owned().unwrap(),
        };
        assert!(!waiting.headers_end_in(b"GET /ws HTTP/1.1\r\nHost: x\r"));
        assert!(!waiting.headers_end_in(b"\n"));
        assert!(!waiting.headers_end_in(b""));
        assert!(waiting.headers_end_in(b"\r\n"));
    }

    /// Whether the server closed `client` (rather than leaving it open)
    /// within a second.
    async fn closed(client: &mut TcpStream) -> bool {
        use tokio::io::AsyncReadExt;
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), client.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn connections_beyond_the_open_cap_are_closed_until_one_closes() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = tcp.local_addr().unwrap();
        let mut listener = GuardedListener::new(
            tcp,
            ConnectionLimits {
                header_timeout: Duration::from_secs(60),
                max_pending: 10,
                max_open: 2,
                send_timeout: Duration::from_secs(60),
                keep_alive_timeout: Duration::from_secs(60),
            },
        );
        let full = || {
            HANDSHAKES_CLOSED
                .with_label_values(&[handshake_reason::FULL])
                .get()
        };
        let full_before = full();
        let mut first = TcpStream::connect(address).await.unwrap();
        let (held, _) = listener.accept().await;
        let _second = TcpStream::connect(address).await.unwrap();
        let (_also_held, _) = listener.accept().await;

        // A third is accepted only to be closed: both places are held.
        let accepting = tokio::spawn(async move {
            let accepted = listener.accept().await;
            (listener, accepted)
        });
        let mut third = TcpStream::connect(address).await.unwrap();
        assert!(closed(&mut third).await, "the third connection is closed");
        assert_eq!(full() - full_before, 1);
        assert!(!closed(&mut first).await, "the first stays open");

        // Once one closes, the next is taken.
        drop(held);
        let _fourth = TcpStream::connect(address).await.unwrap();
        let (_listener, (_stream, peer)) = tokio::time::timeout(Duration::from_secs(5), accepting)
            .await
            .expect("the fourth connection is accepted")
            .unwrap();
        assert_eq!(peer.ip(), address.ip());
    }
}
