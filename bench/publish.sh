#!/usr/bin/env bash
# Reproduces the published tables of BENCHMARKS.md in one command (about 50 minutes with
# BASE_REV, 40 without):
#   1. every case, ours against node, 3 pairs;
#   2. the cases the other peers can run, ours against node-sharded, sxio and ceiling, 2 pairs;
#   3. with BASE_REV, ours against an earlier build of ours (bench/base.sh), 2 pairs: the
#      before/after of a round of work.
# Writes bench/results/<date>-{node,peers,base}.{md,jsonl}.
#
#   bench/publish.sh                          # today's date
#   BASE_REV=0b8de68 bench/publish.sh 2026-12-02
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${1:-$(date +%F)}"
RESULTS="$ROOT/bench/results"
WORK="$(mktemp -d /tmp/chat-publish.XXXXXX)"
mkdir -p "$RESULTS"

"$ROOT/bench/run.sh" --pairs 3 --out "$WORK/node"
"$ROOT/bench/run.sh" --pairs 2 --peers node-sharded,sxio,ceiling \
  --only fanout100,fanout100-norcpt,fanout100-1node,fanout-partial,idle,connect10k,dm@2000,dm@2000-norcpt,polling500,polling500-norcpt \
  --out "$WORK/peers"
RUNS="node peers"
if [ -n "${BASE_REV:-}" ]; then
  BASE_BIN="$("$ROOT/bench/base.sh" "$BASE_REV")" "$ROOT/bench/run.sh" --pairs 2 --peers base \
    --only dm@2000,fanout10,fanout100,fanout1000,fanout-partial,idle,connect10k,polling500 \
    --out "$WORK/base"
  RUNS="$RUNS base"
fi

for run in $RUNS; do
  cp "$WORK/$run/table.md" "$RESULTS/$NAME-$run.md"
  cp "$WORK/$run/results.jsonl" "$RESULTS/$NAME-$run.jsonl"
done
echo "tables: $RESULTS/$NAME-{${RUNS// /,}}.md (server logs in $WORK)"
