#!/usr/bin/env bash
# CI stage for the JavaScript client library (clients/js, docs/client.md):
# installs its dev dependencies with `npm ci` (cache outside the clone),
# type-checks the hand-written declarations against a typed usage file
# (tsc --noEmit), then runs its tests with Node's test runner against the
# real chatd built by `cargo test` (debug). Idempotent; run from anywhere.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-ci-target}"
export CHATD_BIN="${CHATD_BIN:-$CARGO_TARGET_DIR/debug/chatd}"
npm_cache="${CHAT_CI_NPM_CACHE:-/var/cache/chat-ci/npm}"

header() { printf '\n==> %s\n' "$*"; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    header "installing nodejs and npm"
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if [ ! -x "$CHATD_BIN" ]; then
    header "building chatd (not found at $CHATD_BIN)"
    cargo build --bin chatd
fi

cd "$root/clients/js"
mkdir -p "$npm_cache"

header "npm ci (clients/js)"
npm ci --cache "$npm_cache" --prefer-offline --no-audit --no-fund

header "tsc --noEmit (clients/js/src/index.d.ts against test/types-usage.ts)"
npx --no-install tsc --noEmit -p test/tsconfig.json

header "node --test (clients/js/test, against $CHATD_BIN)"
# A test that hangs fails after 2 minutes instead of holding CI (Node >= 20.11 has the flag).
timeout_flag=
if node --help | grep -q -- --test-timeout; then timeout_flag=--test-timeout=120000; fi
node --test --test-concurrency=1 $timeout_flag test/*.test.js
