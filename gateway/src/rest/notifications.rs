//! `GET /notifications` and `POST /notifications/read` (v1.1): the caller's
//! stored mentions. Both concern the caller alone (no room), so they call
//! the chat logic directly, like the other reads.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::rest::{NotificationsQuery, NotificationsResponse, ReadNotificationsRequest};

use crate::auth::AuthUser;
use crate::extract::{JsonBody, QueryParams};
use crate::{ApiError, AppState};

pub async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    QueryParams(query): QueryParams<NotificationsQuery>,
) -> Result<Json<NotificationsResponse>, ApiError> {
    let page = state
        .chat
        .notifications(me, query.before, query.limit)
        .await?;
    Ok(Json(NotificationsResponse {
        notifications: page.notifications,
        has_more: page.has_more,
    }))
}

pub async fn read(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    JsonBody(request): JsonBody<ReadNotificationsRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .chat
        .mark_notifications_read(me, request.up_to)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
