# Stand-in for the official `prom/prometheus` image, for scripts/compose-smoke.sh where no
# image registry is reachable: Debian's prometheus on a local Debian root filesystem. What
# compose.yaml relies on is the same: the `prometheus` entrypoint taking its flags as the
# command, /prometheus writable for its data, wget for the healthcheck.
ARG BASE=chat-smoke/debian:local
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus wget >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
