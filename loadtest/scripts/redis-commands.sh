#!/usr/bin/env bash
# Redis work per message in cluster mode: starts a private redis-server and
# one `chatd router`, one `chatd persist` and one `chatd gateway` on it (one
# shared data directory), runs chat-loadtest against the gateway with the
# arguments given, and reports Redis's `INFO commandstats` over the run:
# commands by name (calls inside Lua scripts counted too, as Redis does) and
# per acked message. Everything it started is stopped and removed.
#
#   loadtest/scripts/redis-commands.sh NAME [chat-loadtest args...]
#   loadtest/scripts/redis-commands.sh c1 --users 100 --rooms 10 --rate 200 --duration 20
#
# Writes bench-out/NAME.{txt,json,commandstats} and the processes' logs.
# Binaries: $CHATD (default target/release/chatd) and $LOADTEST (default
# target/release/chat-loadtest). Ports: $BASE_PORT (default 18500) for
# Redis, +1 gateway, +2 router, +3 persist.
set -euo pipefail

name=${1:?usage: redis-commands.sh NAME [chat-loadtest args...]}
shift
chatd=${CHATD:-target/release/chatd}
loadtest=${LOADTEST:-target/release/chat-loadtest}
out=${OUT:-bench-out}
base=${BASE_PORT:-18500}
mkdir -p "$out"

data=$(mktemp -d)
pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$data"
}
trap stop EXIT

redis-server --port "$base" --save '' --appendonly no --dir "$data" \
    >"$out/$name.redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$base" ping >/dev/null 2>&1 && break; sleep 0.1; done

role() { # role port
    CHAT_LISTEN=127.0.0.1:$2 CHAT_DATA_DIR=$data CHAT_REDIS_URL=redis://127.0.0.1:$base \
    CHAT_RATES__SEND_PER_SECOND=1000 CHAT_RATES__SEND_BURST=1000 CHAT_RATES__ACTIONS_PER_SECOND=1000 CHAT_RATES__ACTION_BURST=1000 CHAT_RATES__LOGIN_PER_ADDRESS_PER_MINUTE=1000000 RUST_LOG=warn \
        "$chatd" "$1" >"$out/$name.$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "chatd $1 not ready; see $out/$name.$1.log" >&2
    exit 1
}
role router $((base + 2))
role persist $((base + 3))
role gateway $((base + 1))
gateway=${pids[-1]}

redis-cli -p "$base" config resetstat >/dev/null
"$loadtest" --server "http://127.0.0.1:$((base + 1))" --server-pid "$gateway" \
    --server-send-rate 1000 --json "$out/$name.json" --no-progress "$@" \
    | tee "$out/$name.txt"
redis-cli -p "$base" info commandstats | tr -d '\r' | grep '^cmdstat_' >"$out/$name.commandstats"

# Messages acked, from the load generator's summary.
acked=$(grep -o '"acked": *[0-9]*' "$out/$name.json" | head -1 | grep -o '[0-9]*$')
{
    echo "Redis commands over the run (setup and idle polling included), per acked message ($acked):"
    awk -F'[:=,]' -v acked="$acked" '
        { name = substr($1, 9); calls = $3; total += calls; rows[name] = calls }
        END {
            for (n in rows) printf "  %-24s %9d  %6.2f\n", n, rows[n], rows[n] / acked
            printf "  %-24s %9d  %6.2f\n", "TOTAL", total, total / acked
        }' "$out/$name.commandstats" | sort -k2 -n -r
} | tee -a "$out/$name.txt"
