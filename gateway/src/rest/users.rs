//! `GET /users/me`, `GET /users?prefix=&limit=`, `GET /users/{id}`.

use axum::Json;
use axum::extract::State;
use chat_protocol::User;
use chat_protocol::rest::{UserSearchQuery, UsersResponse};

use crate::auth::AuthUser;
use crate::extract::{PathParams, QueryParams, id};
use crate::{ApiError, AppState};

pub async fn me(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<User>, ApiError> {
    match state.chat.user(me).await {
        // A valid token for a user the store does not know (e.g. the data
        // directory was reset) is as good as no token.
        Err(chat_router::Error::NotFound(_)) => Err(ApiError::Unauthorized("unknown user")),
        other => Ok(Json(other?)),
    }
}

pub async fn search(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
    QueryParams(query): QueryParams<UserSearchQuery>,
) -> Result<Json<UsersResponse>, ApiError> {
    let users = state.chat.search_users(&query.prefix, query.limit).await?;
    Ok(Json(UsersResponse { users }))
}

pub async fn by_id(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
    PathParams(user_id): PathParams<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.chat.user(id(&user_id)?).await?))
}
