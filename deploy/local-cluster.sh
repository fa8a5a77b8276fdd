#!/usr/bin/env bash
# Runs a small cluster on this machine: a Redis server (AOF on), two
# gateways, a router and a persistence worker, sharing one SQLite file.
#
#   deploy/local-cluster.sh            # gateways on :8081 and :8082
#   BASE_PORT=9000 deploy/local-cluster.sh
#
# Ctrl-C stops everything (processes get SIGTERM and drain). Logs and data
# go to $CLUSTER_DIR (default: a fresh temporary directory). The SQLite
# file is fine for one host; a multi-host cluster uses ScyllaDB.
set -euo pipefail

cd "$(dirname "$0")/.."
BASE_PORT=${BASE_PORT:-8080}
REDIS_PORT=${REDIS_PORT:-6390}
CLUSTER_DIR=${CLUSTER_DIR:-$(mktemp -d -t chat-cluster.XXXXXX)}
CHATD=${CHATD:-target/release/chatd}

command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
[ -x "$CHATD" ] || cargo build --release -p chatd

mkdir -p "$CLUSTER_DIR/redis"
pids=()
stop() {
    echo "stopping…"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait || true
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    echo "logs and data kept in $CLUSTER_DIR"
}
trap stop EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$CLUSTER_DIR/redis" \
    --appendonly yes --appendfsync everysec --save "" --daemonize yes \
    --logfile "$CLUSTER_DIR/redis.log"

export CHAT_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export CHAT_DATA_DIR="$CLUSTER_DIR/data"
export CHAT_JWT_SECRET=${CHAT_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export CHAT_LOG_FORMAT=${CHAT_LOG_FORMAT:-pretty}

start() { # role port
    CHAT_LISTEN="127.0.0.1:$2" "$CHATD" "$1" >"$CLUSTER_DIR/$1-$2.log" 2>&1 &
    pids+=("$!")
    echo "$1 on http://127.0.0.1:$2 (log: $CLUSTER_DIR/$1-$2.log)"
}

"$CHATD" migrate >/dev/null 2>&1
start router $((BASE_PORT + 3))
start persist $((BASE_PORT + 4))
start gateway $((BASE_PORT + 1))
start gateway $((BASE_PORT + 2))
echo "cluster up; Ctrl-C to stop"
wait
