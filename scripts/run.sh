#!/usr/bin/env bash
# Starts the chat in embedded mode (one process, in memory): http://localhost:3000
# Builds the web client first if needed. Extra CHAT_* variables pass through (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f web-client/dist/index.html ] || [ -n "$(find web-client/src web-client/index.html -newer web-client/dist/index.html 2>/dev/null | head -1)" ]; then
  echo "building the web client..."
  [ -d web-client/node_modules ] || npm --prefix web-client ci --no-audit --no-fund
  npm --prefix web-client run build
fi
export CHAT_WEB_DIR="${CHAT_WEB_DIR:-web-client/dist}"
exec cargo run --release -p chat-server
