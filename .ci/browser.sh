#!/usr/bin/env bash
# CI stage "browser": the web app (clients/web/app, served by chatd at /)
# in headless Chromium, against a real `chatd serve` that each test file
# starts on a free port with a temporary data directory: two users chatting,
# reload, the server killed and restarted, markup shown as text, and
# screenshots at desktop and phone width (clients/web/test/).
#
# Uses the debug chatd that `cargo test` built (or $CHATD_BIN; built here if
# missing), Debian's chromium (apt-installed if missing) driven by npm's
# playwright-core (no browser download), the npm cache in
# $CHAT_CI_CACHE/npm. Screenshots go to
# ${CHAT_CI_ARTIFACTS:-/var/cache/chat-ci/artifacts}/screenshots/.
# The app has no build step: there is no build output to check.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-ci-target}"
CACHE=${CHAT_CI_CACHE:-/var/cache/chat-ci}
export CHAT_CI_ARTIFACTS="${CHAT_CI_ARTIFACTS:-$CACHE/artifacts}"
export CHATD_BIN="${CHATD_BIN:-$CARGO_TARGET_DIR/debug/chatd}"

header() { printf '\n==> %s\n' "$*"; }
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
apt_updated=
apt_install() {
    header "installing $*"
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v chromium >/dev/null 2>&1 || apt_install chromium
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    echo "node $node_major is too old: the browser tests need Node 18 or later" >&2
    exit 1
fi

if [ ! -x "$CHATD_BIN" ]; then
    header "building chatd (debug)"
    cargo build -p chatd
fi

$sudo mkdir -p "$CACHE/npm" "$CHAT_CI_ARTIFACTS"
$sudo chown "$(id -u)" "$CACHE/npm" "$CHAT_CI_ARTIFACTS"

header "npm ci (clients/web)"
(cd clients/web && npm ci --cache "$CACHE/npm" --prefer-offline --no-audit --no-fund)

header "browser tests (clients/web/test), chatd: $CHATD_BIN"
(cd clients/web && CHROMIUM_BIN="$(command -v chromium)" node --test --test-concurrency=1 test/*.test.js)
echo "screenshots: $CHAT_CI_ARTIFACTS/screenshots/"
