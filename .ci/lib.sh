# Shared by the container stages (.ci/images.sh, .ci/containers.sh,
# .ci/compose.sh): `source .ci/lib.sh` from the repository root.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chat-ci-target}"
export CHAT_CI_CACHE=${CHAT_CI_CACHE:-/var/cache/chat-ci}
PREFIX=${CHAT_CI_PREFIX:-chat-ci}
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo

header() { printf '\n==> %s\n' "$*"; }

# need PACKAGE...: installs the Debian packages that are not installed yet.
need() {
    local missing=()
    for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    header "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# smoke_venv: prints the path of a cached Python venv that can run
# deploy/smoke/smoke.py (made once per machine in $CHAT_CI_CACHE).
smoke_venv() {
    local requirements="websockets==15.0.1"
    local venv
    venv="$CHAT_CI_CACHE/containers-venv-$(echo "$requirements" | sha256sum | cut -c1-12)"
    if [ ! -e "$venv/.complete" ]; then
        need python3-venv >&2
        header "creating $venv ($requirements)" >&2
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet $requirements >&2
        touch "$venv/.complete"
    fi
    echo "$venv"
}
