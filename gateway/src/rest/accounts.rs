//! `POST /auth/register`, `/auth/login`, `/auth/logout`, and the caller's
//! own account: `PATCH /users/me`, `POST /users/me/password`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::User;
use chat_protocol::accounts::{ChangePasswordRequest, LogoutRequest, UpdateProfileRequest};
use chat_protocol::rest::{AuthResponse, LoginRequest, RegisterRequest};

use crate::auth::AuthSession;
use crate::client_addr::ClientAddr;
use crate::extract::{JsonBody, OptionalJsonBody};
use crate::{ApiError, AppState};

pub async fn register(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<AuthResponse>), ApiError> {
    let (user, session) = state.chat.sign_up(request, &client).await?;
    let token = state.tokens.issue(&session)?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((
        StatusCode::CREATED,
        Json(AuthResponse {
            token,
            user: user.to_user(),
        }),
    ))
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    let (user, session) = state.chat.sign_in(request, &client).await?;
    let token = state.tokens.issue(&session)?;
    Ok(Json(AuthResponse {
        token,
        user: user.to_user(),
    }))
}

/// The body is optional: no body ends this token's session.
pub async fn logout(
    State(state): State<AppState>,
    me: AuthSession,
    ClientAddr(client): ClientAddr,
    OptionalJsonBody(request): OptionalJsonBody<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .chat
        .logout(me.user, me.session, request.all, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn change_password(
    State(state): State<AppState>,
    me: AuthSession,
    ClientAddr(client): ClientAddr,
    JsonBody(request): JsonBody<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .chat
        .change_password(me.user, me.session, request, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn update_profile(
    State(state): State<AppState>,
    me: AuthSession,
    JsonBody(request): JsonBody<UpdateProfileRequest>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.chat.update_profile(me.user, request).await?))
}
