#!/usr/bin/env bash
# Checks the Prometheus alert rules in deploy/prometheus/: `promtool check
# rules` (syntax, expressions) and `promtool test rules` (a unit test per
# alert, deploy/prometheus/alerts.test.yml). promtool comes with Debian's
# `prometheus` package, installed here when missing (apt keeps it, so later
# runs skip the install).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    echo "installing prometheus (for promtool)"
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    # policy-rc.d 101: the package must not start a Prometheus server here.
    policy=/usr/sbin/policy-rc.d
    added_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod +x "$policy"
        added_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    [ -z "$added_policy" ] || $sudo rm -f "$policy"
fi

promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)

# The dashboard's queries parse as PromQL: each becomes a recording rule of
# a throw-away rules file (Grafana's variables replaced by plain values).
dashboard_rules=$(mktemp --suffix=.yml)
trap 'rm -f "$dashboard_rules"' EXIT
python3 - deploy/grafana/chat-dashboard.json >"$dashboard_rules" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard\n    rules:")
for n, panel in enumerate(p for p in dashboard["panels"] if p["type"] != "row"):
    for target in panel["targets"]:
        expr = (target["expr"].replace("$__rate_interval", "5m")
                .replace("$job", ".*"))
        print(f"      - record: dashboard:panel{n}:{target['refId']}")
        print(f"        expr: {json.dumps(expr)}")
PY
promtool check rules "$dashboard_rules"
