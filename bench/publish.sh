#!/usr/bin/env bash
# Reproduces the published tables of BENCHMARKS.md in one command (about 35 minutes):
#   1. every case, ours against node, 3 pairs;
#   2. the cases the other peers can run, ours against node-sharded, sxio and ceiling, 2 pairs.
# Writes bench/results/<date>-node.{md,jsonl} and bench/results/<date>-peers.{md,jsonl}.
#
#   bench/publish.sh            # today's date
#   bench/publish.sh 2026-12-01 # another name for the files
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${1:-$(date +%F)}"
RESULTS="$ROOT/bench/results"
WORK="$(mktemp -d /tmp/chat-publish.XXXXXX)"
mkdir -p "$RESULTS"

"$ROOT/bench/run.sh" --pairs 3 --out "$WORK/node"
"$ROOT/bench/run.sh" --pairs 2 --peers node-sharded,sxio,ceiling \
  --only fanout100,fanout100-1node,fanout-partial,idle,connect10k,dm@2000,polling500 \
  --out "$WORK/peers"

for run in node peers; do
  cp "$WORK/$run/table.md" "$RESULTS/$NAME-$run.md"
  cp "$WORK/$run/results.jsonl" "$RESULTS/$NAME-$run.jsonl"
done
echo "tables: $RESULTS/$NAME-node.md, $RESULTS/$NAME-peers.md (server logs in $WORK)"
