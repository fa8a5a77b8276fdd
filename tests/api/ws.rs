//! A WebSocket client of the real server, as an app would be: JSON or
//! MessagePack, frames turned into JSON values for the assertions.

use std::collections::VecDeque;
use std::time::Duration;

use chat_protocol::Codec;
use chat_protocol::frames::{ClientFrame, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::harness::Server;

/// How long a test waits for a frame it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One WebSocket connection.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    codec: Codec,
    /// Frames read while looking for another kind, kept in order for later.
    pending: VecDeque<Value>,
    /// The `ready` frame the connection started with.
    pub ready: Value,
}

/// How to present the token.
#[derive(PartialEq, Eq)]
pub enum TokenIn {
    Header,
    Query,
    /// In the header, without waiting for `ready` (to see a refusal).
    NoReady,
}

/// Opens a WebSocket to `server` with `token` as a bearer and `origin` as
/// the Origin header: `None` when the upgrade succeeds, else the HTTP status
/// that refused it.
pub async fn upgrade_refusal(server: &Server, token: &str, origin: &str) -> Option<u16> {
    let url = format!("{}/ws", server.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(Error::Http(response)) => Some(response.status().as_u16()),
        Err(error) => panic!("{error}"),
    }
}

impl Ws {
    /// A JSON connection with the token in the header; waits for `ready`.
    pub async fn connect(server: &Server, token: &str) -> Ws {
        Ws::open(server, Some(token), Codec::Json, TokenIn::Header)
            .await
            .unwrap_or_else(|status| panic!("connect: HTTP {status}"))
    }

    /// A connection; `Err` carries the HTTP status of a refused handshake.
    pub async fn open(
        server: &Server,
        token: Option<&str>,
        codec: Codec,
        token_in: TokenIn,
    ) -> Result<Ws, u16> {
        let mut url = format!("{}/ws", server.base.replacen("http", "ws", 1));
        if let (Some(token), TokenIn::Query) = (token, &token_in) {
            url.push_str(&format!("?access_token={token}"));
        }
        let mut request = url.into_client_request().unwrap();
        if let (Some(token), TokenIn::Header | TokenIn::NoReady) = (token, &token_in) {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        if codec == Codec::MsgPack {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", "chat.v1.msgpack".parse().unwrap());
        }
        let (stream, response) = match tokio_tungstenite::connect_async(request).await {
            Ok(connected) => connected,
            Err(Error::Http(response)) => return Err(response.status().as_u16()),
            Err(error) => panic!("handshake failed: {error}"),
        };
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        if codec == Codec::MsgPack {
            assert_eq!(
                response.headers()["sec-websocket-protocol"],
                "chat.v1.msgpack"
            );
        }
        let mut ws = Ws {
            stream,
            codec,
            pending: VecDeque::new(),
            ready: Value::Null,
        };
        if token_in == TokenIn::NoReady {
            return Ok(ws);
        }
        let ready = ws.next_frame().await;
        assert_eq!(ready["type"], "ready", "the first frame is ready: {ready}");
        ws.ready = ready;
        Ok(ws)
    }

    /// Sends a frame given as JSON; MessagePack connections send it as the
    /// typed frame, so ids travel as integers.
    pub async fn send(&mut self, frame: Value) {
        let message = match self.codec {
            Codec::Json => Message::text(frame.to_string()),
            Codec::MsgPack => {
                let typed: ClientFrame =
                    serde_json::from_value(frame).expect("a valid client frame");
                Message::binary(Codec::MsgPack.encode(&typed).unwrap())
            }
        };
        self.stream.send(message).await.expect("send");
    }

    /// Sends raw bytes as a text frame.
    pub async fn send_raw_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// Sends raw bytes as a binary frame.
    pub async fn send_raw_binary(&mut self, bytes: Vec<u8>) {
        self.stream
            .send(Message::binary(bytes))
            .await
            .expect("send");
    }

    /// The next frame, as JSON.
    pub async fn next_frame(&mut self) -> Value {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        match tokio::time::timeout(PATIENCE, self.next_or_close()).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(close)) => panic!("connection closed ({close:?}) while a frame was expected"),
            Err(_) => panic!("no frame within {PATIENCE:?}"),
        }
    }

    /// The next frame of `kind`; frames of other kinds before it stay
    /// queued for later reads, as a client app would process them.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        if let Some(position) = self.pending.iter().position(|f| f["type"] == kind) {
            return self.pending.remove(position).expect("a queued frame");
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.next_or_close())
                .await
                .unwrap_or_else(|_| panic!("no {kind} frame within {PATIENCE:?}"))
                .unwrap_or_else(|close| panic!("closed ({close:?}) while waiting for {kind}"));
            if frame["type"] == kind {
                return frame;
            }
            self.pending.push_back(frame);
        }
    }

    /// Frames (other than those in `ignore`) that arrive within `window`.
    pub async fn frames_within(&mut self, window: Duration, ignore: &[&str]) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + window;
        let mut frames: Vec<Value> = self
            .pending
            .drain(..)
            .filter(|frame| !ignore.iter().any(|kind| frame["type"] == *kind))
            .collect();
        while let Ok(next) = tokio::time::timeout_at(deadline, self.next_or_close()).await {
            match next {
                Ok(frame) if ignore.iter().any(|kind| frame["type"] == *kind) => {}
                Ok(frame) => frames.push(frame),
                Err(_) => break,
            }
        }
        frames
    }

    /// Reads until the server closes; answers the close code (None if the
    /// connection ended without a close frame).
    pub async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.next_or_close()).await {
                Ok(Ok(_)) => continue,
                Ok(Err(code)) => return code,
                Err(_) => panic!("the connection was not closed"),
            }
        }
    }

    /// Connects with the token in the header and answers the close code of
    /// a connection the server closes before `ready` (None: no close frame).
    /// Panics if `ready` arrives or the handshake is refused.
    pub async fn closed_before_ready(server: &Server, token: &str) -> Option<u16> {
        let mut ws = Ws::open(server, Some(token), Codec::Json, TokenIn::NoReady)
            .await
            .unwrap_or_else(|status| panic!("connect: HTTP {status}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        match tokio::time::timeout_at(deadline, ws.next_or_close()).await {
            Ok(Ok(frame)) => panic!("the server answered {frame} instead of closing"),
            Ok(Err(code)) => code,
            Err(_) => panic!("the connection was not closed"),
        }
    }

    /// Closes from the client side.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        // Drain until the server's close arrives, so the server has seen it.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }

    /// The next data frame, or the close code when the connection ends.
    async fn next_or_close(&mut self) -> Result<Value, Option<u16>> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("JSON frame"));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let frame: ServerFrame =
                        Codec::MsgPack.decode(&bytes).expect("MessagePack frame");
                    return Ok(serde_json::to_value(frame).unwrap());
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }
}
