#!/usr/bin/env bash
# Side-by-side benchmark: ours (chat-server, cluster mode on one Redis) vs socket.io peers,
# run alternately A/B/A/B (ours, then each peer, back to back; the case list repeats --pairs
# times).
#
#   bench/run.sh                        # full suite, 3 pairs, peer node (~20 minutes)
#   bench/run.sh --pairs 1 --only fanout10,idle    # some cases (labels or families, below)
#   bench/run.sh --peers node,node-sharded,sxio,ceiling
#   bench/run.sh --quick                # CI: tiny loads, asserts every message arrives; no timings
#   bench/run.sh --out DIR              # where results go (default: a new /tmp/chat-bench.*)
#
# Families (--only takes families or case labels): dm (dm@R, dm@2000-norcpt), dm-search
# (dm-search, dm-search-norcpt), fanout (fanout10, fanout100, fanout100-norcpt, fanout1000,
# fanout100-1node), fanout-partial, idle (idle1k, idle18k), connect (connect10k), polling
# (polling500, polling500-norcpt), slow (slow-ws, slow-polling, slow-none, slow-ws-norcpt:
# ours and base only), ceilings (redis-benchmark on the server core). `-norcpt`: ours with
# CHAT_RECEIPTS=false, the event subset the peers implement.
# Peers: node (socket.io + classic redis adapter), node-sharded (the same, ADAPTER=sharded),
# sxio and ceiling (bench/peers/rust; ceiling has no Redis and runs in single-node cases only),
# base (an earlier build of ours: BASE_BIN=$(bench/base.sh REV), for before/after figures),
# archive (ours with the archive on: a PostgreSQL from the host's binaries per run, pinned to
# the server core, its processes counted with the servers'; family `archive` adds
# archive-drain, PostgreSQL paused during the load then timed writing the backlog).
# A peer that is not there (not built, not written yet) is skipped with a log line.
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
ONLY=""
PEERS="node"
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --pairs) PAIRS="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --peers) PEERS="$2"; shift ;;
    --no-node) PEERS="" ;;
    -h|--help) sed -n 2,24p "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case "$PAIRS" in ''|*[!0-9]*) echo "--pairs needs a number" >&2; exit 2 ;; esac
if [ "$PAIRS" -lt 1 ] || [ "$PAIRS" -gt 20 ]; then echo "--pairs: 1 to 20" >&2; exit 2; fi
[ -n "$OUT" ] || OUT="$(mktemp -d /tmp/chat-bench.XXXXXX)"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
SUITE_START=$SECONDS

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
# Servers and the load generator inherit this. idle18k needs about 18,900 on each side.
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || [ "$HARD" -gt 65536 ]; then HARD=65536; fi
ulimit -n "$HARD" || true

# --- Build -----------------------------------------------------------------------------------
# Quick mode checks the harness, not speed: debug builds (scripts/test.sh has already built
# the workspace in debug), so CI compiles nothing twice.
# Quick mode builds the whole workspace, as test.sh did: `-p chat-server` alone resolves
# dependency features differently and would build every dependency again.
if [ $QUICK = 1 ]; then
  PROFILE=debug; PROFILE_FLAG=(); SCOPE=(--workspace)
else
  PROFILE=release; PROFILE_FLAG=(--release); SCOPE=(-p chat-server)
fi
log "building chat-server and loadgen ($PROFILE)"
(cd "$ROOT" && CARGO_INCREMENTAL=0 cargo build "${PROFILE_FLAG[@]}" -q --locked "${SCOPE[@]}")
(cd "$BENCH/loadgen" && CARGO_INCREMENTAL=0 cargo build "${PROFILE_FLAG[@]}" -q --locked)
SERVER_BIN="$ROOT/target/$PROFILE/chat-server"
LOADGEN="$BENCH/loadgen/target/$PROFILE/loadgen"

