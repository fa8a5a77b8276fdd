//! Rooms, members, the room directory and DMs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chat_protocol::Room;
use chat_protocol::frames::ClientAction;
use chat_protocol::rest::{
    AddMemberRequest, CreateRoomRequest, MembersQuery, MembersResponse, OpenDmRequest,
    PublicRoomsQuery, PublicRoomsResponse, RoomsResponse,
};

use crate::auth::AuthUser;
use crate::extract::{JsonBody, QueryParams, id, room_id};
use crate::{ApiError, AppState};

pub async fn create(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    JsonBody(request): JsonBody<CreateRoomRequest>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    let room = state.chat.create_room(me, request).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

pub async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<RoomsResponse>, ApiError> {
    let rooms = state.chat.rooms_of(me).await?;
    Ok(Json(RoomsResponse { rooms }))
}

pub async fn get(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room): Path<String>,
) -> Result<Json<Room>, ApiError> {
    Ok(Json(state.chat.room(me, &room_id(&room)?).await?))
}

pub async fn join(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room): Path<String>,
) -> Result<Json<Room>, ApiError> {
    // The same path as a WebSocket `join`: the room's router applies it
    // and publishes its events; then the room is read for the answer.
    let room_id = room_id(&room)?;
    state
        .relay
        .call_action(me, ClientAction::Join { room_id })
        .await?;
    Ok(Json(state.chat.room(me, &room_id).await?))
}

pub async fn leave(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    // The same path as a WebSocket `leave`.
    let room_id = room_id(&room)?;
    state
        .relay
        .call_action(me, ClientAction::Leave { room_id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn members(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room): Path<String>,
    QueryParams(query): QueryParams<MembersQuery>,
) -> Result<Json<MembersResponse>, ApiError> {
    let page = state
        .chat
        .members(me, &room_id(&room)?, query.limit, query.cursor.as_deref())
        .await?;
    Ok(Json(MembersResponse {
        members: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// The room directory (v1.1): public group rooms by name prefix.
pub async fn public(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
    QueryParams(query): QueryParams<PublicRoomsQuery>,
) -> Result<Json<PublicRoomsResponse>, ApiError> {
    let page = state
        .chat
        .public_rooms(&query.prefix, query.limit, query.cursor.as_deref())
        .await?;
    Ok(Json(PublicRoomsResponse {
        rooms: page.items,
        next_cursor: page.next_cursor,
    }))
}

pub async fn add_member(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room): Path<String>,
    JsonBody(request): JsonBody<AddMemberRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .chat
        .add_member(me, &room_id(&room)?, request.user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kick(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.chat.kick(me, &room_id(&room)?, id(&user)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn open_dm(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    JsonBody(request): JsonBody<OpenDmRequest>,
) -> Result<Json<Room>, ApiError> {
    let (room, _created) = state.chat.open_dm(me, request.user_id).await?;
    Ok(Json(room))
}
