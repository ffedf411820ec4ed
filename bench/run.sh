#!/usr/bin/env bash
# Side-by-side benchmark: ours (chat-server, cluster mode on one Redis) vs the Node peer
# (socket.io 4 + @socket.io/redis-adapter), run alternately A/B/A/B.
#
#   bench/run.sh                 # full phase-1 suite, 3 pairs (~10 minutes)
#   bench/run.sh --pairs 2       # fewer pairs
#   bench/run.sh --only dm       # one workload family: dm | fanout | idle | connect
#   bench/run.sh --quick         # CI: tiny loads, asserts every message arrives; no timings
#
# Servers and Redis are pinned to CPU 0, the load generator to CPU 1; the Rust servers get one
# Tokio worker thread (TOKIO_WORKER_THREADS=1). Every run starts a fresh Redis and fresh servers.
# Results: one JSON line per run in $OUT/results.jsonl, then a table (bench/report.py).
# Loopback only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
QUICK=0
PAIRS=3
ONLY="dm,fanout,idle,connect"
PEERS="node"
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --pairs) PAIRS="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --no-node) PEERS="" ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$OUT" ] || OUT="$(mktemp -d /tmp/chat-bench.XXXXXX)"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"

log() { echo "[bench] $*" >&2; }

# --- CPU pinning (degrades gracefully on a 1-CPU machine) ---------------------------------
NCPU=$(nproc)
if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ]; then
  PIN_SERVER=(taskset -c 0)
  PIN_LOADGEN=(taskset -c 1)
else
  PIN_SERVER=()
  PIN_LOADGEN=()
  log "no taskset or fewer than 2 CPUs: not pinning"
fi

# --- File descriptors ------------------------------------------------------------------------
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || [ "$HARD" -gt 65536 ]; then HARD=65536; fi
ulimit -n "$HARD" || true

# --- Build -----------------------------------------------------------------------------------
# Quick mode checks the harness, not speed: debug builds (scripts/test.sh has already built
# the workspace in debug), so CI compiles nothing twice.
if [ $QUICK = 1 ]; then PROFILE=debug; PROFILE_FLAG=(); else PROFILE=release; PROFILE_FLAG=(--release); fi
log "building chat-server and loadgen ($PROFILE)"
(cd "$ROOT" && CARGO_INCREMENTAL=0 cargo build "${PROFILE_FLAG[@]}" -q --locked -p chat-server)
(cd "$BENCH/loadgen" && CARGO_INCREMENTAL=0 cargo build "${PROFILE_FLAG[@]}" -q --locked)
SERVER_BIN="$ROOT/target/$PROFILE/chat-server"
LOADGEN="$BENCH/loadgen/target/$PROFILE/loadgen"
if [[ " $PEERS " == *" node "* ]]; then
  if ! command -v node >/dev/null; then
    log "node not found: skipping the Node peer"; PEERS=""
  elif [ ! -d "$BENCH/peers/node/node_modules/socket.io" ]; then
    log "installing the Node peer (npm ci)"
    (cd "$BENCH/peers/node" && timeout 120 npm ci --no-audit --no-fund --loglevel=error) \
      || { log "npm ci failed: skipping the Node peer"; PEERS=""; }
  fi
fi

# --- Ports -----------------------------------------------------------------------------------
# Below the ephemeral range, so no client socket (ours or another test's) holds the port.
EPH_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
PORT_SPAN=$(( (EPH_LOW - 20000 - 10) / 10 ))
[ "$PORT_SPAN" -gt 10 ] || PORT_SPAN=1000
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null &&
    [ -z "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
}
pick_base() {
  local tries=0 base
  while [ $tries -lt 50 ]; do
    base=$(( 20000 + (RANDOM % PORT_SPAN) * 10 ))
    if port_free "$base" && port_free $((base + 1)) && port_free $((base + 2)); then
      echo "$base"; return 0
    fi
    tries=$((tries + 1))
  done
  echo "no free ports" >&2; return 1
}
wait_port() { # port, seconds
  local i=0
  while [ $i -lt $(( $2 * 20 )) ]; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05; i=$((i + 1))
  done
  echo "port $1 did not open" >&2; return 1
}

# --- Cluster lifecycle -------------------------------------------------------------------------
PIDS=()
REDIS_PID=""
stop_cluster() {
  local p
  for p in "${PIDS[@]}" $REDIS_PID; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}" $REDIS_PID; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  PIDS=(); REDIS_PID=""
}
trap stop_cluster EXIT