# --- Peers -------------------------------------------------------------------------------------
NODE_SCRIPT="$BENCH/peers/node/server.js"
RUST_PEERS="$BENCH/peers/rust"
SXIO_BIN="$RUST_PEERS/target/$PROFILE/sxio-peer"
CEILING_BIN="$RUST_PEERS/target/$PROFILE/ceiling-peer"
NODE_READY=""
node_ready() { # installs the Node peer once; 0 when usable
  if [ -z "$NODE_READY" ]; then
    NODE_READY=no
    if ! command -v node >/dev/null; then
      log "node not found"
    elif [ ! -f "$NODE_SCRIPT" ]; then
      log "$NODE_SCRIPT is missing"
    elif [ -d "$BENCH/peers/node/node_modules/socket.io" ]; then
      NODE_READY=yes
    else
      log "installing the Node peer (npm ci)"
      if (cd "$BENCH/peers/node" && timeout 120 npm ci --no-audit --no-fund --loglevel=error); then
        NODE_READY=yes
      else
        log "npm ci failed"
      fi
    fi
  fi
  [ "$NODE_READY" = yes ]
}
RUST_BUILT=""
rust_peers_built() { # builds bench/peers/rust once; 0 when it built
  if [ -z "$RUST_BUILT" ]; then
    RUST_BUILT=no
    if [ ! -f "$RUST_PEERS/Cargo.toml" ]; then
      log "bench/peers/rust does not exist (yet)"
    elif (CARGO_INCREMENTAL=0 timeout 1200 cargo build "${PROFILE_FLAG[@]}" -q --locked \
          --manifest-path "$RUST_PEERS/Cargo.toml"); then
      RUST_BUILT=yes
    else
      log "bench/peers/rust did not build"
    fi
  fi
  [ "$RUST_BUILT" = yes ]
}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
AVAILABLE=""
for peer in ${PEERS//,/ }; do
  ok=0
  case "$peer" in
    node) node_ready && ok=1 ;;
    node-sharded)
      # The sharded mode lives in the same script (env ADAPTER=sharded).
      if node_ready && grep -q ADAPTER "$NODE_SCRIPT"; then ok=1
      else log "server.js has no ADAPTER=sharded mode (yet)"; fi ;;
    sxio) rust_peers_built && [ -x "$SXIO_BIN" ] && ok=1 ;;
    ceiling) rust_peers_built && [ -x "$CEILING_BIN" ] && ok=1 ;;
    archive)
      # Ours with CHAT_DATABASE_URL: PostgreSQL from the host's packages (.ci/run installs them).
      if [ -n "$PG_BIN" ] && id postgres >/dev/null 2>&1; then ok=1
      else log "peer archive needs PostgreSQL's binaries (apt-get install postgresql) and a postgres user"; fi ;;
    base)
      # An earlier build of ours (bench/base.sh REV prints one), run exactly like ours.
      if [ -n "${BASE_BIN:-}" ] && [ -x "$BASE_BIN" ]; then ok=1
      else log "peer base needs BASE_BIN, an executable chat-server (bench/base.sh REV)"; fi ;;
    *) echo "unknown peer $peer (node | node-sharded | sxio | ceiling | base | archive)" >&2; exit 2 ;;
  esac
  if [ $ok = 1 ]; then
    AVAILABLE="$AVAILABLE $peer"
  elif [ $QUICK = 1 ]; then
    # CI checks the harness: a peer asked for that cannot run is a failure, not a skip.
    echo "bench quick: peer $peer is not available" >&2; exit 1
  else
    log "skipping peer $peer: not available"
  fi
done
IMPLS="ours$AVAILABLE"
log "implementations: $IMPLS"
# The ceiling peer speaks WebSocket only unless told otherwise: its idle runs have no polling.
CEILING_POLLING="${CEILING_POLLING:-0}"

