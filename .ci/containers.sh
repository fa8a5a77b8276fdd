#!/usr/bin/env bash
# CI stage "containers" (issue 14): builds the chatd image from a Debian
# base made by debootstrap (no registry is reachable here), runs Redis and
# the roles as containers on one network with the shipped configuration
# (deploy/compose/chatd.toml, the compose cluster's), and runs the chat
# smoke test (deploy/smoke/smoke.py): two users on two gateway containers,
# a message each way with acks, then gateway 1 is stopped, its user gets
# 1012, reconnects to gateway 2 and resumes without a gap. Then checks that
# every role drained and exited 0 on SIGTERM.
#
# The image is the Dockerfile's `prebuilt` target with the chatd the tests
# built (docs/deploy.md says why). Installs (podman, runc, debootstrap, a
# Python venv with websockets) and the base image are cached outside the
# clone, in $CHAT_CI_CACHE (default /var/cache/chat-ci) and podman's store.
set -euo pipefail

cd "$(dirname "$0")/.."
source .ci/lib.sh
GW1_PORT=${CHAT_CI_GW1_PORT:-18181}
GW2_PORT=${CHAT_CI_GW2_PORT:-18182}
# podman on runc here: limits above the host's are refused (docs/deploy.md).
LIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

need podman runc curl
VENV=$(smoke_venv)
bash .ci/images.sh

cleanup() {
    status=$?
    if [ $status -ne 0 ]; then
        for name in redis router persist gateway-1 gateway-2; do
            echo "--- logs of $PREFIX-$name (last 15 lines)"
            podman logs --tail 15 "$PREFIX-$name" 2>&1 | cut -c1-300 || true
        done
    fi
    podman rm -f -t 0 "$PREFIX-redis" "$PREFIX-migrate" "$PREFIX-router" "$PREFIX-persist" \
        "$PREFIX-gateway-1" "$PREFIX-gateway-2" >/dev/null 2>&1 || true
    podman volume rm -f "$PREFIX-data" >/dev/null 2>&1 || true
    podman network rm -f "$PREFIX" >/dev/null 2>&1 || true
    exit $status
}
trap cleanup EXIT
cleanup_first() { trap - EXIT; (cleanup) || true; trap cleanup EXIT; }
cleanup_first

header "cluster: redis, migrate, router, persist, gateway-1, gateway-2 on network $PREFIX"
podman network create "$PREFIX" >/dev/null
podman volume create "$PREFIX-data" >/dev/null
JWT=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
chatd() { # name command [podman options...]
    local name=$1 command=$2
    shift 2
    podman run -d --name "$PREFIX-$name" --network "$PREFIX" --network-alias "$name" "${LIMITS[@]}" \
        --health-interval disable --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
        -e CHAT_CONFIG=/etc/chat/chatd.toml -e CHAT_REDIS_URL="redis://$REDIS_IP:6379" -e CHAT_JWT_SECRET="$JWT" \
        -v "$PWD/deploy/compose/chatd.toml:/etc/chat/chatd.toml:ro" -v "$PREFIX-data:/var/lib/chat" \
        "$@" "localhost/$PREFIX-chatd" "$command" >/dev/null
}
ready() { # name: waits for /readyz 200 inside the container (60 s)
    for _ in $(seq 120); do
        podman exec "$PREFIX-$1" /bin/bash -c "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3 | grep -q ' 200 '" 2>/dev/null && return 0
        sleep 0.5
    done
    echo "$1 not ready after 60 s" >&2
    return 1
}
podman run -d --name "$PREFIX-redis" --network "$PREFIX" --network-alias redis "${LIMITS[@]}" \
    "localhost/$PREFIX-redis" redis-server --appendonly yes --appendfsync everysec --save "" --dir /data --protected-mode no >/dev/null
for _ in $(seq 60); do podman exec "$PREFIX-redis" redis-cli ping 2>/dev/null | grep -q PONG && break; sleep 0.5; done
podman exec "$PREFIX-redis" redis-cli ping | grep -q PONG
# By address: name resolution on a podman network needs a DNS plugin
# (aardvark-dns or dnsname) that this machine's podman does not have.
REDIS_IP=$(podman inspect "$PREFIX-redis" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')
chatd migrate migrate
[ "$(podman wait "$PREFIX-migrate")" = 0 ] || { podman logs "$PREFIX-migrate"; exit 1; }
chatd router router
chatd persist persist
ready router
ready persist
chatd gateway-1 gateway -p "127.0.0.1:$GW1_PORT:8080"
chatd gateway-2 gateway -p "127.0.0.1:$GW2_PORT:8080"
ready gateway-1
ready gateway-2
echo "all roles ready"

header "smoke test (deploy/smoke/smoke.py)"
"$VENV/bin/python" deploy/smoke/smoke.py "http://127.0.0.1:$GW1_PORT" "http://127.0.0.1:$GW2_PORT" \
    -- podman stop -t 45 "$PREFIX-gateway-1"

header "every role drains and exits 0 on SIGTERM"
podman stop -t 45 "$PREFIX-gateway-2" "$PREFIX-router" "$PREFIX-persist" >/dev/null
for name in gateway-1 gateway-2 router persist; do
    code=$(podman inspect "$PREFIX-$name" --format '{{.State.ExitCode}}')
    echo "$name exited with $code"
    [ "$code" = 0 ]
done
echo "containers stage: passed"
