#!/usr/bin/env bash
# Builds chat-server (release) as of a git revision, for the runner's `base` peer, and prints
# the binary's path:
#
#   BASE_BIN=$(bench/base.sh 0b8de68) bench/run.sh --peers base --only fanout
#
# The revision is checked out in a worktree under target/bench-base/<rev> (kept), built into
# target/bench-base/target (shared by every base, so dependencies build once), and copied to
# target/bench-base/chat-server-<rev>. Progress goes to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -eq 1 ] || { echo "usage: bench/base.sh REV" >&2; exit 2; }
REV=$(git -C "$ROOT" rev-parse --short=12 "$1^{commit}")
DIR="$ROOT/target/bench-base/$REV"
if [ ! -d "$DIR" ]; then
  mkdir -p "$ROOT/target/bench-base"
  git -C "$ROOT" worktree add --detach "$DIR" "$REV" >&2
fi
BIN="$ROOT/target/bench-base/chat-server-$REV"
if [ ! -x "$BIN" ]; then
  echo "[base] building chat-server at $REV" >&2
  (cd "$DIR" && CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$ROOT/target/bench-base/target" \
    cargo build --release -q --locked -p chat-server >&2)
  cp "$ROOT/target/bench-base/target/release/chat-server" "$BIN"
fi
echo "$BIN"
