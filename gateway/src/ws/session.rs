//! One WebSocket connection's life.
//!
//! A writer task drains the connection's bounded queue into the socket; the
//! reader (this task) decodes client frames and answers or forwards them.
//! The connection ends when the client closes, when something asks it to
//! close (too slow 4003, token expired or unknown user 4001, too many bad
//! frames 1008, frame too large 1009, server restarting 1012, store or bus
//! unreachable at connect 1013), or when the client has
//! been silent for two heartbeat intervals.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use chat_protocol::frames::{ClientAction, ClientFrame, ErrorFrame, ServerFrame, close_code};
use chat_protocol::internal::Work;
use chat_protocol::{Codec, ErrorCode};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tracing::Instrument;

use super::conn::{CloseReason, Conn, ConnReceivers};
use super::decode::{BadFrames, decode_frame};
use super::encoded::encode;
use super::handshake::MAX_FRAME_BYTES;
use super::resume::resume;
use crate::auth::Verified;
use crate::{AppState, metrics};

/// How long the writer tries to get the close frame out to a client.
const CLOSE_FLUSH: Duration = Duration::from_secs(10);
/// Most queued frames written with one flush.
const WRITE_BURST: usize = 64;

/// Serves one upgraded connection until it closes.
pub async fn run(socket: WebSocket, state: AppState, verified: Verified, codec: Codec) {
    let id = state.hub.next_connection_id();
    let user = verified.user;
    let (conn, receivers) = Conn::new(id, user, codec, state.ws.outbound_queue);
    let conn = Arc::new(conn.with_session(verified.session));
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, receivers));
    metrics::CONNECTIONS.inc();
    metrics::CONNECTS.inc();
    // Indexed before the rooms are read, so that a removal racing with the
    // opening is not undone by a stale room list.
    // A revocation heard between the handshake's check and the indexing
    // found no connection to close: the hub looks again once it is indexed.
    state.hub.open(conn.clone()).await;
    match ready_frame(&state, &conn).await {
        Ok(frame) => {
            conn.push_answer(frame).await;
            conn.go_live();
            state.hub.tell_rooms_given_while_opening(&state.chat, &conn);
            let presence = state.relay.connection_key(id);
            forward(
                &state,
                &conn,
                Work::Connected {
                    connection: presence.clone(),
                },
            )
            .await;
            tracing::debug!(connection = id, user = %user, "connection opened");
            read_loop(stream, &state, &conn, verified.expires_at_ms).await;
            conn.close_with(close_code::NORMAL, "");
            // Forwarded before leaving the hub: shutdown waits for the hub
            // to empty, then drains the inbound stream, so the presence
            // change is never lost.
            let disconnected = Work::Disconnected {
                connection: presence,
            };
            forward(&state, &conn, disconnected).await;
        }
        Err((code, reason)) => conn.close_with(code, reason),
    }
    state.hub.unregister(id).await;
    metrics::CONNECTIONS.dec();
    let code = conn.close_code().unwrap_or(close_code::NORMAL);
    metrics::DISCONNECTS
        .with_label_values(&[&code.to_string()])
        .inc();
    if let Err(error) = writer.await {
        tracing::error!(%error, "connection writer failed");
    }
    tracing::debug!(connection = id, "connection closed");
}