start_cluster() { # impl nodes
  local impl=$1 nodes=$2 base i port
  base=$(pick_base) || return 1
  REDIS_PORT=$base
  "${PIN_SERVER[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --loglevel warning >"$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_port "$REDIS_PORT" 10 || return 1
  URLS=""
  for i in $(seq 1 "$nodes"); do
    port=$((base + i))
    case "$impl" in
      ours)
        TOKIO_WORKER_THREADS=1 CHAT_LISTEN="127.0.0.1:$port" CHAT_NODE_ID="bench$i" \
          CHAT_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" CHAT_REDIS_PREFIX="bench:" \
          CHAT_RATE_MESSAGES=1000000 CHAT_RATE_MESSAGES_BURST=1000000 \
          CHAT_RATE_EVENTS=1000000 CHAT_RATE_EVENTS_BURST=1000000 \
          CHAT_CAPACITY=100000 RUST_LOG=warn \
          "${PIN_SERVER[@]}" env $OURS_ENV "$SERVER_BIN" >"$OUT/ours$i.log" 2>&1 &
        ;;
      node)
        PORT=$port REDIS_URL="redis://127.0.0.1:$REDIS_PORT" NODE_ID="bench$i" \
          "${PIN_SERVER[@]}" node "$BENCH/peers/node/server.js" >"$OUT/node$i.log" 2>&1 &
        ;;
    esac
    PIDS+=($!)
    URLS="${URLS:+$URLS,}ws://127.0.0.1:$port"
  done
  for i in $(seq 1 "$nodes"); do wait_port $((base + i)) 20 || return 1; done
  sleep 0.3
}

# run_case impl pair label nodes loadgen-args...
run_case() {
  local impl=$1 pair=$2 label=$3 nodes=$4; shift 4
  if ! start_cluster "$impl" "$nodes"; then
    stop_cluster
    log "FAILED: $impl $label: the cluster did not start (logs in $OUT)"
    echo "{\"impl\":\"$impl\",\"pair\":$pair,\"label\":\"$label\",\"error\":\"cluster did not start\"}" >>"$RESULTS"
    FAILED=$((FAILED + 1))
    return 0
  fi
  local pids; pids=$(IFS=,; echo "${PIDS[*]}")
  local line rc=0
  line=$("${PIN_LOADGEN[@]}" "$LOADGEN" "$@" --urls "$URLS" --pids "$pids" \
    --redis-pid "$REDIS_PID" --label "$label" --tag "p${pair}" $ASSERT) || rc=$?
  stop_cluster
  echo "$line" | jq -c --arg impl "$impl" --argjson pair "$pair" '. + {impl: $impl, pair: $pair}' \
    >>"$RESULTS" 2>/dev/null || echo "$line" >>"$RESULTS"
  if [ $rc -ne 0 ]; then
    log "FAILED: $impl $label (exit $rc): $line"
    FAILED=$((FAILED + 1))
  else
    log "ok: $impl $label"
  fi
}

FAILED=0
OURS_ENV=""
IMPLS="ours $PEERS"
has() { [[ ",$ONLY," == *",$1,"* ]]; }

if [ $QUICK = 1 ]; then
  ASSERT="--assert"
  for impl in $IMPLS; do
    run_case "$impl" 0 "dm-quick" 2 dm --pairs 5 --rate 50 --duration 1 --drain 5
    run_case "$impl" 0 "fanout-quick" 2 fanout --groups 2 --size 10 --rate 10 --duration 1 \
      --drain 5 --settle-ms 200
    run_case "$impl" 0 "connect-quick" 2 connect --conns 200 --concurrency 50
    run_case "$impl" 0 "idle-quick" 1 idle --conns 200 --hold 0.5
  done
  python3 "$BENCH/report.py" --quick "$RESULTS" || FAILED=$((FAILED + 1))
  if [ $FAILED -ne 0 ]; then echo "bench quick: $FAILED failed"; exit 1; fi
  echo "bench quick: all runs delivered every message exactly once"
  exit 0
fi

ASSERT=""
DM_RATES="${DM_RATES:-500 2000 5000}"
# Cases: label|nodes|extra environment for ours|loadgen arguments. Each case runs ours then the peer back to back (A/B), and
# the whole list repeats $PAIRS times.
CASES=()
if has dm; then
  for rate in $DM_RATES; do
    CASES+=("dm@$rate|2||dm --pairs 100 --rate $rate --duration 10 --drain 10")
  done
fi
if has fanout; then
  FAN="fanout --groups 5 --size 100 --rate ${FANOUT_RATE:-50} --duration 10 --drain 10"
  CASES+=("fanout100|2||$FAN")
  # The same with ours' delivery receipts off for groups (CHAT_RECEIPT_GROUP_MAX=0): shows
  # what receipts cost. The Node peer has no receipts; its run is identical to the one above.
  CASES+=("fanout100-norcpt|2|CHAT_RECEIPT_GROUP_MAX=0|$FAN")
fi
if has idle; then
  CASES+=("idle1k|1||idle --conns 1000 --hold 3")
  CASES+=("idle5k|1||idle --conns 5000 --hold 3 --concurrency 200")
fi
has connect && CASES+=("connect2k|2||connect --conns 2000 --concurrency 100")
for pair in $(seq 1 "$PAIRS"); do
  for c in "${CASES[@]}"; do
    IFS='|' read -r label nodes OURS_ENV args <<<"$c"
    for impl in $IMPLS; do
      # shellcheck disable=SC2086
      run_case "$impl" "$pair" "$label" "$nodes" $args
    done
  done
done

log "results: $RESULTS"
python3 "$BENCH/report.py" "$RESULTS" | tee "$OUT/table.md"
[ $FAILED -eq 0 ] || log "$FAILED runs failed (see above)"
