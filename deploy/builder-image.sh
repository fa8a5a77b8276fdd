#!/usr/bin/env bash
# Makes localhost/chat-builder:bookworm (deploy/images/builder.Dockerfile):
# the debootstrap base plus gcc and this host's Rust toolchain, for
# building deploy/Dockerfile's Rust stages without a registry. Prints the
# image name.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=localhost/chat-builder:bookworm
base=$(deploy/base-image.sh)
if ! podman image exists "$IMAGE"; then
    sysroot=$(rustc --print sysroot)
    podman build -q -f deploy/images/builder.Dockerfile --build-arg "BASE_IMAGE=$base" -t "$IMAGE" "$sysroot" >/dev/null
fi
echo "$IMAGE"
