#!/usr/bin/env bash
# A small cluster under load, and Redis's work per message: starts a private
# redis-server and $ROUTERS `chatd router`, $PERSISTERS `chatd persist` and
# $GATEWAYS `chatd gateway` processes on it (one shared data directory),
# runs chat-loadtest with its connections spread over the gateways and the
# CPU and memory of every process of the cluster (Redis included) summed,
# and reports Redis's `INFO commandstats` over the send window and drain:
# commands by name (calls inside Lua scripts counted too, as Redis does)
# and per acked message. The counters are reset when the load generator
# has opened its connections (1 s before it starts sending) and read at
# the end of the drain, before the connections close (`--on-drained`), the
# same window as the CPU figure: setup and teardown are not counted; the
# consumers' idle polling during the run is. Everything it started is
# stopped and removed.
#
#   loadtest/scripts/redis-commands.sh NAME [chat-loadtest args...]
#   GATEWAYS=2 loadtest/scripts/redis-commands.sh c1000 --users 1000 --rooms 100 --rate 1000 --duration 20
#
# Writes bench-out/NAME.{txt,json,commandstats} and the processes' logs.
# Binaries: $CHATD (default target/release/chatd) and $LOADTEST (default
# target/release/chat-loadtest). Ports: $BASE_PORT (default 18500) for
# Redis, then one each for the chatd processes.
set -euo pipefail

name=${1:?usage: redis-commands.sh NAME [chat-loadtest args...]}
shift
chatd=${CHATD:-target/release/chatd}
loadtest=${LOADTEST:-target/release/chat-loadtest}
out=${OUT:-bench-out}
base=${BASE_PORT:-18500}
gateways=${GATEWAYS:-1}
routers=${ROUTERS:-1}
persisters=${PERSISTERS:-1}
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

port=$base
role() { # role index
    port=$((port + 1))
    CHAT_LISTEN=127.0.0.1:$port CHAT_DATA_DIR=$data CHAT_REDIS_URL=redis://127.0.0.1:$base \
    CHAT_JWT_SECRET=${CHAT_JWT_SECRET:-redis-commands-sh-benchmark-secret-0123456789} \
    CHAT_RATES__SEND_PER_SECOND=1000 CHAT_RATES__SEND_BURST=1000 CHAT_RATES__ACTIONS_PER_SECOND=1000 CHAT_RATES__ACTION_BURST=1000 CHAT_RATES__LOGIN_PER_ADDRESS_PER_MINUTE=1000000 RUST_LOG=warn \
        "$chatd" "$1" >"$out/$name.$1-$2.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "chatd $1 not ready; see $out/$name.$1-$2.log" >&2
    exit 1
}
for i in $(seq "$routers"); do role router "$i"; done
for i in $(seq "$persisters"); do role persist "$i"; done
servers=()
for i in $(seq "$gateways"); do
    role gateway "$i"
    servers+=("http://127.0.0.1:$port")
done
cluster=()
# CLUSTER_STATS=0: no --cluster-pid (a load generator built before it).
if [ "${CLUSTER_STATS:-1}" != 0 ]; then
    for pid in "${pids[@]}"; do cluster+=(--cluster-pid "$pid"); done
fi

stats="$out/$name.commandstats"
rm -f "$stats"
"$loadtest" --server "$(IFS=,; echo "${servers[*]}")" ${cluster[@]+"${cluster[@]}"} \
    --on-drained "redis-cli -p $base info commandstats | tr -d '\r' | grep '^cmdstat_' >'$stats'" \
    --server-send-rate 1000 --json "$out/$name.json" --no-progress "$@" \
    >"$out/$name.txt" 2>"$out/$name.loadtest.log" &
lt=$!
# Reset the counters once every connection is open (the send window starts
# 1 s later).
until grep -q '^opened ' "$out/$name.loadtest.log" 2>/dev/null; do
    kill -0 "$lt" 2>/dev/null || break
    sleep 0.1
done
redis-cli -p "$base" config resetstat >/dev/null
wait "$lt"
cat "$out/$name.txt"
if [ ! -s "$stats" ]; then
    echo "no commandstats read at the end of the drain (see $out/$name.loadtest.log)" >&2
    exit 1
fi

# Messages acked, from the load generator's summary.
acked=$(grep -o '"acked": *[0-9]*' "$out/$name.json" | head -1 | grep -o '[0-9]*$')
{
    echo "Redis commands over the send window and drain (connections still open), per acked message ($acked):"
    awk -F'[:=,]' -v acked="$acked" '
        { name = substr($1, 9); calls = $3; total += calls; rows[name] = calls }
        END {
            for (n in rows) printf "  %-24s %9d  %6.2f\n", n, rows[n], rows[n] / acked
            printf "  %-24s %9d  %6.2f\n", "TOTAL", total, total / acked
        }' "$stats" | sort -k2 -n -r
} | tee -a "$out/$name.txt"
