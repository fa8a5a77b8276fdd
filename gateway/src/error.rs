//! The gateway's one error type, mapped once to HTTP answers with the
//! protocol's error body.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chat_protocol::{ErrorBody, ErrorCode};

/// What a 503 `unavailable` tells the client to wait before retrying
/// (`Retry-After`, and `retry_after_ms` in the body).
pub const UNAVAILABLE_RETRY_AFTER_MS: u64 = 2_000;

/// Why a request failed at the edge or in the chat logic.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A rule of the chat logic refused the request.
    #[error(transparent)]
    Chat(#[from] chat_router::Error),
    /// No valid token came with an authenticated call.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request could not be decoded.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the size limit.
    #[error("request body is too large")]
    TooLarge,
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// An action was refused or failed further along (router, persistence).
    #[error("{message}")]
    Refused {
        code: ErrorCode,
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// The bus or the routers did not answer in time.
    #[error("{0}")]
    Unavailable(String),
    /// A failure of the edge itself (e.g. token signing).
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The protocol code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Chat(error) => error.code(),
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::TooLarge => ErrorCode::TooLarge,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::Refused { code, .. } => *code,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "request failed"),
            ApiError::Chat(error) => {
                if let Some(detail) = error.internal_detail() {
                    tracing::error!(%detail, code = code.as_str(), "request failed");
                }
            }
            _ => {}
        }
        let mut body = ErrorBody::new(code, self.to_string());
        body.error.retry_after_ms = match self {
            ApiError::Chat(error) => error.retry_after_ms(),
            ApiError::Refused { retry_after_ms, .. } => retry_after_ms,
            _ => None,
        };
        // An outage is answered as one: the client is told when to retry.
        if code == ErrorCode::Unavailable && body.error.retry_after_ms.is_none() {
            body.error.retry_after_ms = Some(UNAVAILABLE_RETRY_AFTER_MS);
        }
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = body
            .error
            .retry_after_ms
            .map(|ms| HeaderValue::from(ms.div_ceil(1000).max(1)));
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, seconds);
        }
        response
    }
}