# --- Ports -----------------------------------------------------------------------------------
# Below the ephemeral range, so no client socket (ours or another test's) holds the port.
EPH_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
PORT_SPAN=$(( (EPH_LOW - 20000 - 10) / 10 ))
[ "$PORT_SPAN" -gt 10 ] || PORT_SPAN=1000
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null &&
    [ -z "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
}
pick_base() { # count: base..base+count-1 free
  local tries=0 base i ok
  while [ $tries -lt 50 ]; do
    base=$(( 20000 + (RANDOM % PORT_SPAN) * 10 ))
    ok=1
    for i in $(seq 0 $(( $1 - 1 ))); do port_free $((base + i)) || { ok=0; break; }; done
    if [ $ok = 1 ]; then echo "$base"; return 0; fi
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
load1() { awk '{print $1}' /proc/loadavg; }

# --- Cluster lifecycle -------------------------------------------------------------------------
PIDS=()
REDIS_PID=""
REDIS_PORT=""
PG_PID=""
PG_PORT=""
# The measurement is over when this runs: servers get 2 s to exit, then SIGKILL (ours drains
# its sockets for up to CHAT_DRAIN_TIMEOUT on SIGTERM, which is no use here).
stop_cluster() {
  local p
  for p in "${PIDS[@]}" $REDIS_PID $PG_PID; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}" $REDIS_PID $PG_PID; do
    for _ in $(seq 1 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  [ -z "$PG_PORT" ] || rm -rf "$PG_ROOT/pg-$PG_PORT"
  PIDS=(); REDIS_PID=""; PG_PID=""; PG_PORT=""
}

# PostgreSQL's processes: the postmaster and its children (backends, writers).
pg_pids() { [ -z "$PG_PID" ] || echo "$PG_PID" $(pgrep -P "$PG_PID"); }

# PostgreSQL runs as the postgres user: its clusters live where that user can reach them ($OUT
# may be private to root).
PG_ROOT=""
start_postgres() { # port: a fresh cluster, default durability (fsync and synchronous commit on)
  [ -n "$PG_ROOT" ] || { PG_ROOT=$(mktemp -d /tmp/chat-bench-pg.XXXXXX); chmod 755 "$PG_ROOT"; }
  local dir="$PG_ROOT/pg-$1"
  rm -rf "$dir"; mkdir -p "$dir"; chown postgres "$dir"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
    --locale=C >"$OUT/postgres-init.log" 2>&1 || return 1
  "${PIN_SERVER[@]}" runuser -u postgres -- "$PG_BIN/postgres" -D "$dir/data" -p "$1" \
    -c listen_addresses=127.0.0.1 -k "$dir" >"$OUT/postgres.log" 2>&1 &
  disown $!
  PG_PORT=$1
  wait_port "$1" 20 || return 1
  PG_PID=$(head -1 "$dir/data/postmaster.pid")
}
trap 'stop_cluster; [ -z "$PG_ROOT" ] || rm -rf "$PG_ROOT"' EXIT

start_redis() { # port
  "${PIN_SERVER[@]}" redis-server --port "$1" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --loglevel warning ${BENCH_REDIS_ARGS:-} >"$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  disown $!
  wait_port "$1" 10
}

start_cluster() { # impl nodes
  local impl=$1 nodes=$2 base i port redis_url db=""
  base=$(pick_base $((nodes + 2))) || return 1
  REDIS_PORT=$base
  start_redis "$REDIS_PORT" || return 1
  redis_url="redis://127.0.0.1:$REDIS_PORT"
  if [ "$impl" = archive ]; then
    start_postgres $((base + nodes + 1)) || return 1
    db="CHAT_DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  fi
  URLS=""
  for i in $(seq 1 "$nodes"); do
    port=$((base + i))
    case "$impl" in
      ours|base|archive)
        # shellcheck disable=SC2086 # OURS_ENV is a list of VAR=value words
        TOKIO_WORKER_THREADS=1 CHAT_LISTEN="127.0.0.1:$port" CHAT_NODE_ID="bench$i" \
          CHAT_REDIS_URL="$redis_url" CHAT_REDIS_PREFIX="bench:" \
          CHAT_RATE_MESSAGES=1000000 CHAT_RATE_MESSAGES_BURST=1000000 \
          CHAT_RATE_EVENTS=1000000 CHAT_RATE_EVENTS_BURST=1000000 \
          CHAT_CAPACITY=100000 RUST_LOG=warn \
          "${PIN_SERVER[@]}" env $OURS_ENV $db "$([ "$impl" = base ] && echo "$BASE_BIN" || echo "$SERVER_BIN")" \
          >"$OUT/$impl$i.log" 2>&1 &
        ;;
      node|node-sharded)
        ADAPTER=$([ "$impl" = node-sharded ] && echo sharded || echo classic) \
          PORT=$port HOST=127.0.0.1 REDIS_URL="$redis_url" NODE_ID="bench$i" \
          "${PIN_SERVER[@]}" node "$NODE_SCRIPT" >"$OUT/$impl$i.log" 2>&1 &
        ;;
      sxio|ceiling)
        TOKIO_WORKER_THREADS=1 PORT=$port HOST=127.0.0.1 REDIS_URL="$redis_url" \
          NODE_ID="bench$i" RUST_LOG=warn \
          "${PIN_SERVER[@]}" "$([ "$impl" = sxio ] && echo "$SXIO_BIN" || echo "$CEILING_BIN")" \
          >"$OUT/$impl$i.log" 2>&1 &
        ;;
    esac
    PIDS+=($!)
    disown $!  # no "Killed" job notices
    URLS="${URLS:+$URLS,}ws://127.0.0.1:$port"
  done
  for i in $(seq 1 "$nodes"); do wait_port $((base + i)) 20 || return 1; done
  sleep 0.3
}