/// The `ready` frame: the user and the rooms the connection receives,
/// which are attached to it in the hub on the way. Without it, the close
/// code and reason: a user the store does not know is an invalid token
/// (4001); a store or bus that cannot answer is an outage (1013, try again
/// later), never "unknown user".
async fn ready_frame(state: &AppState, conn: &Conn) -> Result<Message, (u16, &'static str)> {
    let ready_rooms = Some(state.ws.ready_rooms);
    let (user, page) = match tokio::try_join!(
        state.chat.user(conn.user),
        state.chat.rooms_page_after(conn.user, ready_rooms, None)
    ) {
        Ok(found) => found,
        Err(error) => {
            let detail = error.internal_detail().unwrap_or_default();
            tracing::info!(%error, detail, user = %conn.user, "connection refused");
            return Err(match error {
                chat_router::Error::NotFound(_) => (close_code::TOKEN_EXPIRED, "unknown user"),
                chat_router::Error::Unavailable(_) => (
                    close_code::TRY_AGAIN_LATER,
                    "service temporarily unavailable",
                ),
                _ => (close_code::INTERNAL, "internal error"),
            });
        }
    };
    // Compiled out of release builds: the timer would take room in every
    // connection's task.
    #[cfg(debug_assertions)]
    if let Some(delay) = *OPENING_DELAY {
        tokio::time::sleep(delay).await;
    }
    // Attached to every room, listed or not: live events flow for all.
    let attached = state.hub.attach(conn.id, &page.member_of).await;
    let mut rooms = page.rooms;
    if attached.len() < page.member_of.len() {
        rooms.retain(|r| attached.contains(&r.room.id));
    }
    let rooms_truncated = page.next_cursor.is_some();
    if rooms_truncated {
        metrics::READY_TRUNCATED.inc();
    }
    let mut user = user;
    user.online = Some(true);
    let frame = ServerFrame::Ready {
        session_id: state.relay.connection_key(conn.id),
        user,
        rooms,
        heartbeat_interval_ms: state.ws.heartbeat_interval.as_millis() as u64,
        rooms_truncated,
    };
    encode(&frame, conn.codec).ok_or((close_code::INTERNAL, "internal error"))
}

/// Test builds only (`CHAT_TEST_OPENING_DELAY_MS` set): how long a
/// connection waits between reading its rooms and attaching them, so that
/// tests can change its rooms in between.
#[cfg(debug_assertions)]
static OPENING_DELAY: std::sync::LazyLock<Option<Duration>> = std::sync::LazyLock::new(|| {
    let delay = std::env::var("CHAT_TEST_OPENING_DELAY_MS").ok()?;
    delay.parse().ok().map(Duration::from_millis)
});

async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut receivers: ConnReceivers) {
    // One wait for the close for the whole connection: a `changed()` made
    // afresh for every frame joins the watch's waiters and leaves them again
    // each time, which showed in fan-out profiles.
    let mut close = receivers.close.clone();
    let closed = close.changed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            next = receivers.outbound.recv() => {
                let Some(first) = next else { break };
                let burst = write_burst(&mut sink, first, &mut receivers.outbound);
                tokio::pin!(burst);
                // A write blocks on a client that does not read; stay
                // responsive to a close meanwhile.
                tokio::select! {
                    biased;
                    _ = &mut closed => {
                        // Frames taken from the queue are finished first
                        // unless the client is closed for not reading.
                        if !abandons_queue(&receivers.close)
                            && !matches!(tokio::time::timeout(CLOSE_FLUSH, &mut burst).await, Ok(Ok(())))
                        {
                            return;
                        }
                        break;
                    }
                    written = &mut burst => {
                        if written.is_err() { return }
                    }
                }
            }
        }
    }
    let CloseReason { code, reason } = (*receivers.close.borrow()).unwrap_or(CloseReason {
        code: close_code::NORMAL,
        reason: "",
    });
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    // What was queued before the close (the `error` frames that led to a
    // 1008, say) goes out before the close frame; only what was queued by
    // then, so that live events arriving meanwhile cannot hold it back.
    let queued = if abandons_queue(&receivers.close) {
        0
    } else {
        receivers.outbound.len()
    };
    let outbound = &mut receivers.outbound;
    let flush_and_close = async {
        for _ in 0..queued {
            match outbound.try_recv() {
                Ok(message) => sink.feed(message).await?,
                Err(_) => break,
            }
        }
        sink.send(close).await
    };
    let _ = tokio::time::timeout(CLOSE_FLUSH, flush_and_close).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

/// Whether the close asked for drops the frames still queued: a client
/// closed as too slow (4003) is not reading them anyway.
fn abandons_queue(close: &tokio::sync::watch::Receiver<Option<CloseReason>>) -> bool {
    close
        .borrow()
        .is_some_and(|reason| reason.code == close_code::TOO_SLOW)
}

