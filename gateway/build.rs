//! Two things decided at build time:
//!
//! - **The build's commit**, for `chat_build_info`: the output of
//!   `git rev-parse --short=12 HEAD` when the sources are a git checkout and
//!   git is installed, else `unknown` (a source tarball builds too).
//! - **The web app, embedded in the binary**, so that `chatd serve` serves
//!   it with nothing but the binary (no Node, no files beside it at run
//!   time). Walks `clients/web/app/` (served under `/app/`) and
//!   `clients/js/src/` (the client library, served under `/app/lib/`, so the
//!   app and the library's users share one copy of the code) and writes
//!   `$OUT_DIR/web_assets.rs`: one `Asset` per file, its bytes taken with
//!   `include_bytes!`, its content type from its extension and its ETag from
//!   a hash of its bytes, all decided here once rather than at every
//!   request. Files of other kinds (TypeScript declarations, notes) are not
//!   served. There is no build step for the app itself: these files are
//!   what the browser runs.
//!
//! Why a build script rather than a crate such as rust-embed: the table is
//! a few dozen lines of std, rust-embed reads files from disk in debug
//! builds (so the tests would not exercise what ships) unless told
//! otherwise, and it would bring a proc macro, walkdir and a hash crate into
//! the tree.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (URL prefix under `/app/`, directory relative to the workspace root).
const SOURCES: &[(&str, &str)] = &[("", "clients/web/app"), ("lib/", "clients/js/src")];

fn main() {
    stamp_commit();
    embed_web_assets();
}

/// Writes `$OUT_DIR/web_assets.rs`, the table `gateway/src/web.rs` serves.
fn embed_web_assets() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest
        .parent()
        .expect("the gateway is a workspace member");
    println!("cargo::rerun-if-changed=build.rs");
    let mut table = String::from("&[\n");
    for (prefix, dir) in SOURCES {
        // Cargo scans a directory named here recursively for changes. The
        // path is relative to this package, not absolute, so that a target
        // directory shared by two checkouts (cargo gives their units the
        // same hashes) watches the checkout being built.
        println!("cargo::rerun-if-changed=../{dir}");
        let dir = root.join(dir);
        let mut files = Vec::new();
        walk(&dir, &mut files);
        if files.is_empty() {
            panic!("no web assets found in {}", dir.display());
        }
        files.sort();
        for file in files {
            let Some(content_type) = content_type(&file) else {
                continue;
            };
            let bytes = std::fs::read(&file).expect("read a web asset");
            let mut hasher = DefaultHasher::new();
            hasher.write(&bytes);
            let relative = file
                .strip_prefix(&dir)
                .expect("walked from dir")
                .to_str()
                .expect("asset paths are UTF-8")
                .replace('\\', "/");
            writeln!(
                table,
                "    Asset {{ path: {path:?}, content_type: {content_type:?}, \
                 etag: \"\\\"{hash:016x}-{len:x}\\\"\", bytes: include_bytes!({file:?}) }},",
                path = format!("{prefix}{relative}"),
                hash = hasher.finish(),
                len = bytes.len(),
                file = file.display().to_string(),
            )
            .expect("write to a String");
        }
    }
    table.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("web_assets.rs"), table).expect("write web_assets.rs");
}

/// Every regular file under `dir`, hidden files and directories skipped.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.expect("read a directory entry");
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.is_file() {
            files.push(path);
        }
    }
}

/// The content type a file is served with; `None`: not served.
fn content_type(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".d.ts") {
        return None;
    }
    Some(match path.extension()?.to_str()? {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        _ => return None,
    })
}

/// Sets `CHAT_BUILD_COMMIT`.
fn stamp_commit() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|commit| commit.trim().to_string())
        .filter(|commit| !commit.is_empty() && commit.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CHAT_BUILD_COMMIT={commit}");
    // A new commit moves HEAD (or the branch it names); rebuild then.
    if let Ok(output) = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        && output.status.success()
        && let Ok(dir) = String::from_utf8(output.stdout)
    {
        let dir = std::path::PathBuf::from(dir.trim());
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        println!("cargo:rerun-if-changed={}", dir.join("refs").display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
