#!/bin/sh
# Entrypoint of the Sentinels in compose.yaml (and scripts/compose-smoke.sh): writes
# $REDIS_DIR/sentinel.conf on first start, then runs a Sentinel on it (scripts/cluster.sh
# uses it too).
#
#   SENTINEL_PORT                 port (26379)
#   SENTINEL_BIND                 addresses to listen on (all)
#   SENTINEL_ANNOUNCE_HOST        the name other Sentinels and clients use for this one (required)
#   SENTINEL_MASTER               name of the monitored master (mymaster)
#   SENTINEL_MASTER_HOST, _PORT   the first master (required, 6379)
#   SENTINEL_QUORUM               Sentinels that must agree the master is down (2)
#   SENTINEL_DOWN_AFTER_MS        silence before a master counts as down (5000)
#   SENTINEL_FAILOVER_TIMEOUT_MS  failover timeout (30000)
#   REDIS_DIR                     data and config directory (/data)
#
# Sentinel stores what it learns (current master, replicas, other Sentinels, epochs) in its
# config file, so the file lives in the data volume and is written only once: a restarted
# Sentinel resumes with the current master. Delete the volume to start over.
# Servers are named by host name (resolve-hostnames, announce-hostnames), so a container that
# comes back with another IP address is still the same server.
set -eu

: "${SENTINEL_ANNOUNCE_HOST:?set SENTINEL_ANNOUNCE_HOST}"
: "${SENTINEL_MASTER_HOST:?set SENTINEL_MASTER_HOST}"
port=${SENTINEL_PORT:-26379}
name=${SENTINEL_MASTER:-mymaster}
dir=${REDIS_DIR:-/data}
conf=$dir/sentinel.conf

if [ ! -s "$conf" ]; then
  cat >"$conf.new" <<CONF
# Written by deploy/redis/sentinel.sh at first start; Sentinel keeps its state below.
port $port
bind ${SENTINEL_BIND:-* -::*}
protected-mode no
dir $dir
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SENTINEL_ANNOUNCE_HOST
sentinel announce-port $port
sentinel monitor $name $SENTINEL_MASTER_HOST ${SENTINEL_MASTER_PORT:-6379} ${SENTINEL_QUORUM:-2}
sentinel down-after-milliseconds $name ${SENTINEL_DOWN_AFTER_MS:-5000}
sentinel failover-timeout $name ${SENTINEL_FAILOVER_TIMEOUT_MS:-30000}
sentinel parallel-syncs $name 1
CONF
  mv "$conf.new" "$conf"
  echo "sentinel.sh: new config, monitoring $name at $SENTINEL_MASTER_HOST:${SENTINEL_MASTER_PORT:-6379}"
else
  echo "sentinel.sh: resuming from $conf"
fi

exec redis-server "$conf" --sentinel
