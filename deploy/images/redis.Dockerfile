# Redis from Debian's package (7.0 in bookworm; chatd needs 7.0 or later),
# for the compose cluster and CI where no registry is reachable:
#   podman build -f deploy/images/redis.Dockerfile \
#       --build-arg BASE_IMAGE=localhost/chat-debian:bookworm -t localhost/chat-redis .
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
STOPSIGNAL SIGTERM
CMD ["redis-server", "--appendonly", "yes", "--dir", "/data", "--protected-mode", "no"]
