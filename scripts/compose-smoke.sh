#!/usr/bin/env bash
# Runs the real compose.yaml here, and checks with the official socket.io-client that the chat
# works across nodes, survives a Redis master failover without losing an acked message, and
# archives every message in PostgreSQL (history past what Redis keeps, search).
#
#   scripts/compose-smoke.sh [--debug] [--no-build] [--network host|bridge] [--no-failover]
#                            [--keep] [--rebuild-base]
#
#   --debug          package target/debug binaries (default: cargo build --release)
#   --no-build       do not run cargo/npm; use the binaries and web-client/dist as they are
#   --network host   (default) every container on the host's network, on 127.0.0.1 ports
#                    (deploy/smoke/compose.host.yaml): for engines without a bridge network
#   --network bridge compose.yaml's own network and published ports; only images change.
#                    Sentinel needs a quick answer for the name of a stopped container: where
#                    containers cannot reach a DNS server, add --no-failover
#   --no-failover    skip stopping the Redis master
#   --keep           leave the cluster running (stop it with the command it prints)
#   --rebuild-base   rebuild the stand-in base images even if they exist
#
# No image registry is needed. Stand-in base images are built once and cached: a Debian root
# filesystem from debootstrap (the mirror of this machine's apt sources; tarball cached in
# $CHAT_SMOKE_CACHE, default /var/cache/chat-smoke), imported with `docker import`, and Redis,
# nginx, Prometheus and PostgreSQL installed into it from Debian packages
# (deploy/smoke/*.Dockerfile; rebuilt when one changes). The chat and web images are the
# `runtime` stages of Dockerfile and deploy/web/Dockerfile, fed with the binaries and web page
# built on this machine. Then compose.yaml runs with deploy/smoke/compose.images.yaml (the
# images) and, by default, compose.host.yaml, with CHAT_HISTORY_MAX=100, and
# deploy/smoke/client.mjs checks it: web page, health checker, registry through nginx, chat
# across two nodes, `stop redis-1` under traffic, history and delivery of every acked message,
# the old master back as a replica; deploy/smoke/ops.mjs the ip_hash front and Prometheus;
# deploy/smoke/archive.mjs the archive: 120 messages in one DM, the oldest 20 trimmed from
# Redis, all of them in the history another node reads, found by `search`. Everything is
# removed at the end (containers, volumes).
#
# Needs: a running Docker engine, Compose (`docker compose` or `docker-compose`), node/npm,
# cargo (unless --no-build), root or debootstrap for the first run (apt-get install debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'compose-smoke: %s\n' "$*" >&2; exit 1; }
t_start=$SECONDS
step() { printf '\n==> [%3ds] %s\n' $((SECONDS - t_start)) "$*"; }

profile=release
build=1
network=host
keep=0
rebuild_base=0
failover=1
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    --network) network=${2:-}; shift ;;
    --network=*) network=${1#--network=} ;;
    --keep) keep=1 ;;
    --no-failover) failover=0 ;;
    --rebuild-base) rebuild_base=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
case "$network" in host | bridge) ;; *) die "--network is host or bridge" ;; esac

cache=${CHAT_SMOKE_CACHE:-/var/cache/chat-smoke}
project=chatsmoke
img_debian=chat-smoke/debian:local
# The stand-ins for the official images: chat-smoke/<name>:local from deploy/smoke/<name>.Dockerfile.
standins=(redis nginx prometheus postgres)
img_nginx=chat-smoke/nginx:local
img_chat=chat-smoke/chat:runtime
img_web=chat-smoke/web:runtime
# The stand-ins build FROM local images only, which the classic builder does everywhere.
export DOCKER_BUILDKIT=0

# --- tools ---------------------------------------------------------------------------------
command -v docker >/dev/null || die "docker is missing (apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (start dockerd; see .ci/run)"
if docker compose version >/dev/null 2>&1; then
  compose_bin=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose_bin=(docker-compose)
else
  die "Docker Compose is missing (Debian: apt-get install docker-compose)"
fi
command -v node >/dev/null || die "node is missing"
[ -d e2e/node_modules/socket.io-client ] || npm --prefix e2e ci --no-audit --no-fund

files=(-f compose.yaml -f deploy/smoke/compose.images.yaml)
[ "$network" = host ] && files+=(-f deploy/smoke/compose.host.yaml)
compose=("${compose_bin[@]}" -p "$project" "${files[@]}")