# run_case impl pair label nodes loadgen-args...
run_case() {
  local impl=$1 pair=$2 label=$3 nodes=$4; shift 4
  local extra=()
  if [[ "$label" == archive-* ]] && [ "$impl" != archive ]; then
    log "skip: $impl $label (archive cases: the archive peer only)"
    return 0
  fi
  if [[ "$label" == slow* ]] && [ "$impl" != ours ] && [ "$impl" != base ] && [ "$impl" != archive ]; then
    log "skip: $impl $label (slow-consumer cases: ours and base only; the peers have no sync, no /healthz)"
    return 0
  fi
  if [ "$impl" = ceiling ]; then
    if [ "$nodes" -gt 1 ]; then
      log "skip: ceiling $label (the ceiling peer has no Redis: single-node cases only)"
      return 0
    fi
    if [ "$CEILING_POLLING" != 1 ] && [[ " $* " == *" --polling-share "* ]]; then
      log "ceiling $label: WebSocket clients only (CEILING_POLLING=1 to keep the polling share)"
      extra=(--polling-share 0)
    fi
  fi
  local t0=$SECONDS l0; l0=$(load1)
  if ! start_cluster "$impl" "$nodes"; then
    stop_cluster
    log "FAILED: $impl $label: the cluster did not start (logs in $OUT)"
    echo "{\"impl\":\"$impl\",\"pair\":$pair,\"label\":\"$label\",\"error\":\"cluster did not start\"}" >>"$RESULTS"
    FAILED=$((FAILED + 1))
    return 0
  fi
  # PostgreSQL's processes count with the servers': the archive's whole cost.
  local pids pg; pg=$(pg_pids | tr ' ' ,); pids=$(IFS=,; echo "${PIDS[*]}${pg:+,$pg}")
  local line rc=0 sampler=""
  if [ "$impl" = archive ]; then
    archive_sample "${URLS%%,*}" "$OUT/archive-sample" & sampler=$!
    if [[ "$label" == archive-drain* ]]; then kill -STOP $(pg_pids); fi
  fi
  line=$("${PIN_LOADGEN[@]}" "$LOADGEN" "$@" "${extra[@]}" --urls "$URLS" --pids "$pids" \
    --redis-pid "$REDIS_PID" --label "$label" --tag "p${pair}" --max-seconds 400 $ASSERT) || rc=$?
  if [ "$impl" = archive ]; then
    line=$(archive_finish "$line" "${URLS%%,*}" "$sampler" "$OUT/archive-sample")
  fi
  # What Redis spent per command in the run (setup included): calls and CPU µs per command.
  if [ -n "$REDIS_PORT" ] && command -v redis-cli >/dev/null; then
    redis-cli -p "$REDIS_PORT" INFO commandstats >"$OUT/redis-$impl-$label-p$pair.txt" 2>/dev/null || true
    # With BENCH_REDIS_ARGS='--slowlog-log-slower-than 0 --slowlog-max-len 1000000': every call.
    if [[ "${BENCH_REDIS_ARGS:-}" == *slowlog* ]]; then
      redis-cli -p "$REDIS_PORT" --json SLOWLOG GET -1 >"$OUT/slowlog-$impl-$label-p$pair.json" 2>/dev/null || true
    fi
  fi
  stop_cluster
  local l1; l1=$(load1)
  [ -n "$line" ] || line="{\"error\":\"the load generator printed nothing (exit $rc)\",\"label\":\"$label\"}"
  echo "$line" | jq -c --arg impl "$impl" --argjson pair "$pair" --argjson nodes "$nodes" \
    --argjson l0 "$l0" --argjson l1 "$l1" --argjson secs $((SECONDS - t0)) \
    '. + {impl: $impl, pair: $pair, nodes: $nodes, load1_before: $l0, load1_after: $l1, case_s: $secs}' \
    >>"$RESULTS" 2>/dev/null || echo "$line" >>"$RESULTS"
  if [ $rc -ne 0 ]; then
    log "FAILED: $impl $label (exit $rc): ${line:0:600}"
    FAILED=$((FAILED + 1))
  else
    log "ok: $impl $label ($((SECONDS - t0)) s, load $l0 -> $l1)"
  fi
}

