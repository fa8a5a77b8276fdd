#!/usr/bin/env bash
# CI stage for the JavaScript client library (clients/js, docs/client.md):
# installs its dev dependencies with `npm ci` (cache outside the clone),
# type-checks the hand-written declarations against a typed usage file
# (tsc --noEmit), then runs its tests with Node's test runner against the
# real chatd built by `cargo test` (debug). Idempotent; run from anywhere.
set -euo pipefail

cd "$(dirname "$0")/.."
source .ci/lib.sh
need_node
need_chatd
$sudo mkdir -p "$NPM_CACHE"
$sudo chown "$(id -u)" "$NPM_CACHE"

cd clients/js

header "npm ci (clients/js)"
npm ci --cache "$NPM_CACHE" --prefer-offline --no-audit --no-fund

header "tsc --noEmit (clients/js/src/index.d.ts against test/types-usage.ts)"
npx --no-install tsc --noEmit -p test/tsconfig.json

header "node --test (clients/js/test, against $CHATD_BIN)"
# A test that hangs fails after 2 minutes instead of holding CI (Node >= 20.11 has the flag).
timeout_flag=
if node --help | grep -q -- --test-timeout; then timeout_flag=--test-timeout=120000; fi
node --test --test-concurrency=1 $timeout_flag test/*.test.js
