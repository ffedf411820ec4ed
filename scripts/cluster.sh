#!/usr/bin/env bash
# The cluster of compose.yaml as plain processes on 127.0.0.1, for machines without Docker:
# a Redis master and 2 replicas (AOF), 3 Sentinels (quorum 2), N chat-servers in Sentinel
# mode, a registry, the health checker and the web page. Ctrl-C stops them all.
#
#   scripts/cluster.sh [--nodes N] [--debug] [--no-build]
#
#   --nodes N    chat-servers on ports 3001.. (default 3)
#   --debug      use target/debug binaries (default: target/release)
#   --no-build   do not run cargo/npm first
#
# Needs redis-server and redis-cli (Debian/Ubuntu: apt-get install redis-server), cargo, npm,
# python3 and bash 5.1 or later.
# Logs and Redis data go to target/cluster/ (emptied at each start). Extra CHAT_* variables
# pass through to the chat binaries (e.g. CHAT_AUTH_SECRET).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }
say() { printf 'cluster: %s\n' "$*"; }

nodes=3
profile=release
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=${2:-}; shift ;;
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[[ "$nodes" =~ ^[1-9][0-9]?$ ]] || die "--nodes takes 1..99"

command -v redis-server >/dev/null || die "redis-server is missing (apt-get install redis-server)"
command -v redis-cli >/dev/null || die "redis-cli is missing (apt-get install redis-tools)"
command -v python3 >/dev/null || die "python3 is missing (it serves the web page)"

host=127.0.0.1
redis_ports=(6379 6380 6381)
sentinel_ports=(26379 26380 26381)
registry_port=8080
health_port=8090
web_port=3000
node_ports=()
for ((i = 1; i <= nodes; i++)); do node_ports+=($((3000 + i))); done

for port in "${redis_ports[@]}" "${sentinel_ports[@]}" "${node_ports[@]}" $registry_port $health_port $web_port; do
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    die "port $port on $host is taken (another cluster.sh or compose-smoke.sh running?)"
  fi
done

if [ "$build" = 1 ]; then
  say "building the binaries ($profile)"
  if [ "$profile" = release ]; then cargo build --release --workspace --locked; else cargo build --workspace --locked; fi
  if [ ! -f web-client/dist/index.html ] || [ -n "$(find web-client/src web-client/index.html -newer web-client/dist/index.html 2>/dev/null | head -1)" ]; then
    say "building the web page"
    [ -d web-client/node_modules ] || npm --prefix web-client ci --no-audit --no-fund
    npm --prefix web-client run build
  fi
fi
bin=target/$profile
for b in chat-server chat-registry chat-health; do
  [ -x "$bin/$b" ] || die "$bin/$b is missing (run without --no-build)"
done
[ -f web-client/dist/index.html ] || die "web-client/dist is missing (run without --no-build)"

state=target/cluster
rm -rf "$state"
mkdir -p "$state"
state=$(cd "$state" && pwd)

pids=()
names=()
stopping=0

# Starts "$@" in the background with its output in $state/<name>.log.
start() {
  local name=$1
  shift
  "$@" >"$state/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
  echo $! >"$state/$name.pid"
}

stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  say "stopping ${#pids[@]} processes"
  # Chat binaries first (the nodes drain), Redis last, so nothing logs errors about it.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  say "stopped; logs in $state"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until "$@" succeeds, at most $1 seconds.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what did not come up within ${secs}s (see $state/)"
    sleep 0.2
  done
}
healthz() { python3 - "$1" <<'PY'
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=2).status == 200 else 1)
PY
}

say "starting Redis: master :${redis_ports[0]}, replicas :${redis_ports[1]} :${redis_ports[2]}"
for i in 0 1 2; do
  mkdir -p "$state/redis-$((i + 1))"
  replica_of=""
  [ $i -gt 0 ] && replica_of="$host ${redis_ports[0]}"
  start "redis-$((i + 1))" env REDIS_DIR="$state/redis-$((i + 1))" REDIS_PORT="${redis_ports[i]}" \
    REDIS_BIND=$host REDIS_ANNOUNCE_HOST=$host REDIS_REPLICA_OF="$replica_of" sh deploy/redis/redis.sh
  [ $i -eq 0 ] && wait_for 10 "the Redis master" redis-cli -h $host -p "${redis_ports[0]}" ping
