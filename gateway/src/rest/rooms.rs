//! Rooms, members, the room directory and DMs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::frames::ClientAction;
use chat_protocol::internal::MemberAction;
use chat_protocol::rest::{
    AddMemberRequest, CreateRoomRequest, MembersQuery, MembersResponse, OpenDmRequest,
    PublicRoomsQuery, PublicRoomsResponse, RoomsQuery, RoomsResponse,
};
use chat_protocol::{Room, RoomId};

use crate::auth::AuthUser;
use crate::extract::{JsonBody, PathParams, QueryParams, id, room_id};
use crate::{ApiError, AppState};

pub async fn create(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    JsonBody(request): JsonBody<CreateRoomRequest>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    // Through the new room's router, which creates it and announces it to
    // its members; then the room is read for the answer.
    let id = state.chat.new_room_id()?;
    state
        .relay
        .call_member(
            me,
            MemberAction::CreateRoom {
                room_id: id,
                request,
            },
        )
        .await?;
    let room = state.chat.room(me, &RoomId::Group(id)).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// The caller's rooms: every one, or a page with `limit` (and `cursor`).
pub async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    QueryParams(query): QueryParams<RoomsQuery>,
) -> Result<Json<RoomsResponse>, ApiError> {
    let page = state
        .chat
        .rooms_page(me, query.limit, query.cursor.as_deref())
        .await?;
    Ok(Json(RoomsResponse {
        rooms: page.rooms,
        next_cursor: page.next_cursor,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathParams(room): PathParams<String>,
) -> Result<Json<Room>, ApiError> {
    Ok(Json(state.chat.room(me, &room_id(&room)?).await?))
}

pub async fn join(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathParams(room): PathParams<String>,
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
    PathParams(room): PathParams<String>,
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
    PathParams(room): PathParams<String>,
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
    PathParams(room): PathParams<String>,
    JsonBody(request): JsonBody<AddMemberRequest>,
) -> Result<StatusCode, ApiError> {
    // Through the room's router, like join and leave.
    let action = MemberAction::Add {
        room_id: room_id(&room)?,
        user_id: request.user_id,
    };
    state.relay.call_member(me, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kick(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    PathParams((room, user)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let action = MemberAction::Kick {
        room_id: room_id(&room)?,
        user_id: id(&user)?,
    };
    state.relay.call_member(me, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn open_dm(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    JsonBody(request): JsonBody<OpenDmRequest>,
) -> Result<Json<Room>, ApiError> {
    // The DM room's router opens it (and announces it when new); then the
    // room is read for the answer, as after a join.
    let other = request.user_id;
    state
        .relay
        .call_member(me, MemberAction::OpenDm { user_id: other })
        .await?;
    let room_id = RoomId::dm(me, other)
        .map_err(|_| ApiError::Internal("a DM with oneself was accepted".into()))?;
    Ok(Json(state.chat.room(me, &room_id).await?))
}