# The archive peer: the highest lag and backlog node 1 reported during the load (its gauges
# cover the whole cluster's queue), sampled every 0.25 s.
metric() { # url name: the sample, 0 when absent
  curl -s --max-time 2 "${1/ws:/http:}/metrics" | awk -v n="$2" '$1 == n {print $2; f=1} END {if (!f) print 0}'
}
archive_sample() { # url file
  local lag backlog max_lag=0 max_backlog=0
  while true; do
    lag=$(metric "$1" chat_archive_lag_seconds); backlog=$(metric "$1" chat_archive_backlog)
    max_lag=$(awk -v a="$max_lag" -v b="$lag" 'BEGIN {print (b > a) ? b : a}')
    max_backlog=$(awk -v a="$max_backlog" -v b="$backlog" 'BEGIN {print (b > a) ? b : a}')
    echo "$max_lag $max_backlog" >"$2"
    sleep 0.25
  done
}
# After the load: PostgreSQL resumed (archive-drain), the time until every message is written
# (the backlog at 0 and the rows counted), the sampler's maxima; added to the run's line.
archive_finish() { # line url sampler-pid sample-file
  local t0 rows=null drained=null acked
  kill -CONT $(pg_pids) 2>/dev/null || true
  t0=$(date +%s.%N)
  # Done when every acknowledged message is a row (the runs that send none: the queue empty).
  acked=$(echo "$1" | jq -r '.acked_ok // empty' 2>/dev/null || true)
  for _ in $(seq 1 600); do
    rows=$("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc 'SELECT count(*) FROM messages' 2>/dev/null || echo null)
    if { [ -n "$acked" ] && [ "$rows" = "$acked" ]; } ||
       { [ -z "$acked" ] && [ "$(metric "$2" chat_archive_backlog)" = 0 ]; }; then
      drained=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}'); break
    fi
    sleep 0.1
  done
  kill "$3" 2>/dev/null || true
  read -r lag backlog <"$4" || true
  echo "$1" | jq -c --argjson rows "${rows:-null}" --argjson d "$drained" \
    --argjson lag "${lag:-null}" --argjson backlog "${backlog:-null}" \
    '. + {archive_rows: $rows, archive_drain_s: $d, archive_lag_max_s: $lag, archive_backlog_max: $backlog}
       + (if $d != null and $d > 0 and $rows != null then {archive_drain_msgs_per_s: (($rows / $d) | floor)} else {} end)' \
    2>/dev/null || echo "$1"
}

FAILED=0
OURS_ENV=""
# want family label: selected by --only (families or labels; empty: everything)
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]] || [[ ",$ONLY," == *",$2,"* ]]; }

if [ $QUICK = 1 ]; then
  ASSERT="--assert"
  for impl in $IMPLS; do
    run_case "$impl" 0 "dm-quick" 2 dm --pairs 5 --rate 50 --duration 1 --drain 5
    run_case "$impl" 0 "polling-quick" 2 polling --clients 10 --rate 20 --duration 1 --drain 5
    run_case "$impl" 0 "fanout-quick" 2 fanout --groups 2 --size 10 --rate 10 --duration 1 \
      --drain 5 --settle-ms 200
    run_case "$impl" 0 "fanout-partial-quick" 3 fanout --groups 3 --size 5 --rate 15 \
      --duration 1 --drain 5 --settle-ms 200 --member-nodes 1
    run_case "$impl" 0 "connect-quick" 2 connect --conns 200 --concurrency 50
    run_case "$impl" 0 "idle-quick" 1 idle --conns 200 --hold 0.5 --polling-share 0.05
    # A long-polling member that stops polling is dropped past its budget (1 MiB: ~500 of
    # these) and gets every message through sync.
    run_case "$impl" 0 "slow-quick" 1 slow --silent polling --rate 500 --duration 2 \
      --drain 5 --hold 0 --pad 2000 --sync
  done
  python3 "$BENCH/report.py" --quick "$RESULTS" || FAILED=$((FAILED + 1))
  if [ $FAILED -ne 0 ]; then echo "bench quick: $FAILED failed"; exit 1; fi
  echo "bench quick: all runs delivered every message exactly once ($((SECONDS - SUITE_START)) s)"
  exit 0
