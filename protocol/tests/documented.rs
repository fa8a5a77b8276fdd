//! docs/protocol.md held against the wire types. Clients are written from
//! that page, so a frame the server speaks but the page does not list, a
//! row for a frame that does not exist, or an error code or status that
//! differs from the code fails here.

use std::collections::BTreeSet;

use chat_protocol::ErrorCode;
use chat_protocol::frames::{ClientAction, ServerFrame};
use serde::de::DeserializeOwned;

const DOC: &str = include_str!("../../docs/protocol.md");

/// The names serde accepts for `T`, read from its refusal of one it does
/// not: "unknown variant `x`, expected one of `a`, `b`, …".
fn accepted<T: DeserializeOwned + std::fmt::Debug>(refused: &str) -> BTreeSet<String> {
    let error = serde_json::from_str::<T>(refused)
        .expect_err("an unknown name is refused")
        .to_string();
    let (_, expected) = error
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("serde lists what it expects: {error}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The text of the page between two lines that start with these words.
fn between(start: &str, end: &str) -> &'static str {
    let from = DOC
        .find(start)
        .unwrap_or_else(|| panic!("docs/protocol.md has {start:?}"));
    let rest = &DOC[from..];
    let to = rest
        .find(end)
        .unwrap_or_else(|| panic!("docs/protocol.md has {end:?} after {start:?}"));
    &rest[..to]
}

/// The frame types a table names in its first column (`` `join` / `leave` ``).
fn table_types(table: &str) -> BTreeSet<String> {
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|line| line.split(" |").next())
        .flat_map(|cell| cell.split(" / "))
        .map(|name| name.trim_matches('`').to_string())
        .collect()
}

#[test]
fn the_client_frames_table_lists_every_client_frame() {
    let spoken = accepted::<ClientAction>(r#"{"type":"no_such_frame"}"#);
    assert!(
        spoken.contains("send") && spoken.contains("ping"),
        "{spoken:?}"
    );
    let documented = table_types(between("Client → server:", "Server → client:"));
    assert_eq!(documented, spoken, "docs/protocol.md's client frames");
}

#[test]
fn every_server_frame_is_documented() {
    let spoken = accepted::<ServerFrame>(r#"{"type":"no_such_frame"}"#);
    assert!(
        spoken.contains("ready") && spoken.contains("pong"),
        "{spoken:?}"
    );
    let table = table_types(between("Server → client:", "\n## "));
    let unknown: Vec<&String> = table.difference(&spoken).collect();
    assert!(unknown.is_empty(), "rows for no server frame: {unknown:?}");
    // The rest are described in the text: `ready` with its whole shape,
    // v1.1's `notification` in the additions' table.
    let undocumented: Vec<&String> = spoken
        .difference(&table)
        .filter(|name| {
            !DOC.contains(&format!("{{\"type\":\"{name}\""))
                && !DOC.contains(&format!("server frame `{name}`"))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "server frames docs/protocol.md does not list: {undocumented:?}"
    );
}

#[test]
fn the_error_codes_and_their_statuses_are_the_codes() {
    // "a `code` from a closed set: `bad_request`, …. REST: HTTP status
    // (400, 401, …) respectively"
    let conventions = between("**Errors**", "\n\n");
    let (names, statuses) = conventions
        .split_once("REST: HTTP status")
        .expect("the codes, then their statuses");
    let names: Vec<&str> = names.split('`').skip(1).step_by(2).skip(1).collect();
    let statuses: Vec<u16> = statuses
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .expect("the statuses in parentheses")
        .0
        .split(',')
        .map(|status| {
            let status = status.split_whitespace().next().unwrap_or_default();
            status.parse().expect("a status")
        })
        .collect();
    assert_eq!(names.len(), statuses.len(), "a status for each code");

    let codes = accepted::<ErrorCode>(r#""no_such_code""#);
    assert_eq!(
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<BTreeSet<_>>(),
        codes,
        "docs/protocol.md's closed set of codes"
    );
    for (name, status) in names.iter().zip(&statuses) {
        let code: ErrorCode =
            serde_json::from_value(serde_json::Value::String(name.to_string())).expect("a code");
        assert_eq!(code.as_str(), *name);
        assert_eq!(code.http_status(), *status, "the status of `{name}`");
    }
}
