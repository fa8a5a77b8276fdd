#!/usr/bin/env bash
# CI stage "compose" (issue 14): runs deploy/compose.yaml as written, with
# Docker's own engine and docker-compose (Debian's docker.io and
# docker-compose; dockerd is started here when it is not running), so its
# health-ordered start (redis → migrate → router, persist → gateways →
# Prometheus) is what is checked. The images are those of .ci/images.sh
# (podman), handed to Docker with `podman save | docker load`. Then the chat
# smoke test across the two gateways (deploy/smoke/smoke.py, gateway 1
# stopped: 1012, resume on gateway 2 without a gap), and Prometheus must
# report every role's target up (and gateway 1 down) with the shipped alert
# rules loaded. `docker-compose down` at the end, and a dockerd started
# here is stopped again: CI leaves no daemon running on the machine.
set -euo pipefail

cd "$(dirname "$0")/.."
source .ci/lib.sh
PROJECT=${PREFIX}-compose
export GATEWAY1_PORT=${CHAT_CI_COMPOSE_GW1_PORT:-18281}
export GATEWAY2_PORT=${CHAT_CI_COMPOSE_GW2_PORT:-18282}
export PROMETHEUS_PORT=${CHAT_CI_COMPOSE_PROMETHEUS_PORT:-18290}

need docker.io docker-compose curl
VENV=$(smoke_venv)
# Debian's client first: a newer docker CLI elsewhere on PATH may not speak
# to Debian's dockerd the same way.
DOCKER=/usr/bin/docker
compose() { docker-compose -p "$PROJECT" -f deploy/compose.yaml "$@"; }

# Set when dockerd is started here: stopped again at the end (SIGTERM: it
# stops its containerd too), so CI leaves no daemon running.
DOCKERD_PIDFILE=
stop_dockerd() {
    [ -n "$DOCKERD_PIDFILE" ] && $sudo test -f "$DOCKERD_PIDFILE" || return 0
    local pid
    pid=$($sudo cat "$DOCKERD_PIDFILE")
    $sudo kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 60); do $sudo kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    echo "dockerd ($pid) still running after 30 s" >&2
}

cleanup() {
    status=$?
    if [ $status -ne 0 ] && [ -n "${CHATD_IMAGE:-}" ]; then
        compose ps || true
        compose logs --tail 15 --no-color 2>&1 | cut -c1-300 || true
    fi
    compose down -v -t 45 >/dev/null 2>&1 || true
    stop_dockerd
    exit $status
}
trap cleanup EXIT

if ! $DOCKER info >/dev/null 2>&1; then
    header "starting dockerd (log: $CHAT_CI_CACHE/dockerd.log)"
    $sudo mkdir -p "$CHAT_CI_CACHE"
    DOCKERD_PIDFILE=$CHAT_CI_CACHE/dockerd.ci.pid
    $sudo bash -c "nohup dockerd --pidfile '$DOCKERD_PIDFILE' >'$CHAT_CI_CACHE/dockerd.log' 2>&1 &"
    for _ in $(seq 60); do $DOCKER info >/dev/null 2>&1 && break; sleep 0.5; done
    $DOCKER info >/dev/null
fi

bash .ci/images.sh
header "images into Docker (podman save | docker load)"
for image in chatd redis prometheus; do
    podman save --format docker-archive "localhost/$PREFIX-$image" | $DOCKER load -q
done
export CHATD_IMAGE=localhost/$PREFIX-chatd
export REDIS_IMAGE=localhost/$PREFIX-redis
export PROMETHEUS_IMAGE=localhost/$PREFIX-prometheus
CHAT_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CHAT_JWT_SECRET
compose down -v -t 0 >/dev/null 2>&1 || true

header "docker-compose up (each service waits for what it depends on to be healthy)"
compose up -d --no-build
compose ps

header "smoke test (deploy/smoke/smoke.py) on the compose gateways"
"$VENV/bin/python" deploy/smoke/smoke.py "http://127.0.0.1:$GATEWAY1_PORT" "http://127.0.0.1:$GATEWAY2_PORT" \
    -- docker-compose -p "$PROJECT" -f deploy/compose.yaml stop -t 45 gateway-1

header "Prometheus scrapes every role"
# gateway-1 was stopped by the smoke test: it must be seen down, the rest up.
expected="gateway-1:8080=down gateway-2:8080=up persist:8080=up router:8080=up"
seen=
for _ in $(seq 60); do
    seen=$(curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/targets" | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
print(" ".join(sorted(t["labels"]["instance"] + "=" + t["health"] for t in targets)))' 2>/dev/null || true)
    [ "$seen" = "$expected" ] && break
    sleep 1
done
echo "targets: $seen"
[ "$seen" = "$expected" ]
# The shipped alert rules (deploy/prometheus/alerts.yml) are loaded.
alerts=$(curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/rules?type=alert" | python3 -c '
import json, sys
print(sum(len(group["rules"]) for group in json.load(sys.stdin)["data"]["groups"]))')
shipped=$(grep -c -- '- alert:' deploy/prometheus/alerts.yml)
echo "alert rules loaded: $alerts of $shipped"
[ "$alerts" = "$shipped" ]
echo "compose stage: passed"