fi

ASSERT=""
DM_RATES="${DM_RATES:-500 2000}"
SEARCH_RATES="${SEARCH_RATES:-500,1000,2000,3000,5000,8000,12000,16000,24000}"
# Cases: family|label|nodes|extra environment for ours|loadgen arguments. Each case runs ours
# then every peer back to back (A/B), and the whole list repeats $PAIRS times.
CASES=()
# `-norcpt` cases run ours with CHAT_RECEIPTS=false: the event subset the peers implement
# (they have no receipts). The peers' runs are the same as in the case without the suffix.
NORCPT="CHAT_RECEIPTS=false"
for rate in $DM_RATES; do
  CASES+=("dm|dm@$rate|2||dm --pairs 100 --rate $rate --duration 10 --drain 10")
done
CASES+=("dm|dm@2000-norcpt|2|$NORCPT|dm --pairs 100 --rate 2000 --duration 10 --drain 10")
# The highest cross-node 1:1 rate whose p99 stays under 50 ms: one connection set, 5 s per
# rate, stops at the first rate that fails.
SEARCH="dm-search --pairs 100 --rates $SEARCH_RATES --step-duration 5 --drain 5 --p99-ms 50"
CASES+=("dm-search|dm-search|2||$SEARCH")
CASES+=("dm-search|dm-search-norcpt|2|$NORCPT|$SEARCH")
# Group fan-out over 3 nodes, members spread over all three; deliveries/s: 3,600 / 4,950 / 14,985.
CASES+=("fanout|fanout10|3||fanout --groups 50 --size 10 --rate ${FANOUT10_RATE:-400} --duration 10 --drain 10")
CASES+=("fanout|fanout100|3||fanout --groups 5 --size 100 --rate ${FANOUT_RATE:-50} --duration 10 --drain 10")
# The same with ours' receipts off: shows what receipts cost.
CASES+=("fanout|fanout100-norcpt|3|$NORCPT|fanout --groups 5 --size 100 --rate ${FANOUT_RATE:-50} --duration 10 --drain 10")
CASES+=("fanout|fanout1000|3||fanout --groups 1 --size 1000 --rate ${FANOUT1000_RATE:-15} --duration 10 --drain 10")
# The same on one node: the one fan-out the ceiling peer (no Redis, one process) can run.
CASES+=("fanout|fanout100-1node|1||fanout --groups 5 --size 100 --rate ${FANOUT_RATE:-50} --duration 10 --drain 10")
# Partial fan-out: group g's sender on node g mod 3, its other members all on the next node;
# the third node has no member of the group. Redis and node CPU per delivery, separately.
CASES+=("fanout-partial|fanout-partial|3||fanout --groups 6 --size 100 --rate ${FANOUT_RATE:-50} --duration 10 --drain 10 --member-nodes 1")
# Idle memory on one node, 5% of the clients long-polling; slope between 1k and 18k.
CASES+=("idle|idle1k|1||idle --conns 1000 --hold 3 --polling-share 0.05")
if [ "${IDLE_5K:-0}" = 1 ]; then
  CASES+=("idle|idle5k|1||idle --conns 5000 --hold 3 --polling-share 0.05 --concurrency 200")
