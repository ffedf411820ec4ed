#!/usr/bin/env bash
# Runs every test: formatting and lints, Rust unit and integration tests, end-to-end tests
# with the official socket.io-client, a short randomized fault run, and the web client's
# browser tests.
# Needs: cargo, node/npm, python3 with venv, /usr/bin/chromium for the browser tests, and a running Docker engine
# with the Redis and PostgreSQL test images (scripts/redis-test-image.sh,
# scripts/postgres-test-image.sh) for the Redis and archive tests, redis-server and
# redis-cli for the fault run; .ci/run sets all
# of that up on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format, lints and docs"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "rust tests (handlers on the in-memory store; cluster and Redis suites)"
cargo build --workspace --locked
cargo test --workspace --locked

step "benchmark harness, quick mode (checks messages arrive; no timings)"
bench/run.sh --quick --peers node,node-sharded,sxio,ceiling,archive

step "handler tests again, on the Redis store (one Redis container per server)"
# The test binary the workspace build above made: `cargo test -p chat-core` would resolve
# dependency features for chat-core alone and build every dependency again (minutes, GBs).
it=$(cargo test --workspace --locked --no-run --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m["target"]["name"] == "it"
            and m["manifest_path"].endswith("/chat-core/Cargo.toml") and m.get("executable")):
        print(m["executable"])')
[ -x "$it" ] || { echo "chat-core's integration test binary not found" >&2; exit 1; }
(cd chat-core && CHAT_TEST_STORE=redis "$it" \
  auth:: groups:: history:: limits:: messages:: metrics:: presence:: receipts:: shutdown:: eio3:: \
  webhooks:: seams:: archive:: contacts:: status:: group_admin::)

export CHAT_SERVER_BIN="$PWD/target/debug/chat-server"

step "end-to-end tests (socket.io-client against chat-server)"
[ -d e2e/node_modules/socket.io-client-v2 ] || npm --prefix e2e ci --no-audit --no-fund
npm --prefix e2e test

step "python-socketio 4.x (Engine.IO 3) against chat-server"
[ -x e2e/python/.venv/bin/python ] || {
  python3 -m venv e2e/python/.venv
  e2e/python/.venv/bin/pip install -q -r e2e/python/requirements.txt
}
node --test e2e/python/

step "fault run, short: faults at random over a real cluster, then the history checker"
node --test e2e/chaos/check.test.mjs
scripts/chaos.sh --short --no-build --archive

step "web client: build and browser tests"
[ -d web-client/node_modules ] || npm --prefix web-client ci --no-audit --no-fund
npm --prefix web-client run build
npm --prefix web-client test

step "all tests passed"
