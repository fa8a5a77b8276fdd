#!/usr/bin/env bash
# Makes the Debian base image the Dockerfile builds from when no registry is
# reachable: `debootstrap --variant=minbase` from the Debian archive,
# imported into podman as localhost/chat-debian:bookworm. The root
# filesystem tarball is cached in $CHAT_CI_CACHE (default
# /var/cache/chat-ci), so it is made once per machine.
#
#   deploy/base-image.sh                 # prints the image name
#   SUITE=trixie deploy/base-image.sh
set -euo pipefail

SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${CHAT_CI_CACHE:-/var/cache/chat-ci}
IMAGE=localhost/chat-debian:$SUITE
TARBALL=$CACHE/debian-$SUITE-minbase.tar

if podman image exists "$IMAGE"; then
    echo "$IMAGE"
    exit 0
fi
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
    command -v debootstrap >/dev/null || { echo "debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    echo "debootstrap --variant=minbase $SUITE from $MIRROR (once per machine)" >&2
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    # What an image does not need: package lists, caches, documentation.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" --numeric-owner -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
fi
podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" >/dev/null
echo "$IMAGE"
