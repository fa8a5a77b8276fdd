//! History, posting and read positions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::Message;
use chat_protocol::frames::{ClientAction, SendMessage};
use chat_protocol::internal::Work;
use chat_protocol::rest::{HistoryQuery, HistoryResponse, PostMessageRequest, ReadRequest};

use crate::auth::AuthUser;
use crate::extract::{JsonBody, PathParams, QueryParams, room_id};
use crate::{ApiError, AppState};

pub async fn history(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathParams(room): PathParams<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let page = state
        .chat
        .history(me, &room_id(&room)?, query.before, query.after, query.limit)
        .await?;
    Ok(Json(HistoryResponse {
        messages: page.messages,
        has_more: page.has_more,
    }))
}

pub async fn post(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathParams(room): PathParams<String>,
    JsonBody(request): JsonBody<PostMessageRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let send = SendMessage {
        room_id: room_id(&room)?,
        content: request.content,
        client_id: request.client_id,
        reply_to: request.reply_to,
        attachment_ids: request.attachment_ids,
    };
    // The same path as a WebSocket `send`: router, then persistence, which
    // answers once the message is durable (and delivered live).
    match state
        .relay
        .call(me, Work::Client(ClientAction::Send(send)))
        .await?
    {
        Some(message) => Ok((StatusCode::CREATED, Json(message))),
        None => Err(ApiError::Internal(
            "a post was answered without its message".into(),
        )),
    }
}

pub async fn read(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathParams(room): PathParams<String>,
    JsonBody(request): JsonBody<ReadRequest>,
) -> Result<StatusCode, ApiError> {
    // The same path as a WebSocket `read`.
    let action = ClientAction::Read {
        room_id: room_id(&room)?,
        message_id: request.message_id,
    };
    state.relay.call_action(me, action).await?;
    Ok(StatusCode::NO_CONTENT)
}
