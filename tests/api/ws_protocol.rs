//! Hostile WebSocket clients at the frame level: after a real upgrade the
//! test writes hand-built frames on the raw TCP socket, which no WebSocket
//! library would send (unmasked, reserved bits, unknown opcodes), and reads
//! the server's frames back itself, so that it sees exactly what arrived
//! before the close frame.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::Server;

/// How long a test waits for the server's close frame.
const WAIT: Duration = Duration::from_secs(20);

/// A frame from the server, as read off the socket.
#[derive(Debug)]
enum Frame {
    Text(Value),
    Close(Option<u16>),
    /// Ping, pong: not looked at.
    Other,
}

/// A raw socket past the WebSocket upgrade.
struct Raw {
    socket: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    /// Upgrades with `token` and waits for the `ready` frame.
    async fn open(server: &Server, token: &str) -> Raw {
        let address = server.base.trim_start_matches("http://").to_string();
        let mut socket = TcpStream::connect(&address).await.expect("connect");
        let request = format!(
            "GET /ws?access_token={token} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Raw {
            socket,
            buffer: Vec::new(),
        };
        let end = loop {
            if let Some(end) = raw.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(raw.fill().await, "connection closed during the upgrade");
        };
        let head = String::from_utf8_lossy(&raw.buffer[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        raw.buffer.drain(..end);
        match raw.next().await {
            Some(Frame::Text(frame)) => assert_eq!(frame["type"], "ready", "{frame}"),
            other => panic!("expected ready, got {other:?}"),
        }
        raw
    }

    /// Reads more bytes; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(WAIT, self.socket.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!("nothing from the server within {WAIT:?}"),
        }
    }

    /// The next whole frame from the server; None at the end of the stream.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The frames up to and including the close frame.
    async fn until_close(&mut self) -> (Vec<Value>, Option<u16>) {
        let mut texts = Vec::new();
        loop {
            match self.next().await {
                Some(Frame::Text(value)) => texts.push(value),
                Some(Frame::Close(code)) => return (texts, code),
                Some(Frame::Other) => {}
                None => panic!("stream ended without a close frame after {texts:?}"),
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.expect("write");
    }
}

/// A server frame (never masked, never fragmented here) at the start of
/// `bytes`, with its length.
fn parse(bytes: &[u8]) -> Option<(Frame, usize)> {
    if bytes.len() < 2 {
        return None;
    }
    let opcode = bytes[0] & 0x0f;
    let (len, start) = match bytes[1] & 0x7f {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
        127 if bytes.len() >= 10 => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&bytes[2..10]);
            (u64::from_be_bytes(len) as usize, 10)
        }
        126 | 127 => return None,
        len => (len as usize, 2),
    };
    if bytes.len() < start + len {
        return None;
    }
    let payload = &bytes[start..start + len];
    let frame = match opcode {
        0x1 => Frame::Text(serde_json::from_slice(payload).expect("server text is JSON")),
        0x8 => {
            Frame::Close((payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])))
        }
        _ => Frame::Other,
    };
    Some((frame, start + len))
}

/// A client frame: `first` is FIN, reserved bits and opcode; masked with a
/// fixed key unless `masked` is false.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        len if len < 126 => out.push(mask_bit | len as u8),
        len if len <= u16::MAX as usize => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

const PING: &[u8] = br#"{"type":"ping"}"#;

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let server = Server::start();
    let (client, _) = server.user("hostile").await;
    let cases: [(&str, Vec<u8>); 5] = [
        ("invalid UTF-8 text", frame(0x81, &[0xff, 0xfe, 0xfd], true)),
        ("unmasked text frame", frame(0x81, PING, false)),
        ("RSV1 set", frame(0x80 | 0x40 | 0x1, PING, true)),
        ("RSV3 set", frame(0x80 | 0x10 | 0x1, PING, true)),
        ("unknown opcode 0x3", frame(0x80 | 0x3, PING, true)),
    ];
    for (case, bytes) in cases {
        let mut raw = Raw::open(&server, client.token()).await;
        raw.write(&bytes).await;
        let (_, code) = raw.until_close().await;
        assert_eq!(code, Some(1002), "{case}");
    }
    // A well-formed frame still gets its answer: the checks above are not
    // refusing everything.
    let mut raw = Raw::open(&server, client.token()).await;
    raw.write(&frame(0x81, PING, true)).await;
    match raw.next().await {
        Some(Frame::Text(pong)) => assert_eq!(pong["type"], "pong", "{pong}"),
        other => panic!("expected pong, got {other:?}"),
    }
}

#[tokio::test]
async fn a_frame_over_the_size_limit_still_closes_with_1009() {
    let server = Server::start();
    let (client, _) = server.user("large").await;
    // Past the library's read limit: refused from the header alone.
    let mut raw = Raw::open(&server, client.token()).await;
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(64u64 * 1024 * 1024).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.write(&header).await;
    assert_eq!(raw.until_close().await.1, Some(1009), "64 MiB header");
    // Over the protocol's 64 KiB, within what the library reads whole.
    let mut raw = Raw::open(&server, client.token()).await;
    raw.write(&frame(0x81, &vec![b' '; 100 * 1024], true)).await;
    assert_eq!(raw.until_close().await.1, Some(1009), "100 KiB frame");
}

#[tokio::test]
async fn every_error_queued_before_the_policy_close_is_delivered() {
    let server = Server::start();
    let (client, _) = server.user("burst").await;
    let mut raw = Raw::open(&server, client.token()).await;
    let burst: Vec<u8> = (0..50)
        .flat_map(|_| frame(0x81, b"not json", true))
        .collect();
    raw.write(&burst).await;
    let (texts, code) = raw.until_close().await;
    assert_eq!(code, Some(1008));
    assert!(
        texts
            .iter()
            .all(|t| t["type"] == "error" && t["code"] == "bad_request"),
        "{texts:?}"
    );
    // The 21st bad frame within a minute closes (20 are tolerated); each
    // of the 21 was answered with an `error` before the close frame.
    assert_eq!(texts.len(), 21, "{texts:?}");
}