work=$(mktemp -d)
export CHAT_SMOKE_DIR=$work
# A local .env must not turn on token auth or the admin API for the test users.
export CHAT_AUTH_SECRET='' CHAT_ADMIN_TOKEN='' CHAT_CORS_ORIGINS=''
# Redis keeps 100 messages a conversation: archive.mjs sends 120, and history and search have
# to find the oldest 20 in PostgreSQL. (client.mjs's DM stays under 100: its messages that a
# failover kept from being delivered live must still be in Redis for `sync`.)
history_max=100
export CHAT_HISTORY_MAX=$history_max CHAT_SEARCH_LANGUAGE=simple
# The optional nginx ip_hash front (compose profile iphash) is smoke-tested too.
export COMPOSE_PROFILES=iphash

up=0
dump_logs() {
  echo "--- containers"
  docker ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}\t{{.Status}}' || true
  echo "--- last log lines of each service"
  "${compose[@]}" logs --no-color --tail=25 2>&1 || true
}
finish() {
  local code=$?
  if [ "$up" = 1 ]; then
    if [ $code -ne 0 ]; then dump_logs; fi
    if [ "$keep" = 1 ] && [ $code -eq 0 ]; then
      printf '\nLeft running. Stop it with:\n  CHAT_SMOKE_DIR=%q %s down -v\n' "$work" "$(printf '%q ' "${compose[@]}")"
    else
      step "tearing down"
      "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    fi
  fi
  if [ "$keep" = 0 ] || [ $code -ne 0 ]; then rm -rf "$work"; fi
  if [ $code -eq 0 ]; then step "smoke test passed"; else printf '\ncompose-smoke: FAILED (exit %d)\n' $code >&2; fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ports ---------------------------------------------------------------------------------
if [ "$network" = host ]; then
  ports=(5432 6379 6380 6381 26379 26380 26381 3000 3001 3002 3003 8000 8080 8081 8082 8090 9090)
else
  ports=(5432 3000 3001 3002 3003 8000 8080 8090 9090)
fi
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
for port in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port on 127.0.0.1 is taken (scripts/cluster.sh running?)"
  fi
done

# --- stand-in base images (cached) ---------------------------------------------------------
# The first deb mirror of this machine's apt sources that serves $1 (deb822 or one-line).
apt_mirror() {
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; enabled = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = $i
          else if ($i ~ /^URIs:/) uris = $i
          else if ($i ~ /^Suites:/) suites = $i
          else if ($i ~ /^Enabled:/) enabled = $i
        }
        if (types ~ /[ \t]deb([ \t]|$)/ && enabled !~ /no/ && (suites " ") ~ ("[ \t]" suite "[ \t]")) {
          sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]; exit
        }
      }' "$f"
  done
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
    awk -v suite="$suite" '$1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit }
    }'
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# build_image NAME ARGS...: `docker build ARGS`, its output shown only if it fails.
build_image() {
  local log=$work/build-$1.log
  shift
  if ! docker build "$@" >"$log" 2>&1; then
    cat "$log" >&2
    die "docker build $* failed"
  fi
}

# What a stand-in is built from (its Dockerfile and deploy/smoke/<name>-* files), as a hash
# in the image's label chat-smoke.source: an image built from other files is built again.
standin_source() {
  local f
  for f in "deploy/smoke/$1.Dockerfile" deploy/smoke/"$1"-*; do
    if [ -f "$f" ]; then cat "$f"; fi
  done | sha256sum | cut -c1-16
}
stale=()
for name in "${standins[@]}"; do
  if [ "$rebuild_base" = 1 ] || [ "$(docker image inspect -f '{{index .Config.Labels "chat-smoke.source"}}' \
    "chat-smoke/$name:local" 2>/dev/null)" != "$(standin_source "$name")" ]; then
    stale+=("$name")
  fi
