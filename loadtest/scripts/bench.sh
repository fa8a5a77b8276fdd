#!/usr/bin/env bash
# One benchmark scenario against a fresh chatd: starts `chatd serve` on
# 127.0.0.1:18080 with an empty data directory and the per-user send limit
# raised, runs chat-loadtest with the arguments given, then stops the
# server and removes its data directory. Nothing is left running.
#
#   loadtest/scripts/bench.sh NAME [chat-loadtest args...]
#   loadtest/scripts/bench.sh s1-json --users 50 --rooms 5 --rate 200 --duration 30
#
# Writes bench-out/NAME.json (summary), NAME.txt (table) and NAME.server.log.
# Binaries: $CHATD (default target/release/chatd) and $LOADTEST (default
# target/release/chat-loadtest); build them first with
#   cargo build --release -p chatd -p chat-loadtest
set -euo pipefail

name=${1:?usage: bench.sh NAME [chat-loadtest args...]}
shift
chatd=${CHATD:-target/release/chatd}
loadtest=${LOADTEST:-target/release/chat-loadtest}
out=${OUT:-bench-out}
listen=127.0.0.1:18080
mkdir -p "$out"

# shellcheck source=serve.sh
source "$(dirname "$0")/serve.sh"
trap serve_stop EXIT
serve_start "$listen" "$out/$name.server.log" \
    CHAT_RATES__SEND_PER_SECOND=1000 CHAT_RATES__SEND_BURST=1000 CHAT_RATES__ACTIONS_PER_SECOND=1000 \
    CHAT_RATES__ACTION_BURST=1000 CHAT_RATES__LOGIN_PER_ADDRESS_PER_MINUTE=1000000

echo "loadavg before: $(cat /proc/loadavg)" | tee "$out/$name.txt"
"$loadtest" --server "http://$listen" --server-pid "$server" --server-send-rate 1000 \
    --json "$out/$name.json" --no-progress "$@" | tee -a "$out/$name.txt"
echo "loadavg after: $(cat /proc/loadavg)" | tee -a "$out/$name.txt"
kill -0 "$server" 2>/dev/null || echo "WARNING: chatd is no longer running" >&2
