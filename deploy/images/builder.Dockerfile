# The Rust builder image for deploy/Dockerfile where no registry is
# reachable: the Debian base (deploy/base-image.sh), a C compiler (the
# bundled SQLite is compiled from C) and the host's Rust toolchain. The
# build context is the toolchain directory; deploy/builder-image.sh runs:
#   podman build -f deploy/images/builder.Dockerfile \
#       --build-arg BASE_IMAGE=localhost/chat-debian:bookworm \
#       -t localhost/chat-builder:bookworm "$(rustc --print sysroot)"
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        gcc libc6-dev ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# Only what builds: compilers and the standard library, not the docs.
COPY bin /usr/local/rust/bin
COPY lib /usr/local/rust/lib
ENV PATH=/usr/local/rust/bin:$PATH \
    CARGO_HOME=/usr/local/cargo \
    CARGO_TERM_COLOR=never
RUN rustc --version && cargo --version
