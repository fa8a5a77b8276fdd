//! REST bodies: whatever a client sends, the body extractor the handlers use
//! ([`JsonBody`]) answers a valid body or a 400 with the protocol's error
//! body; never a 500, never a panic. Its message speaks of JSON and fields,
//! not of the Rust types behind them. The optional bodies of logout and ban
//! go through the same decoding ([`json_body`]).

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chat_gateway::ApiError;
use chat_gateway::extract::{JsonBody, json_body};
use chat_protocol::accounts::{BanRequest, LogoutRequest, NoticeRequest};
use chat_protocol::rest::{CreateRoomRequest, PostMessageRequest, ReadRequest, RegisterRequest};
use chat_protocol::{ErrorBody, ErrorCode};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Enough cases to reach the deeper fields, few enough to keep the suite fast.
fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// The fields of the request types below, plus a stranger.
const FIELDS: &[&str] = &[
    "name",
    "visibility",
    "member_ids",
    "max_members",
    "content",
    "client_id",
    "reply_to",
    "attachment_ids",
    "message_id",
    "username",
    "password",
    "display_name",
    "room_id",
    "all",
    "reason",
    "unknown",
];

/// Runs `body` through the extractor for `T`; an error must be a 400 with
/// the protocol's `bad_request` body and a message free of Rust type names.
fn check<T: DeserializeOwned>(body: Vec<u8>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    let request = Request::builder()
        .method("POST")
        .uri("/")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a request from literals builds");
    let Err(error) = runtime.block_on(JsonBody::<T>::from_request(request, &())) else {
        return Ok(());
    };
    assert_bad_request::<T>(&runtime, error)
}

/// Decodes `body` as the optional bodies of logout and ban are decoded.
fn check_optional<T: DeserializeOwned>(body: &[u8]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    match json_body::<T>(body) {
        Ok(_) => Ok(()),
        Err(error) => assert_bad_request::<T>(&runtime, error),
    }
}

/// `error` answers a 400 with the protocol's `bad_request` body and a
/// message free of Rust type names.
fn assert_bad_request<T>(
    runtime: &tokio::runtime::Runtime,
    error: ApiError,
) -> Result<(), TestCaseError> {
    let response = error.into_response();
    prop_assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let bytes = runtime
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .map_err(|e| TestCaseError::fail(format!("reading the error body: {e}")))?;
    let body: ErrorBody = serde_json::from_slice(&bytes).map_err(|e| {
        TestCaseError::fail(format!(
            "not the protocol's error body: {e}: {}",
            String::from_utf8_lossy(&bytes)
        ))
    })?;
    prop_assert_eq!(body.error.code, ErrorCode::BadRequest);
    let message = &body.error.message;
    let type_name = std::any::type_name::<T>().rsplit("::").next().unwrap_or("");
    prop_assert!(
        !message.contains("struct ") && !message.contains("::") && !message.contains(type_name),
        "message names a Rust type: {message}"
    );
    Ok(())
}

/// Runs `body` through the extractor of every request type checked here.
fn check_all(body: &[u8]) -> Result<(), TestCaseError> {
    check::<CreateRoomRequest>(body.to_vec())?;
    check::<PostMessageRequest>(body.to_vec())?;
    check::<ReadRequest>(body.to_vec())?;
    check::<RegisterRequest>(body.to_vec())?;
    check::<NoticeRequest>(body.to_vec())?;
    check_optional::<LogoutRequest>(body)?;
    check_optional::<BanRequest>(body)
}

/// Strings a client may send; never with a colon, since serde's messages
/// quote unknown field names and values, and a client's own `::` must not be
/// taken for a Rust path.
const TEXT: &str = "[^:\\p{C}]{0,16}";

/// A JSON scalar of any kind, with strings that are almost ids.
fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<u64>().prop_map(|n| Value::String(n.to_string())),
        prop::sample::select(&["public", "private", "dm:1:2", "-1", ""][..]).prop_map(Value::from),
        TEXT.prop_map(Value::String),
    ]
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    json_scalar().prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((TEXT, inner), 0..3)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A JSON document shaped like a request body, or one of the wrong shape
/// at the top (a scalar or an array).
fn plausible_body() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        4 => prop::sample::select(FIELDS).prop_map(str::to_owned),
        1 => TEXT,
    ];
    prop_oneof![
        4 => prop::collection::vec((field, json_value()), 0..6)
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        1 => json_value(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_are_a_bad_request(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_all(&bytes)?;
    }

    #[test]
    fn plausible_bodies_are_valid_or_a_bad_request(body in plausible_body()) {
        check_all(&serde_json::to_vec(&body).expect("a JSON value serializes"))?;
    }

    #[test]
    fn truncated_bodies_are_a_bad_request(body in plausible_body(), cut in any::<prop::sample::Index>()) {
        let bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
        check_all(&bytes[..cut.index(bytes.len() + 1)])?;
    }
}
