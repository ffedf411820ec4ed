# Stand-in for the official `redis` image, for scripts/compose-smoke.sh where no image
# registry is reachable: Debian's redis-server on a local Debian root filesystem. What
# compose.yaml relies on is the same: redis-server and redis-cli on PATH, a `redis` user,
# /data owned by it.
ARG BASE=chat-smoke/debian:local
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