done
for p in "${redis_ports[@]:1}"; do
  wait_for 20 "the replica on :$p" sh -c "redis-cli -h $host -p $p info replication | grep -q master_link_status:up"
done

say "starting Sentinels :${sentinel_ports[*]}"
for i in 0 1 2; do
  mkdir -p "$state/sentinel-$((i + 1))"
  start "sentinel-$((i + 1))" env REDIS_DIR="$state/sentinel-$((i + 1))" SENTINEL_PORT="${sentinel_ports[i]}" \
    SENTINEL_BIND=$host SENTINEL_ANNOUNCE_HOST=$host SENTINEL_MASTER=mymaster \
    SENTINEL_MASTER_HOST=$host SENTINEL_MASTER_PORT="${redis_ports[0]}" SENTINEL_QUORUM=2 \
    sh deploy/redis/sentinel.sh
done
for p in "${sentinel_ports[@]}"; do
  wait_for 30 "the Sentinel on :$p" sh -c "redis-cli -h $host -p $p sentinel ckquorum mymaster | grep -q ^OK"
done

sentinels=$(printf "$host:%s," "${sentinel_ports[@]}")
export CHAT_REDIS_SENTINELS=${sentinels%,} CHAT_REDIS_MASTER=mymaster
unset CHAT_REDIS_URL CHAT_LISTEN CHAT_PUBLIC_URL CHAT_NODE_ID CHAT_WEB_DIR

say "starting $nodes chat-servers :${node_ports[*]}"
for ((i = 1; i <= nodes; i++)); do
  port=${node_ports[i - 1]}
  start "chat-$i" env CHAT_NODE_ID="chat-$i" CHAT_LISTEN="$host:$port" \
    CHAT_PUBLIC_URL="http://$host:$port" CHAT_REDIS_WAIT=1 CHAT_DRAIN_TIMEOUT="${CHAT_DRAIN_TIMEOUT:-3s}" \
    "$bin/chat-server"
done
start registry env CHAT_LISTEN="$host:$registry_port" "$bin/chat-registry"
start health env CHAT_LISTEN="$host:$health_port" "$bin/chat-health"
# The page, like the `web` service of compose.yaml: `/` without a query goes to the registry.
start web python3 -c '
import functools, http.server, sys
class Page(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/":
            host = (self.headers.get("Host") or "127.0.0.1").rsplit(":", 1)[0]
            self.send_response(302)
            self.send_header("Location", f"/?registry=http://{host}:{sys.argv[3]}")
            self.end_headers()
        else:
            super().do_GET()
handler = functools.partial(Page, directory="web-client/dist")
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), handler).serve_forever()
' $host "$web_port" "$registry_port"

for port in "${node_ports[@]}" $registry_port $health_port; do
  wait_for 30 "the service on :$port" healthz "http://$host:$port"
done
wait_for 10 "the web page on :$web_port" python3 -c "import urllib.request; urllib.request.urlopen('http://$host:$web_port/', timeout=2)"

cat <<EOF

  The chat is up. Open the web page (it asks the registry for a node):

    http://localhost:$web_port

  registry      http://$host:$registry_port/api/v1/servers   (pick: /api/v1/servers/pick)
  health        http://$host:$health_port/healthz
  chat-servers  $(for p in "${node_ports[@]}"; do printf 'http://%s:%s ' $host "$p"; done)
  sentinels     redis-cli -p ${sentinel_ports[0]} sentinel get-master-addr-by-name mymaster
  logs          $state/*.log

  Watch a failover: kill \$(cat $state/redis-1.pid)
  (the Sentinels promote a replica within ~6-10s; the chat goes on).
  Ctrl-C stops everything.

EOF

# Report processes that exit on their own (a killed Redis master, a crashed node); keep the
# rest running until Ctrl-C.
while :; do
  set +e
  wait -n -p done_pid "${pids[@]}" 2>/dev/null
  code=$?
  set -e
  [ -n "${done_pid:-}" ] || break
  for i in "${!pids[@]}"; do
    if [ "${pids[i]}" = "$done_pid" ]; then
      say "${names[i]} exited (status $code; log: $state/${names[i]}.log)"
      unset 'pids[i]' 'names[i]'
    fi
  done
  pids=("${pids[@]}")
  names=("${names[@]}")
  done_pid=
  [ ${#pids[@]} -gt 0 ] || break
done
