//! The admin calls: `POST /admin/notice`, `POST`/`DELETE
//! /admin/users/{id}/ban`, `GET /admin/audit`. Who is an admin is the chat
//! logic's rule (`chat_router::admin`); everyone else gets 403.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::accounts::{AuditQuery, AuditResponse, BanRequest, NoticeRequest};

use crate::auth::AuthUser;
use crate::client_addr::ClientAddr;
use crate::extract::{JsonBody, OptionalJsonBody, PathParams, QueryParams, id};
use crate::{ApiError, AppState};

pub async fn notice(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(client): ClientAddr,
    JsonBody(request): JsonBody<NoticeRequest>,
) -> Result<StatusCode, ApiError> {
    state.chat.notice(me, request, &client).await?;
    Ok(StatusCode::ACCEPTED)
}

/// The body (`{reason?}`) is optional.
pub async fn ban(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(client): ClientAddr,
    PathParams(user_id): PathParams<String>,
    OptionalJsonBody(request): OptionalJsonBody<BanRequest>,
) -> Result<StatusCode, ApiError> {
    state.chat.ban(me, id(&user_id)?, request, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unban(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ClientAddr(client): ClientAddr,
    PathParams(user_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    state.chat.unban(me, id(&user_id)?, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn audit(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<AuditResponse>, ApiError> {
    let (events, has_more) = state.chat.audit_log(me, query).await?;
    Ok(Json(AuditResponse { events, has_more }))
}