fi
CASES+=("idle|idle18k|1||idle --conns 18000 --hold 3 --polling-share 0.05 --concurrency 200 --source-ips 4")
CASES+=("connect|connect10k|2||connect --conns 10000 --concurrency 100")
POLLING="polling --clients 500 --rate ${POLLING_RATE:-500} --duration 10 --drain 10"
CASES+=("polling|polling500|2||$POLLING")
CASES+=("polling|polling500-norcpt|2|$NORCPT|$POLLING")
# The archive (peer `archive`): dm@2000 with PostgreSQL paused for the 10 s of load (the
# backlog then written as fast as it goes: messages/s into PostgreSQL); the archive peer runs
# every other case with the archive on too.
CASES+=("archive|archive-drain|2||dm --pairs 100 --rate 2000 --duration 10 --drain 10")
# Slow consumer (issue 27), one node: a group of three, one member joins and stops reading
# (its WebSocket is never read again, or it never sends its next long-poll GET), 20,000
# messages of 2 KB at 1,000/s; slow-none without that member. The history holds the stream,
# so the dropped member must get all of it through sync. Ours and base only.
SLOW="slow --rate 1000 --duration 20 --pad 2000 --drain 10 --hold 5"
CASES+=("slow|slow-ws|1|CHAT_HISTORY_MAX=20000|$SLOW --silent ws --sync")
CASES+=("slow|slow-polling|1|CHAT_HISTORY_MAX=20000|$SLOW --silent polling --sync")
CASES+=("slow|slow-none|1|CHAT_HISTORY_MAX=20000|$SLOW --silent none")
# slow-ws with ours' receipts off: what the delivery acks the silent member never sends cost.
CASES+=("slow|slow-ws-norcpt|1|CHAT_HISTORY_MAX=20000 $NORCPT|$SLOW --silent ws --sync")

SELECTED=()
for c in "${CASES[@]}"; do
  IFS='|' read -r family label _ <<<"$c"
  if want "$family" "$label"; then SELECTED+=("$c"); fi
done
log "${#SELECTED[@]} cases x $PAIRS pairs x ($IMPLS)"
for pair in $(seq 1 "$PAIRS"); do
  # The load generator's own latency floor (WebSocket echo on its own core), once per pair.
  fl=$("${PIN_LOADGEN[@]}" "$LOADGEN" floor --conns 10 --rate 1000 --duration 3 --label floor) || true
  echo "$fl" | jq -c --argjson pair "$pair" '. + {impl: "loadgen", pair: $pair}' >>"$RESULTS" 2>/dev/null || true
  for c in "${SELECTED[@]}"; do
    IFS='|' read -r _ label nodes OURS_ENV args <<<"$c"
    for impl in $IMPLS; do
      # shellcheck disable=SC2086
      run_case "$impl" "$pair" "$label" "$nodes" $args
    done
  done
done

# --- Ceilings: what one core of Redis does (redis-benchmark, loopback, Redis on the server core).
if want ceilings ceilings; then
  base=$(pick_base 1)
  start_redis "$base"
  PAYLOAD=$(printf 'x%.0s' $(seq 1 100))
  # One subscriber on the channel, as every socket.io node subscribes to the adapter's channel.
  timeout 120 "${PIN_LOADGEN[@]}" redis-cli -p "$base" SUBSCRIBE bench:chan >/dev/null 2>&1 &
  SUB_PID=$!
  sleep 0.2
  ceiling() { # name, redis-benchmark arguments...
    local name=$1 csv rps p50; shift
    csv=$(timeout 60 "${PIN_LOADGEN[@]}" redis-benchmark -p "$base" -q --csv -c 50 "$@" 2>/dev/null | tail -1) || true
    rps=$(echo "$csv" | awk -F'","' '{print $2}')
    p50=$(echo "$csv" | awk -F'","' '{print $5}')
    if jq -nc --arg t "$name" --argjson rps "${rps:-null}" --argjson p50 "${p50:-null}" \
        '{impl: "redis", label: "redis-ceiling", test: $t, rps: $rps, p50_ms: $p50}' >>"$RESULTS"; then
      log "redis ceiling: $name: ${rps:-?} requests/s"
    else
      log "redis ceiling: $name: no result"
    fi
  }
  ceiling "PUBLISH" -n 200000 PUBLISH bench:chan "$PAYLOAD"
  ceiling "XADD" -n 200000 XADD bench:stream MAXLEN '~' 10000 '*' m "$PAYLOAD"
  ceiling "PUBLISH, pipeline 16" -n 1000000 -P 16 PUBLISH bench:chan "$PAYLOAD"
  ceiling "XADD, pipeline 16" -n 1000000 -P 16 XADD bench:stream MAXLEN '~' 10000 '*' m "$PAYLOAD"
  kill "$SUB_PID" 2>/dev/null || true
  stop_cluster
fi

log "results: $RESULTS ($((SECONDS - SUITE_START)) s)"
python3 "$BENCH/report.py" "$RESULTS" | tee "$OUT/table.md"
[ $FAILED -eq 0 ] || log "$FAILED runs failed (see above)"
