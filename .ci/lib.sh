# Shared by the CI stages after the cargo tests (.ci/client.sh,
# .ci/browser.sh, .ci/images.sh, .ci/containers.sh, .ci/compose.sh):
# `source .ci/lib.sh` from the repository root.

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

# need_node: Node 18+ and npm (Debian's nodejs and npm when either is missing).
need_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        need nodejs npm
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$major" -lt 18 ]; then
        echo "node $major is too old: the JavaScript stages need Node 18 or later" >&2
        exit 1
    fi
}

# need_chatd: exports CHATD_BIN, the debug chatd that `cargo test` built,
# building it (with the tests' features, so nothing is rebuilt twice) when
# it is missing.
need_chatd() {
    export CHATD_BIN="${CHATD_BIN:-$CARGO_TARGET_DIR/debug/chatd}"
    if [ ! -x "$CHATD_BIN" ]; then
        header "building chatd (not found at $CHATD_BIN)"
        cargo build --workspace --all-features --bin chatd
    fi
}

# NPM_CACHE: npm's download cache, kept outside the clone.
NPM_CACHE=$CHAT_CI_CACHE/npm
