//! `resume`: replays what a reconnecting client missed in each of its
//! rooms, within a budget per call and per room, and reports per room
//! whether the replay was complete (the client pages on with `history`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chat_protocol::frames::{ResumedRoom, ServerFrame};
use chat_protocol::{ErrorCode, Id, RoomId};

use super::conn::Conn;
use super::session::{answer, send_error};
use crate::{AppState, metrics};

/// Most messages replayed per room by `resume` (besides the total budget
/// of one call, `limits.resume_messages`).
const RESUME_MAX_PER_ROOM: u32 = 500;
/// Most rooms in one `resume`.
const RESUME_MAX_ROOMS: usize = 1000;
/// Page size used while replaying.
const RESUME_PAGE: u32 = 100;

/// Replays what the client missed in each room, then reports per room.
/// One call replays at most `limits.resume_messages` messages in all:
/// rooms cut short, and rooms not reached once that budget is spent, are
/// reported `complete: false` (the client pages on with `history`).
pub(super) async fn resume(
    state: &AppState,
    conn: &Arc<Conn>,
    rooms: BTreeMap<RoomId, Id>,
    reference: Option<String>,
) {
    if rooms.len() > RESUME_MAX_ROOMS {
        let message = format!("resume at most {RESUME_MAX_ROOMS} rooms at once");
        send_error(conn, ErrorCode::BadRequest, message, reference, None).await;
        return;
    }
    let mut budget = state.ws.resume_messages;
    let mut report = BTreeMap::new();
    'rooms: for (room, last_seen) in rooms {
        let refused = |error: chat_router::Error| {
            let message = format!("{room}: {error}");
            send_error(conn, error.code(), message, reference.clone(), None)
        };
        // A room the budget no longer reaches is still only reported to a
        // member (each page read below checks as much).
        if budget == 0
            && let Err(error) = state.chat.membership_in(conn.user, &room).await
        {
            refused(error).await;
            continue 'rooms;
        }
        let (mut after, mut replayed, mut complete) = (last_seen, 0u32, false);
        while replayed < RESUME_MAX_PER_ROOM && budget > 0 {
            let limit = RESUME_PAGE.min(RESUME_MAX_PER_ROOM - replayed).min(budget);
            let page = match state
                .chat
                .history(conn.user, &room, None, Some(after), Some(limit))
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    refused(error).await;
                    continue 'rooms;
                }
            };
            for message in page.messages {
                after = message.id;
                replayed += 1;
                budget = budget.saturating_sub(1);
                if !answer(conn, ServerFrame::Message { message }).await {
                    return;
                }
            }
            complete = !page.has_more;
            if complete {
                break;
            }
        }
        report.insert(room, ResumedRoom { replayed, complete });
    }
    if budget == 0 && report.values().any(|room| !room.complete) {
        metrics::RESUME_TRUNCATED.inc();
    }
    answer(
        conn,
        ServerFrame::Resumed {
            reference,
            rooms: report,
        },
    )
    .await;
}
