//! The WebSocket side: opening `/ws` with a bearer token and a codec, and
//! converting protocol frames to WebSocket messages and back.

use chat_protocol::Codec;
use chat_protocol::frames::{ClientFrame, ServerFrame};
use reqwest::Url;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;
pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The read buffer of each connection. tungstenite zero-fills the free
/// part of its read buffer before every read (a read per delivery), and
/// with its default of 128 KiB that took about half of the load
/// generator's CPU at 1,000 messages a second, from the cores the server
/// under test runs on (docs/benchmarks.md). The frames read here are a
/// few hundred bytes; a larger one is still read whole, the buffer grows
/// for it.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// An open connection to `/ws`.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The `ws://…/ws` URL of an `http://…` server base URL.
pub fn ws_url(server: &Url) -> anyhow::Result<Url> {
    let mut url = server.join("ws")?;
    url.set_scheme("ws")
        .map_err(|()| anyhow::anyhow!("cannot make a ws:// URL of {server}"))?;
    Ok(url)
}

/// The handshake request for `/ws` at `url`: the bearer `token` and
/// `codec`'s subprotocol.
pub fn handshake_request(
    url: &Url,
    token: &str,
    codec: Codec,
) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    let mut request = url.as_str().into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(codec.subprotocol()),
    );
    Ok(request)
}

/// Opens `/ws` as the holder of `token`, asking for `codec`'s subprotocol.
/// Nagle is off: these tools measure latency.
pub async fn connect(server: &Url, token: &str, codec: Codec) -> anyhow::Result<Socket> {
    let url = ws_url(server)?;
    let request = handshake_request(&url, token, codec)?;
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (socket, response) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .map_err(|e| anyhow::anyhow!("WebSocket {url}: {e}"))?;
    let chosen = response
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    if chosen != Some(codec.subprotocol()) {
        anyhow::bail!(
            "WebSocket {url}: asked for subprotocol {}, the server chose {chosen:?}",
            codec.subprotocol()
        );
    }
    Ok(socket)
}

/// A client frame as a WebSocket message: text for JSON, binary for
/// MessagePack.
pub fn encode(codec: Codec, frame: &ClientFrame) -> Message {
    let bytes = codec.encode(frame).expect("client frames always encode");
    match codec {
        Codec::Json => Message::text(String::from_utf8(bytes).expect("JSON is UTF-8")),
        Codec::MsgPack => Message::binary(bytes),
    }
}

/// What a WebSocket message from the server is.
#[derive(Debug)]
pub enum Incoming {
    /// A protocol frame.
    Frame(Box<ServerFrame>),
    /// A data frame that did not decode, with the reason.
    Undecodable(String),
    /// The server closed the connection: code and reason (no close frame
    /// at all is [`CLOSE_NONE`]).
    Closed(u16, String),
    /// A control frame (ping, pong) that needs no attention.
    Control,
}

/// The close "code" recorded when a connection ended without a close frame.
pub const CLOSE_NONE: u16 = 1006;

/// Decodes one message from the server. Text frames are JSON and binary
/// frames MessagePack, whatever was negotiated, as the server does.
pub fn decode(message: &Message) -> Incoming {
    let result = match message {
        Message::Text(text) => Codec::Json.decode::<ServerFrame>(text.as_bytes()),
        Message::Binary(bytes) => Codec::MsgPack.decode::<ServerFrame>(bytes),
        Message::Close(Some(frame)) => {
            return Incoming::Closed(u16::from(frame.code), frame.reason.to_string());
        }
        Message::Close(None) => return Incoming::Closed(CLOSE_NONE, String::new()),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Incoming::Control,
    };
    match result {
        Ok(frame) => Incoming::Frame(Box::new(frame)),
        Err(error) => Incoming::Undecodable(error.to_string()),
    }
}

/// A normal (1000) close frame.
pub fn close_normal() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::frames::{ClientAction, SendMessage};
    use chat_protocol::{Id, RoomId};

    #[test]
    fn urls() {
        let server = crate::api::parse_server("http://127.0.0.1:18080/x?y").unwrap();
        assert_eq!(ws_url(&server).unwrap().as_str(), "ws://127.0.0.1:18080/ws");
        assert!(crate::api::parse_server("https://example.com").is_err());
    }

    #[test]
    fn frames_round_trip_both_codecs() {
        let frame = ClientFrame {
            reference: None,
            action: ClientAction::Send(SendMessage {
                room_id: RoomId::Group(Id(42)),
                content: "hi".into(),
                client_id: Some("c1".into()),
                reply_to: None,
                attachment_ids: Vec::new(),
            }),
        };
        let text = encode(Codec::Json, &frame);
        assert!(matches!(text, Message::Text(_)));
        let binary = encode(Codec::MsgPack, &frame);
        assert!(matches!(binary, Message::Binary(_)));
        let pong = Message::text(r#"{"type":"pong"}"#);
        assert!(
            matches!(decode(&pong), Incoming::Frame(f) if matches!(*f, ServerFrame::Pong { .. }))
        );
        assert!(matches!(
            decode(&Message::text("{")),
            Incoming::Undecodable(_)
        ));
    }
}
