//! The web app (`clients/web/app/`) and the JavaScript client library it
//! runs on (`clients/js/src/`), embedded in the binary and served at `/`.
//!
//! `/` answers the app's `index.html`; `/app/{path}` its files and
//! `/app/lib/{path}` the library's. The table of files, their content types
//! and ETags is made by `build.rs` at compile time, so a fresh clone's
//! `cargo run -- serve` serves the app with no Node and no files beside the
//! binary. Unknown paths get the API's 404.
//!
//! Every answer here carries the security headers of the app: a strict
//! Content-Security-Policy (no inline script or style, nothing from other
//! origins except the page's own WebSocket), `nosniff`, no referrer and no
//! framing. Files are revalidated on every use (`no-cache` with an ETag,
//! answered 304 when unchanged): their URLs carry no version, and a new
//! binary must not leave a browser on an old app.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HOST, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::ApiError;

/// One embedded file.
struct Asset {
    /// Its path under `/app/`.
    path: &'static str,
    content_type: &'static str,
    /// A strong validator: a hash and the length of the bytes, quoted.
    etag: &'static str,
    bytes: &'static [u8],
}

/// Every embedded file, sorted by path within each source (see `build.rs`).
static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The page the app starts from.
const INDEX: &str = "index.html";

/// The routes of the app; stateless, so they merge into any router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/app/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve(INDEX, &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// The file at `path` (or 404), with the app's headers; 304 when the
/// browser's copy is current.
fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        return with_security_headers(ApiError::NotFound.into_response(), request);
    };
    let current = request
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == asset.etag || tag.trim() == "*")
        });
    let mut response = if current {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.bytes.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_security_headers(response, request)
}

/// Adds the Content-Security-Policy and the other security headers.
fn with_security_headers(mut response: Response, request: &HeaderMap) -> Response {
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(request)) {
        headers.insert(CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The policy: the page's own origin for everything, images also from
/// `blob:` (attachments are fetched with the token and shown as blobs) and
/// `data:`, and the page's own host over `ws:`/`wss:` for the WebSocket
/// (CSP 3 counts same-host WebSockets as `'self'`, older browsers do not).
/// The host comes from the request's `Host`, and only when it is a plain
/// host name or address with a port, so that it cannot add directives.
pub fn content_security_policy(request: &HeaderMap) -> String {
    let host = request
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| is_plain_host(host));
    let sockets = host.map_or_else(String::new, |host| format!(" ws://{host} wss://{host}"));
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' blob: data:; connect-src 'self'{sockets}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// A host name, IPv4 or bracketed IPv6 address, and an optional port.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_and_the_library_are_embedded() {
        let index = ASSETS.iter().find(|asset| asset.path == INDEX);
        assert!(index.is_some_and(|asset| asset.content_type.starts_with("text/html")));
        assert!(
            ASSETS.iter().any(|asset| asset.path.starts_with("lib/")),
            "the client library is served under /app/lib/"
        );
    }

    #[test]
    fn a_hostile_host_adds_no_directive() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("chat.example:8080"));
        assert!(content_security_policy(&headers).contains(" ws://chat.example:8080 "));
        headers.insert(HOST, HeaderValue::from_static("x; script-src *"));
        let policy = content_security_policy(&headers);
        assert!(!policy.contains('*'), "{policy}");
        assert!(policy.contains("connect-src 'self';"), "{policy}");
    }
}
