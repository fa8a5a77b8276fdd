# Sourced by the scripts beside it: one fresh `chatd serve` ($chatd) to
# measure, started and stopped the same way by each.
#
#   serve_start LISTEN LOG [NAME=VALUE...]
#       starts it on LISTEN with a new, empty data directory and the
#       settings given, its output in LOG; sets $server (its pid) and
#       $data; returns once it answers /healthz (exits if it dies first).
#   serve_stop
#       SIGTERM, SIGKILL after 10 s, and removes the data directory.

serve_start() {
    local listen=$1 log=$2
    shift 2
    data=$(mktemp -d)
    env "$@" CHAT_LISTEN="$listen" CHAT_DATA_DIR="$data" "$chatd" serve >"$log" 2>&1 &
    server=$!
    for _ in $(seq 50); do
        curl -fsS "http://$listen/healthz" >/dev/null 2>&1 && return 0
        if ! kill -0 "$server" 2>/dev/null; then
            tail -n 20 "$log" >&2
            echo "chatd exited (above: the end of $log)" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "chatd did not answer on $listen; see $log" >&2
    exit 1
}

serve_stop() {
    [ -n "${server:-}" ] || return 0
    kill "$server" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "${data:?}"
}
