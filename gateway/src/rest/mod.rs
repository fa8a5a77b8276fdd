//! The REST API (PROTOCOL.md, base path `/api/v1`), one module per resource.

pub mod accounts;
pub mod admin;
pub mod files;
pub mod messages;
pub mod notifications;
pub mod ops;
pub mod places;
pub mod rooms;
pub mod throttle;
pub mod upload_pace;
pub mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use crate::AppState;

/// The calls no action budget refuses: a user can always end their own
/// session (and a token can end it only once, so this cannot flood).
pub fn routes_beyond_budget() -> Router<AppState> {
    Router::new().route("/auth/logout", post(accounts::logout))
}

/// Every other `/api/v1` route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(accounts::register))
        .route("/auth/login", post(accounts::login))
        .route("/users/me", get(users::me).patch(accounts::update_profile))
        .route("/users/me/password", post(accounts::change_password))
        .route("/users", get(users::search))
        .route("/users/{user_id}", get(users::by_id))
        .route("/rooms", post(rooms::create).get(rooms::list))
        // Before `/rooms/{room_id}`: the literal segment wins in axum.
        .route("/rooms/public", get(rooms::public))
        .route("/rooms/{room_id}", get(rooms::get))
        .route("/rooms/{room_id}/join", post(rooms::join))
        .route("/rooms/{room_id}/leave", post(rooms::leave))
        .route(
            "/rooms/{room_id}/members",
            get(rooms::members).post(rooms::add_member),
        )
        .route("/rooms/{room_id}/members/{user_id}", delete(rooms::kick))
        .route(
            "/rooms/{room_id}/messages",
            get(messages::history).post(messages::post),
        )
        .route("/rooms/{room_id}/read", post(messages::read))
        .route("/dms", post(rooms::open_dm))
        .route("/notifications", get(notifications::list))
        .route("/notifications/read", post(notifications::read))
        // The upload handler enforces the file size limit itself, while
        // streaming; the general body limit would cut every file short.
        .route(
            "/files",
            post(files::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/files/{file_id}", get(files::download))
        .route("/files/{file_id}/thumbnail", get(files::thumbnail))
        .route("/admin/notice", post(admin::notice))
        .route(
            "/admin/users/{user_id}/ban",
            post(admin::ban).delete(admin::unban),
        )
        .route("/admin/audit", get(admin::audit))
}
