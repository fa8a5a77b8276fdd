#!/usr/bin/env bash
# Builds, in podman's store, the images that the container stages run
# (.ci/containers.sh, .ci/compose.sh), all from the Debian base that
# deploy/base-image.sh makes with debootstrap (no registry is reachable):
#
#   localhost/$PREFIX-chatd       deploy/Dockerfile, target `prebuilt`, with the
#                                 chatd that `cargo test` built (docs/deploy.md)
#   localhost/$PREFIX-redis       deploy/images/redis.Dockerfile
#   localhost/$PREFIX-prometheus  deploy/images/prometheus.Dockerfile
#
# The chatd image is rebuilt every run (its binary changes); the others come
# from podman's layer cache after the first run on a machine.
set -euo pipefail

cd "$(dirname "$0")/.."
source .ci/lib.sh
need podman runc debootstrap uidmap containernetworking-plugins binutils
$sudo mkdir -p "$CHAT_CI_CACHE"

header "base image (debootstrap, cached)"
BASE=$(deploy/base-image.sh)

header "images: $PREFIX-chatd (Dockerfile target prebuilt), $PREFIX-redis, $PREFIX-prometheus"
cargo build --quiet --workspace --all-features --bin chatd
mkdir -p deploy/.build
objcopy --strip-debug "$CARGO_TARGET_DIR/debug/chatd" deploy/.build/chatd
podman build -q --format docker -f deploy/Dockerfile --target prebuilt \
    --build-arg "RUNTIME_IMAGE=$BASE" -t "localhost/$PREFIX-chatd" . >/dev/null
for image in redis prometheus; do
    podman build -q --format docker -f "deploy/images/$image.Dockerfile" \
        --build-arg "BASE_IMAGE=$BASE" -t "localhost/$PREFIX-$image" deploy/images >/dev/null
done
