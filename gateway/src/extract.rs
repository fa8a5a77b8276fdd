//! Extractors that turn bad input into the protocol's error body.
//!
//! axum's own extractors answer with plain-text bodies; clients of this API
//! switch on `error.code`, so every rejection goes through [`ApiError`].
//! JSON bodies are accepted whatever their `Content-Type` says (curl's `-d`
//! sends a form type), but must parse as the documented object.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chat_protocol::{Id, RoomId};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::ApiError;

/// A JSON request body.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        json_body(&body_bytes(request, state).await?).map(JsonBody)
    }
}

/// A JSON request body that may be left out (empty or only white space):
/// then `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        json_body(&bytes).map(OptionalJsonBody)
    }
}

/// When a JSON body must have arrived whole (set per request by the app's
/// edge layers from `limits.body_timeout`).
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline(pub Instant);

/// The whole body, within the body limit (over it: 413 `too_large`) and
/// by the [`BodyDeadline`], if the request has one (past it: 400, and the
/// connection closes, its body unread).
async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    let deadline = request.extensions().get::<BodyDeadline>().copied();
    let read = Bytes::from_request(request, state);
    let read = match deadline {
        Some(BodyDeadline(deadline)) => tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| ApiError::bad_request("the body did not arrive in time"))?,
        None => read.await,
    };
    read.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::bad_request(format!("cannot read the body: {rejection}"))
        }
    })
}

/// Decodes a JSON request body, which is always an object.
///
/// When the top level is not an object, serde's message names the Rust type
/// it wanted ("expected struct CreateRoomRequest"), which means nothing to a
/// client; it is told the protocol's expectation instead. Errors inside the
/// object keep serde's message, which names the field.
pub fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid =
        |error: serde_json::Error| ApiError::bad_request(format!("invalid JSON body: {error}"));
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        // Either well-formed JSON of another shape, or a syntax error.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => ApiError::bad_request("invalid JSON body: expected a JSON object"),
                Err(error) => invalid(error),
            },
        );
    }
    serde_json::from_slice(bytes).map_err(invalid)
}

/// A query string.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|error| ApiError::bad_request(format!("invalid query: {error}")))
    }
}

/// The route's path parameters, percent-decoded. A segment that does not
/// decode to UTF-8 (`%FF`) is 400 `bad_request`, as a malformed id is.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(params)) => Ok(PathParams(params)),
            // A route whose pattern does not match its handler: ours.
            Err(rejection) if rejection.status().is_server_error() => {
                Err(ApiError::Internal(rejection.body_text()))
            }
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// Parses a room id from a path segment.
pub fn room_id(segment: &str) -> Result<RoomId, ApiError> {
    segment
        .parse()
        .map_err(|error| ApiError::bad_request(format!("invalid room id {segment:?}: {error}")))
}

/// Parses a user or message id from a path segment.
pub fn id(segment: &str) -> Result<Id, ApiError> {
    segment.parse().map_err(|_| {
        ApiError::bad_request(format!("invalid id {segment:?}: expected a decimal id"))
    })
}