/// Writes `first` and everything already queued behind it (up to
/// [`WRITE_BURST`]) with one flush: bursts (a persistence batch fans out
/// back to back) go out in few system calls.
async fn write_burst(
    sink: &mut SplitSink<WebSocket, Message>,
    first: Message,
    queue: &mut tokio::sync::mpsc::Receiver<Message>,
) -> Result<(), axum::Error> {
    sink.feed(first).await?;
    for _ in 1..WRITE_BURST {
        match queue.try_recv() {
            Ok(message) => sink.feed(message).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}

async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    state: &AppState,
    conn: &Arc<Conn>,
    expires_at_ms: u64,
) {
    let heartbeat = state.ws.heartbeat_interval;
    let mut pings = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let mut last_heard = Instant::now();
    let until_expiry =
        Duration::from_millis(expires_at_ms.saturating_sub(chat_protocol::id::now_ms()));
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    let mut closing = conn.close_receiver();
    if conn.closing() {
        return;
    }
    // Made once, like the write loop's.
    let closed = closing.changed();
    tokio::pin!(closed);
    let mut bad_frames = BadFrames::default();
    loop {
        tokio::select! {
            _ = &mut closed => return,
            () = &mut expiry => {
                conn.close_with(close_code::TOKEN_EXPIRED, "token expired");
                return;
            }
            _ = pings.tick() => {
                if last_heard.elapsed() >= heartbeat * 2 {
                    conn.close_with(close_code::NORMAL, "heartbeat timeout");
                    return;
                }
                conn.push_live(Message::Ping(bytes::Bytes::new()));
            }
            next = stream.next() => {
                let message = match next {
                    None => return,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "connection read failed");
                        if let Some((code, reason)) = read_failure_close(error) {
                            conn.close_with(code, reason);
                        }
                        return;
                    }
                    Some(Ok(message)) => message,
                };
                last_heard = Instant::now();
                let (bytes, codec) = match &message {
                    Message::Text(text) => (text.as_bytes(), Codec::Json),
                    Message::Binary(bytes) => (&bytes[..], Codec::MsgPack),
                    Message::Close(_) => return,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if bytes.len() > MAX_FRAME_BYTES {
                    conn.close_with(close_code::TOO_LARGE, "frame too large");
                    return;
                }
                match decode_frame(bytes, codec) {
                    Ok(frame) => {
                        metrics::FRAMES_IN.with_label_values(&[frame.action.kind()]).inc();
                        handle(state, conn, frame).await;
                    }
                    Err(error) => {
                        metrics::FRAMES_IN.with_label_values(&["invalid"]).inc();
                        send_error(conn, ErrorCode::BadRequest, error.message, error.reference, error.client_id).await;
                        if bad_frames.too_many() {
                            metrics::CAP_REFUSALS.with_label_values(&[metrics::fixed_cap::BAD_FRAMES]).inc();
                            conn.close_with(close_code::POLICY, "too many bad frames");
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// The close code and reason for a failed read: a frame or message over
/// the size limit is 1009, a violation of the WebSocket protocol itself
/// (unmasked frame, reserved bits, unknown opcode, invalid UTF-8 text) is
/// 1002. A connection that is already gone (I/O error, closed) gets no
/// reason of its own: the normal close follows, if anything can be sent.
fn read_failure_close(error: axum::Error) -> Option<(u16, &'static str)> {
    let error = error.into_inner().downcast::<tungstenite::Error>().ok()?;
    match *error {
        tungstenite::Error::Capacity(_) => Some((close_code::TOO_LARGE, "frame too large")),
        tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) => {
            Some((close_code::PROTOCOL_ERROR, "protocol error"))
        }
        _ => None,
    }
}

/// Answers or forwards one client frame, once it is charged to the
/// user's action budget.
async fn handle(state: &AppState, conn: &Arc<Conn>, frame: ClientFrame) {
    let ClientFrame { reference, action } = frame;
    if !charge_budget(state, conn, &action, &reference).await {
        return;
    }
    match action {
        ClientAction::Ping => {
            answer(conn, ServerFrame::Pong { reference }).await;
        }
        ClientAction::History {
            room_id,
            before,
            after,
            limit,
        } => {
            match state
                .chat
                .history(conn.user, &room_id, before, after, limit)
                .await
            {
                Ok(page) => {
                    let frame = ServerFrame::History {
                        reference,
                        room_id,
                        messages: page.messages,
                        has_more: page.has_more,
                    };
                    answer(conn, frame).await;
                }
                Err(error) => {
                    send_error(conn, error.code(), error.to_string(), reference, None).await;
                }
            }
        }
        ClientAction::Resume { rooms } => resume(state, conn, rooms, reference).await,
        action => {
            let client_id = match &action {
                ClientAction::Send(send) => send.client_id.clone(),
                _ => None,
            };
            // One span per forwarded action, the root of its trace: the
            // router and persistence worker continue it from the origin.
            let span = tracing::info_span!(
                "ws.action",
                action = action.kind(),
                room_id = action.room_id().map(tracing::field::display),
                connection = conn.id,
                trace_id = tracing::field::Empty,
            );
            chat_bus::trace::follow(&span, None);
            async {
                let mut origin = state.relay.origin(Some(conn.id), reference.clone());
                if let ClientAction::Send(send) = &action {
                    origin.hears_room = state.hub.hears(conn.id, &send.room_id);
                }
                if let Err(error) = state
                    .relay
                    .forward(conn.user, Work::Client(action), origin)
                    .await
                {
                    send_error(conn, error.code(), error.to_string(), reference, client_id).await;
                }
            }
            .instrument(span)
            .await;
        }
    }
}

/// Charges `action` to the user's budget; answers whether it may go on.
/// Over budget it is refused with `rate_limited`, except `typing: true`,
/// which is dropped silently as its own limit is. `typing: false` is
/// charged too, and refused aloud: never dropped silently, or the others
/// would be left seeing "typing…" (a client within its budget always
/// stops typing; a flood of stops is cut off like any other action).
async fn charge_budget(
    state: &AppState,
    conn: &Conn,
    action: &ClientAction,
    reference: &Option<String>,
) -> bool {
    let charged = match action {
        // Charged cluster-wide by its router, with its send rate, in one
        // call for the router's whole batch (`Chat::admit_sends`); checked
        // here against this process's copy of the budget, so that a flood
        // stops at the gateway instead of filling the inbound stream.
        ClientAction::Send(_) => state.chat.charge_budget_here(conn.user).await,
        _ => state.chat.charge_budget(conn.user, action.kind()).await,
    };
    let Err(error) = charged else {
        return true;
    };
    if !matches!(action, ClientAction::Typing { typing: true, .. }) {
        let client_id = match action {
            ClientAction::Send(send) => send.client_id.clone(),
            _ => None,
        };
        let retry_after_ms = error.retry_after_ms();
        let frame = ServerFrame::Error(ErrorFrame {
            code: error.code(),
            message: error.to_string(),
            reference: reference.clone(),
            client_id,
            retry_after_ms,
        });
        answer(conn, frame).await;
    }
    false
}

async fn forward(state: &AppState, conn: &Conn, work: Work) {
    let origin = state.relay.origin(Some(conn.id), None);
    if let Err(error) = state.relay.forward(conn.user, work, origin).await {
        tracing::warn!(%error, "presence change not forwarded");
    }
}

pub(super) async fn answer(conn: &Conn, frame: ServerFrame) -> bool {
    metrics::FRAMES_OUT.with_label_values(&[frame.kind()]).inc();
    match encode(&frame, conn.codec) {
        Some(message) => conn.push_answer(message).await,
        None => false,
    }
}

pub(super) async fn send_error(
    conn: &Conn,
    code: ErrorCode,
    message: String,
    reference: Option<String>,
    client_id: Option<String>,
) {
    let frame = ServerFrame::Error(ErrorFrame {
        code,
        message,
        reference,
        client_id,
        retry_after_ms: None,
    });
    answer(conn, frame).await;
}
