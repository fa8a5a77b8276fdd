#!/usr/bin/env bash
# CI stage "helm": renders the chart in helm/ with Helm's own engine
# (PyPI helm-python-sdk: Helm v4's Go SDK, as no helm binary can be
# installed here) for the default, production and all-in-one values, lints
# it (strict, nothing may be reported), validates every rendered object and
# `kubectl kustomize k8s/overlays/production` against the Kubernetes API
# schemas (PyPI kubernetes-validate, strict), checks that wrong values are
# refused, that k8s/base equals the chart's defaults, and that chatd accepts
# every chatd.toml shipped (`chatd config` validates like a start does).
# The details are in .ci/helm_check.py.
#
# Installs go to $CHAT_CI_CACHE (default /var/cache/chat-ci), outside the
# clone, so a second run installs nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-ci-target}"
CACHE=${CHAT_CI_CACHE:-/var/cache/chat-ci}
REQUIREMENTS="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.4"
VENV="$CACHE/helm-venv-$(echo "$REQUIREMENTS" | sha256sum | cut -c1-12)"

header() { printf '\n==> %s\n' "$*"; }
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
apt_install() {
    header "installing $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v kubectl >/dev/null 2>&1 || apt_install kubernetes-client
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
# A venv cannot be moved (its scripts name their path): made in place,
# marked complete last, remade when a previous attempt did not finish.
if [ ! -e "$VENV/.complete" ]; then
    header "creating $VENV ($REQUIREMENTS)"
    $sudo mkdir -p "$CACHE"
    $sudo chown "$(id -u)" "$CACHE"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet $REQUIREMENTS
    touch "$VENV/.complete"
fi

header "cargo build chatd (to check the shipped configuration; the same features as the tests, so .ci/run builds it once)"
cargo build --quiet --workspace --all-features --bin chatd

header "helm chart and kustomize checks"
"$VENV/bin/python" .ci/helm_check.py --chatd "$CARGO_TARGET_DIR/debug/chatd"
