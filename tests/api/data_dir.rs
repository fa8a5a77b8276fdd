//! One `chatd serve` per data directory, and a start that fails fast: the
//! lock and the listen address are checked before the store is opened.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{JWT_SECRET, Server};

/// Runs `chatd serve` on `data_dir` and `listen`, expecting it to give up
/// by itself; answers its exit status and stderr. A process still running
/// after a minute is killed and fails the test.
fn serve_expecting_exit(data_dir: &Path, listen: &str) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .arg("serve")
        .env_clear()
        .env("CHAT_LISTEN", listen)
        .env("CHAT_DATA_DIR", data_dir)
        .env("CHAT_JWT_SECRET", JWT_SECRET)
        .env("CHAT_LOG_FORMAT", "pretty")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chatd");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second chatd kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status, stderr)
}

#[tokio::test]
async fn a_second_server_on_a_data_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start_in(dir.path(), &[]);

    let (status, stderr) = serve_expecting_exit(dir.path(), "127.0.0.1:0");
    assert!(!status.success(), "{status}: {stderr}");
    let named = format!("data directory {} is in use", dir.path().display());
    assert!(stderr.contains(&named), "{stderr}");

    let (status, _) = first.client().get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "the first server keeps serving");
    assert!(first.stop().success());
    let again = Server::start_in(dir.path(), &[]);
    let (status, _) = again.client().get("/healthz").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the directory is free once it stopped"
    );
}

#[tokio::test]
async fn a_listen_address_in_use_is_refused_before_the_store_is_opened() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();

    let (status, stderr) = serve_expecting_exit(dir.path(), &address);
    assert!(!status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("chat.db").exists(),
        "no database was created for a server that could not listen"
    );
}
