//! `POST /auth/register` and `POST /auth/login`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::rest::{AuthResponse, LoginRequest, RegisterRequest};

use crate::extract::JsonBody;
use crate::{ApiError, AppState};

pub async fn register(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<AuthResponse>), ApiError> {
    let user = state.chat.register(request).await?;
    let token = state.tokens.issue(user.id)?;
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
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    let user = state.chat.login(request).await?;
    let token = state.tokens.issue(user.id)?;
    Ok(Json(AuthResponse {
        token,
        user: user.to_user(),
    }))
}
