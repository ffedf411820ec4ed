#!/bin/sh
# Entrypoint of the Redis servers in compose.yaml (and scripts/compose-smoke.sh): writes
# $REDIS_DIR/redis.conf, then runs redis-server on it (scripts/cluster.sh uses it too).
#
#   REDIS_PORT           port (6379)
#   REDIS_BIND           addresses to listen on (all)
#   REDIS_ANNOUNCE_HOST  the name replicas and Sentinels use for this server (required)
#   REDIS_REPLICA_OF     "host port" of its master at first start; unset: start as master
#   REDIS_DIR            data and config directory (/data)
#
# The file lives in the data volume: when Sentinel changes this server's role it rewrites
# the `replicaof` line (CONFIG REWRITE), and a restart keeps that role. An old master that
# comes back after a failover thus follows the new one instead of posing as a second
# master. Everything else is written afresh from the variables on every start.
# Persistence: AOF, fsync every second, on every server.
set -eu

: "${REDIS_ANNOUNCE_HOST:?set REDIS_ANNOUNCE_HOST}"
port=${REDIS_PORT:-6379}
dir=${REDIS_DIR:-/data}
conf=$dir/redis.conf

if [ -f "$conf" ]; then
  role=$(grep -E '^(replicaof|slaveof) ' "$conf" | tail -n 1 | cut -d' ' -f2- || true)
else
  role=${REDIS_REPLICA_OF:-}
fi

cat >"$conf.new" <<CONF
# Written by deploy/redis/redis.sh at each start; Sentinel rewrites the role below.
port $port
bind ${REDIS_BIND:-* -::*}
# No password and not published outside the compose network (or loopback in the smoke test).
protected-mode no
dir $dir
appendonly yes
appendfsync everysec
replica-announce-ip $REDIS_ANNOUNCE_HOST
replica-announce-port $port
# A replica that lost its master still answers reads; writes go to the master anyway.
replica-serve-stale-data yes
CONF
if [ -n "$role" ]; then
  echo "replicaof $role" >>"$conf.new"
fi
mv "$conf.new" "$conf"

echo "redis.sh: port $port, announced as $REDIS_ANNOUNCE_HOST, starting as ${role:+replica of }${role:-master}"
exec redis-server "$conf"
