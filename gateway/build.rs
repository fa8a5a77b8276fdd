//! Stamps the build with its git commit for `chat_build_info`: the output
//! of `git rev-parse --short=12 HEAD` when the sources are a git checkout
//! and git is installed, else `unknown` (a source tarball builds too).

use std::process::Command;

fn main() {
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
