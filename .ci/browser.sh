#!/usr/bin/env bash
# CI stage "browser": the web app (clients/web/app, served by chatd at /)
# in headless Chromium, against a real `chatd serve` that each test file
# starts on a free port with a temporary data directory: two users chatting,
# reload, the server killed and restarted, markup shown as text, a room
# list read in pages, the bell's count across a reconnect, and screenshots
# at desktop and phone width (clients/web/test/).
#
# Uses the debug chatd that `cargo test` built (or $CHATD_BIN; built here if
# missing), Debian's chromium (apt-installed if missing) driven by npm's
# playwright-core (no browser download), the npm cache in
# $CHAT_CI_CACHE/npm. Screenshots go to
# ${CHAT_CI_ARTIFACTS:-/var/cache/chat-ci/artifacts}/screenshots/.
# The app has no build step: there is no build output to check.
set -euo pipefail

cd "$(dirname "$0")/.."
source .ci/lib.sh
export CHAT_CI_ARTIFACTS="${CHAT_CI_ARTIFACTS:-$CHAT_CI_CACHE/artifacts}"
command -v chromium >/dev/null 2>&1 || need chromium
need_node
need_chatd
$sudo mkdir -p "$NPM_CACHE" "$CHAT_CI_ARTIFACTS"
$sudo chown "$(id -u)" "$NPM_CACHE" "$CHAT_CI_ARTIFACTS"

header "npm ci (clients/web)"
(cd clients/web && npm ci --cache "$NPM_CACHE" --prefer-offline --no-audit --no-fund)

header "browser tests (clients/web/test), chatd: $CHATD_BIN"
rm -rf "$CHAT_CI_ARTIFACTS/failures" # only this run's failures, if any
(cd clients/web && CHROMIUM_BIN="$(command -v chromium)" node --test --test-concurrency=1 test/*.test.js)
echo "screenshots: $CHAT_CI_ARTIFACTS/screenshots/ (a failed test's, with its server log: $CHAT_CI_ARTIFACTS/failures/)"
