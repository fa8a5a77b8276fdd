//! Unfinished requests: a deadline for a new connection's request headers
//! and a cap on connections still sending them.
//!
//! axum's server has no request-header timeout: a client that connects and
//! never finishes its request line (silent, or trickling a header a byte at
//! a time) holds a file descriptor for as long as it likes. Each accepted
//! connection here holds a permit from the moment it is accepted until the
//! end of its first request's headers (`\r\n\r\n`) has been read; a
//! connection still without them after the header timeout is closed, and a
//! connection accepted while every permit is held is closed at once. Both
//! are counted in `chat_handshakes_closed_total{reason}`. Request bodies
//! (uploads) and WebSocket frames are not subject to the deadline; later
//! requests on a kept-alive connection have one of their own, hyper's
//! (see [`crate::server`]).

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

use crate::metrics::{HANDSHAKES_CLOSED, handshake_reason};

/// The bounds on unfinished requests (defaults in the configuration's
/// `limits`).
#[derive(Clone, Copy, Debug)]
pub struct HandshakeLimits {
    /// How long a new connection may take to send its request headers.
    pub header_timeout: Duration,
    /// Most connections still sending their first request's headers.
    pub max_pending: usize,
    /// How long a connection may wait, after answering a request, for the
    /// next request's headers to be complete (and the bound on the first
    /// request's too, if shorter than `header_timeout`).
    pub keep_alive_timeout: Duration,
}

/// A listener whose connections must send their request headers in time.
pub struct GuardedListener {
    inner: TcpListener,
    limits: HandshakeLimits,
    pending: Arc<Semaphore>,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, limits: HandshakeLimits) -> GuardedListener {
        GuardedListener {
            inner,
            limits,
            pending: Arc::new(Semaphore::new(limits.max_pending.max(1))),
        }
    }
}

impl Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedStream, SocketAddr) {
        loop {
            let (tcp, addr) = Listener::accept(&mut self.inner).await;
            match self.pending.clone().try_acquire_owned() {
                Ok(permit) => {
                    let waiting = Waiting {
                        deadline: Box::pin(tokio::time::sleep(self.limits.header_timeout)),
                        tail: [0; 3],
                        _permit: permit,
                    };
                    let stream = GuardedStream {
                        tcp,
                        waiting: Some(waiting),
                    };
                    return (stream, addr);
                }
                Err(_) => {
                    HANDSHAKES_CLOSED
                        .with_label_values(&[handshake_reason::CAP])
                        .inc();
                    drop(tcp);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; until its first request's headers are read it
/// has a deadline and holds a permit.
pub struct GuardedStream {
    tcp: TcpStream,
    waiting: Option<Waiting>,
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
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
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
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
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
}