done
if [ "$rebuild_base" = 1 ] || ! have_image "$img_debian" || [ ${#stale[@]} -gt 0 ]; then
  step "stand-in base images"
  suite=bookworm
  # shellcheck disable=SC1091
  if [ -r /etc/os-release ] && [ "$(. /etc/os-release && echo "${ID:-}")" = debian ]; then
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  fi
  tarball=$cache/debian-$suite-minbase.tar
  if [ "$rebuild_base" = 1 ] || ! have_image "$img_debian"; then
    if [ ! -s "$tarball" ] || [ "$rebuild_base" = 1 ]; then
      mirror=${CHAT_SMOKE_MIRROR:-$(apt_mirror "$suite" | head -n 1 || true)}
      mirror=${mirror:-http://deb.debian.org/debian}
      if ! command -v debootstrap >/dev/null; then
        [ "$(id -u)" = 0 ] || die "debootstrap is missing (apt-get install debootstrap)"
        echo "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
          { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
      fi
      mkdir -p "$cache"
      rm -rf "$cache"/rootfs.* # left by an interrupted run
      rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
      echo "debootstrap $suite from $mirror (about a minute; log: $cache/debootstrap.log)"
      if ! debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1; then
        tail -n 20 "$cache/debootstrap.log" >&2
        rm -rf "$rootfs"
        die "debootstrap failed"
      fi
      rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
      tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$rootfs"
    fi
    echo "importing $tarball as $img_debian"
    docker import --change 'CMD ["bash"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      "$tarball" "$img_debian" >/dev/null
    stale=("${standins[@]}") # on the new base
  fi
  for name in "${stale[@]}"; do
    img=chat-smoke/$name:local
    echo "building $img (Debian packages from the mirror)"
    build_image "$name" --network host --build-arg "BASE=$img_debian" -f "deploy/smoke/$name.Dockerfile" \
      --label "chat-smoke.source=$(standin_source "$name")" -t "$img" deploy/smoke
  done
fi

# --- images from this machine's build ------------------------------------------------------
if [ "$build" = 1 ]; then
  step "building the binaries ($profile) and the web page"
  if [ "$profile" = release ]; then cargo build --release --workspace --locked; else cargo build --workspace --locked; fi
  if [ ! -f web-client/dist/index.html ] || [ -n "$(find web-client/src web-client/index.html -newer web-client/dist/index.html 2>/dev/null | head -1)" ]; then
    [ -d web-client/node_modules ] || npm --prefix web-client ci --no-audit --no-fund
    npm --prefix web-client run build
  fi
fi
for b in chat-server chat-registry chat-health; do
  [ -x "target/$profile/$b" ] || die "target/$profile/$b is missing (run without --no-build)"
done
[ -f web-client/dist/index.html ] || die "web-client/dist is missing (run without --no-build)"

step "images $img_chat and $img_web (the runtime stages, with this machine's build)"
# Small build contexts laid out like the repository: the binaries (without symbols) and the
# page, not the whole target/ directory.
ctx=$work/ctx-chat
mkdir -p "$ctx/target/$profile" "$ctx/deploy/docker"
for b in chat-server chat-registry chat-health; do
  strip -o "$ctx/target/$profile/$b" "target/$profile/$b" 2>/dev/null || cp "target/$profile/$b" "$ctx/target/$profile/$b"
done
cp deploy/docker/chat-healthz "$ctx/deploy/docker/"
build_image chat --network none --target runtime --build-arg "DEBIAN_IMAGE=$img_debian" \
  --build-arg "PROFILE=$profile" -f Dockerfile -t "$img_chat" "$ctx"
ctx=$work/ctx-web
mkdir -p "$ctx/web-client" "$ctx/deploy/nginx"
cp -r web-client/dist "$ctx/web-client/"
cp deploy/nginx/web.conf "$ctx/deploy/nginx/"
build_image web --network none --target runtime --build-arg "NGINX_IMAGE=$img_nginx" \
  -f deploy/web/Dockerfile -t "$img_web" "$ctx"

# --- up ------------------------------------------------------------------------------------
if [ "$network" = host ]; then
  # The real nginx configs, with the listen and upstream addresses of compose.host.yaml.
  sed -e 's/^\( *\)listen 80;/\1listen 127.0.0.1:8080;/' -e '/listen \[::\]:80;/d' \
    -e 's/server registry-1:8080/server 127.0.0.1:8081/' -e 's/server registry-2:8080/server 127.0.0.1:8082/' \
    deploy/nginx/registry.conf >"$work/registry.conf"
  sed -e 's/^\( *\)listen 80;/\1listen 127.0.0.1:3000;/' deploy/nginx/web.conf >"$work/web.conf"
  sed -e 's/^\( *\)listen 80;/\1listen 127.0.0.1:8000;/' -e '/listen \[::\]:80;/d' \
    -e 's/server chat-\([123]\)\.localhost:/server 127.0.0.1:/' deploy/nginx/ip-hash.conf >"$work/ip-hash.conf"
  sed -e 's/chat-[123]\.localhost:/127.0.0.1:/g' -e 's/registry-1:8080/127.0.0.1:8081/' \
    -e 's/registry-2:8080/127.0.0.1:8082/' -e 's/health:8090/127.0.0.1:8090/' \
    deploy/prometheus/prometheus.yml >"$work/prometheus.yml"
  if ! grep -q 'listen 127.0.0.1:8000;' "$work/ip-hash.conf" || grep -q 'localhost' "$work/ip-hash.conf" ||
    grep -qE 'localhost|registry-|health:' "$work/prometheus.yml"; then
    die "deploy/nginx/ip-hash.conf or deploy/prometheus/prometheus.yml changed shape: update the rewrite in $0"
  fi
  if ! grep -q 'listen 127.0.0.1:8080;' "$work/registry.conf" || ! grep -q 'server 127.0.0.1:8082' "$work/registry.conf" ||
    grep -qE 'listen (\[::\]:)?80;|registry-[12]:' "$work/registry.conf" || ! grep -q 'listen 127.0.0.1:3000;' "$work/web.conf"; then
    die "deploy/nginx/*.conf changed shape: update the rewrite in $0"
  fi
fi

step "docker compose up ($network network)"
"${compose[@]}" config -q
if [ "$network" = host ]; then
  # Published ports mean nothing on the host network, and Compose cannot remove a list
  # through an override: run the merged file without them.
  "${compose[@]}" config >"$work/merged.yaml"
  awk '
    /^  [^ ]/ { in_ports = 0 }
    /^    ports:/ { in_ports = 1; next }
    in_ports && (/^    - / || /^      /) { next }
    { in_ports = 0; print }
  ' "$work/merged.yaml" >"$work/compose.yaml"
  ! grep -q '^    ports:' "$work/compose.yaml" || die "could not drop the published ports"
  compose=("${compose_bin[@]}" -p "$project" --project-directory "$PWD" -f "$work/compose.yaml")
  "${compose[@]}" config -q
fi
up=1
if ! "${compose[@]}" up -d --no-build >"$work/up.log" 2>&1; then
  cat "$work/up.log" >&2
  die "compose up failed"
fi

expected=$("${compose[@]}" config --services | wc -l)
deadline=$((SECONDS + 180))
while :; do
  mapfile -t states < <(docker ps -aq --filter "label=com.docker.compose.project=$project" |
    xargs -r docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}')
  healthy=0
  for s in "${states[@]}"; do
    read -r svc status health <<<"$s"
    case "$status $health" in
      "running healthy") healthy=$((healthy + 1)) ;;
      exited* | dead*) die "$svc stopped ($status) before it became healthy" ;;
    esac
  done
  [ "$healthy" -eq "$expected" ] && [ "${#states[@]}" -eq "$expected" ] && break
  [ $SECONDS -lt $deadline ] || die "only $healthy of $expected services healthy after 180s"
  sleep 1
done
echo "all $expected services healthy"
"${compose[@]}" ps

# --- the checks ----------------------------------------------------------------------------
step "socket.io-client: registry pick, chat across nodes$([ "$failover" = 1 ] && echo ", Redis master failover")"
cid() { docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1"; }
quoted=$(printf '%q ' "${compose[@]}")
failover_cmd='' restart_cmd=''
if [ "$failover" = 1 ]; then
  failover_cmd="$quoted stop redis-1"
  restart_cmd="$quoted start redis-1"
fi
SMOKE_REGISTRY=http://127.0.0.1:8080 \
  SMOKE_WEB=http://127.0.0.1:3000 \
  SMOKE_HEALTH=http://127.0.0.1:8090 \
  SMOKE_MASTER_CMD="docker exec $(cid sentinel-1) redis-cli -p 26379 sentinel get-master-addr-by-name mymaster" \
  SMOKE_FAILOVER_CMD="$failover_cmd" \
  SMOKE_RESTART_CMD="$restart_cmd" \
  SMOKE_ROLE_CMD="docker exec $(cid redis-1) redis-cli -p 6379 role" \
  node deploy/smoke/client.mjs

step "ip_hash front (polling and WebSocket) and Prometheus (targets, rules, counters)"
SMOKE_FRONT=http://127.0.0.1:8000 \
  SMOKE_NODES=http://127.0.0.1:3001,http://127.0.0.1:3002,http://127.0.0.1:3003 \
  SMOKE_PROMETHEUS=http://127.0.0.1:9090 \
  node deploy/smoke/ops.mjs

step "archive: history past Redis (CHAT_HISTORY_MAX=$history_max) from PostgreSQL, search"
SMOKE_NODES=http://127.0.0.1:3001,http://127.0.0.1:3002,http://127.0.0.1:3003 \
  SMOKE_HISTORY_MAX=$history_max \
  SMOKE_REDIS_CMD="docker exec $(cid redis-1) redis-cli -p 6379" \
  node deploy/smoke/archive.mjs
