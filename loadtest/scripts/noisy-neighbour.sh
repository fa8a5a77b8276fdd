#!/usr/bin/env bash
# The "noisy neighbour" scenario (issue 10): 100 normal users in 10 rooms
# sending 1 message/s each, measured twice against a fresh `chatd serve`
# with its default per-user limits: once alone, once while one abusive
# user floods `send` at ABUSE_RATE a second (default 2,000) from a second
# chat-loadtest. Only the login limit per address is raised (every user of
# a run registers from 127.0.0.1). Writes bench-out/noisy-{quiet,loud}.*;
# the normal users' figures are in noisy-*.txt, the abuser's (refused
# sends, rate_limited errors) in noisy-loud.abuser.txt.
#
#   loadtest/scripts/noisy-neighbour.sh [ABUSE_RATE]
set -euo pipefail

abuse_rate=${1:-2000}
chatd=${CHATD:-target/release/chatd}
loadtest=${LOADTEST:-target/release/chat-loadtest}
out=${OUT:-bench-out}
listen=127.0.0.1:18080
mkdir -p "$out"

run() { # NAME ABUSE(0|1)
    local name=$1 abuse=$2 data server abuser=
    data=$(mktemp -d)
    CHAT_LISTEN=$listen CHAT_DATA_DIR=$data CHAT_RATES__LOGIN_PER_ADDRESS_PER_MINUTE=1000000 \
        "$chatd" serve >"$out/$name.server.log" 2>&1 &
    server=$!
    for _ in $(seq 50); do curl -fsS "http://$listen/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
    if [ "$abuse" = 1 ]; then
        # Starts sending about as the normal users do (both register first).
        "$loadtest" --server "http://$listen" --users 1 --rooms 1 --rate "$abuse_rate" \
            --duration 25 --drain 5 --no-progress >"$out/$name.abuser.txt" 2>&1 &
        abuser=$!
    fi
    echo "loadavg before: $(cat /proc/loadavg)" | tee "$out/$name.txt"
    "$loadtest" --server "http://$listen" --server-pid "$server" --server-send-rate 10 \
        --users 100 --rooms 10 --rate 100 --duration 20 --no-progress \
        --json "$out/$name.json" | tee -a "$out/$name.txt"
    [ -z "$abuser" ] || wait "$abuser" || true
    kill "$server"
    wait "$server" || true
    rm -rf "$data"
}

run noisy-quiet 0
run noisy-loud 1
