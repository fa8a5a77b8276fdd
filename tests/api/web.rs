//! The web app at `/`: served from the binary with its content types,
//! validators and security headers; unknown files are 404; and the page's
//! own origin may open the WebSocket with no configuration.

use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderMap, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};

use crate::harness::Server;
use crate::ws::upgrade_refusal;

async fn get(server: &Server, path: &str) -> reqwest::Response {
    reqwest::get(format!("{}{path}", server.base))
        .await
        .expect("request")
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> &str {
    headers
        .get(&name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .expect("a text header")
}

/// The headers every page and file of the app carries.
fn assert_security_headers(headers: &HeaderMap, host: &str) {
    let policy = header(headers, CONTENT_SECURITY_POLICY);
    let directives: Vec<&str> = policy.split(';').map(str::trim).collect();
    for expected in [
        "default-src 'self'".to_owned(),
        "script-src 'self'".to_owned(),
        "style-src 'self'".to_owned(),
        "img-src 'self' blob: data:".to_owned(),
        format!("connect-src 'self' ws://{host} wss://{host}"),
        "object-src 'none'".to_owned(),
        "base-uri 'none'".to_owned(),
        "frame-ancestors 'none'".to_owned(),
    ] {
        assert!(
            directives.contains(&expected.as_str()),
            "{expected} in {policy}"
        );
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
    assert_eq!(header(headers, X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header(headers, REFERRER_POLICY), "no-referrer");
    assert_eq!(header(headers, X_FRAME_OPTIONS), "DENY");
}

#[tokio::test]
async fn the_app_is_served_at_the_root_with_its_security_headers() {
    let server = Server::start();
    let host = server.base.trim_start_matches("http://").to_owned();

    let page = get(&server, "/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        header(page.headers(), CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_security_headers(page.headers(), &host);
    assert_eq!(header(page.headers(), CACHE_CONTROL), "no-cache");
    let etag = header(page.headers(), ETAG).to_owned();
    let html = page.text().await.expect("body");
    assert!(
        html.contains(r#"<script type="module" src="/app/main.js"></script>"#),
        "{html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "nothing inline"
    );

    // Unchanged: 304 with no body.
    let again = reqwest::Client::new()
        .get(format!("{}/", server.base))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(again.headers(), ETAG), etag);
    assert!(again.bytes().await.expect("body").is_empty());

    // The app's files and the client library's, one copy of each.
    for (path, content_type) in [
        ("/app/main.js", "text/javascript; charset=utf-8"),
        ("/app/style.css", "text/css; charset=utf-8"),
        ("/app/lib/index.js", "text/javascript; charset=utf-8"),
    ] {
        let file = get(&server, path).await;
        assert_eq!(file.status(), StatusCode::OK, "{path}");
        assert_eq!(header(file.headers(), CONTENT_TYPE), content_type, "{path}");
        assert_security_headers(file.headers(), &host);
        assert!(!file.bytes().await.expect("body").is_empty(), "{path}");
    }
    let library = get(&server, "/app/lib/index.js")
        .await
        .text()
        .await
        .unwrap();
    let on_disk = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js/src/index.js"),
    )
    .expect("the library's source");
    assert_eq!(library, on_disk, "served as written, no build step");
}

#[tokio::test]
async fn unknown_files_are_404_with_the_same_headers() {
    let server = Server::start();
    let host = server.base.trim_start_matches("http://").to_owned();
    // (path, whether the app's handler answers it)
    for (path, the_apps) in [
        ("/app/missing.js", true),
        // Declarations are for editors, not browsers.
        ("/app/lib/index.d.ts", true),
        ("/app/", false),
        ("/app/../Cargo.toml", false),
        ("/index.html", false),
    ] {
        let answer = get(&server, path).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
        if the_apps {
            assert_security_headers(answer.headers(), &host);
        }
        let body: serde_json::Value = answer.json().await.expect("a JSON error");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn the_pages_own_origin_may_open_the_websocket_by_default() {
    let server = Server::start();
    let (alice, _) = server.user("alice").await;
    for (origin, expected) in [
        (server.base.clone(), None),
        ("http://evil.example".to_owned(), Some(403)),
    ] {
        let status = upgrade_refusal(&server, alice.token(), &origin).await;
        assert_eq!(status, expected, "{origin}");
    }
}
