#!/usr/bin/env bash
# Builds the Docker image the Redis integration tests run (chat-testing/src/redis/) from
# this machine's redis-server, for machines that cannot pull `redis:7` from a registry.
#
#   scripts/redis-test-image.sh [TAG] [--force]
#
# TAG defaults to chat-test-redis:local (the tests' default; CHAT_TEST_REDIS_IMAGE overrides it).
# Nothing is pulled: the image is a tarball of redis-server, redis-cli and the shared libraries
# `ldd` lists, imported FROM scratch. `redis-server --sentinel` and `redis-sentinel` work too
# (Debian's sentinel is the same binary). Skips the build when TAG exists, unless --force.
set -euo pipefail

die() { printf 'redis-test-image: %s\n' "$*" >&2; exit 1; }

tag=chat-test-redis:local
force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option $arg (usage: $0 [TAG] [--force])" ;;
    *) tag=$arg ;;
  esac
done

command -v docker >/dev/null 2>&1 || die "docker is missing: install docker.io (.ci/run does)"
docker info >/dev/null 2>&1 || die "the docker engine does not answer: start dockerd (.ci/run does)"
server=$(command -v redis-server) || die "redis-server is missing: install redis-server (.ci/run does)"
command -v ldd >/dev/null 2>&1 || die "ldd is missing"

old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
if [ -n "$old_id" ] && [ "$force" = 0 ]; then
  echo "redis-test-image: $tag exists (use --force to rebuild)"
  exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/data" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"

# Debian's /usr/bin/redis-server is a symlink to redis-check-rdb; Redis picks its mode from the
# name it is started as, so the copy must be called redis-server.
cp -L "$server" "$root/usr/local/bin/redis-server"
ln -s redis-server "$root/usr/local/bin/redis-sentinel"
bins=("$server")
if cli=$(command -v redis-cli); then
  cp -L "$cli" "$root/usr/local/bin/redis-cli"
  bins+=("$cli")
fi

# Every library the binaries load, at the path the loader looks for it.
libs=$(
  for bin in "${bins[@]}"; do
    ldd "$bin" || die "ldd $bin failed (is it a dynamic executable?)"
  done | awk '
    /not found/ { print "MISSING " $1; next }
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }
  ' | sort -u
)
if grep -q '^MISSING' <<<"$libs"; then
  die "libraries not found: $(grep '^MISSING' <<<"$libs" | cut -d' ' -f2 | tr '\n' ' ')"
fi
while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done <<<"$libs"
[ -e /etc/ld.so.cache ] && cp /etc/ld.so.cache "$root/etc/"
printf 'root:x:0:0:root:/data:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"

version=$("$server" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
echo "redis-test-image: building $tag from $server (redis $version, $(wc -l <<<"$libs") libraries)"
tar -C "$root" --owner=0 --group=0 --numeric-owner -cf - . |
  docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'WORKDIR /data' \
    --change 'EXPOSE 6379' \
    --change 'CMD ["redis-server"]' \
    --change "LABEL org.opencontainers.image.description=\"redis $version from the host, for chat tests\"" \
    --message "redis $version from $server" \
    - "$tag" >/dev/null

# Smoke test: the loader finds every library and both modes start.
docker run --rm --network none "$tag" redis-server --version >/dev/null ||
  die "the new image $tag cannot run redis-server"
docker run --rm --network none "$tag" redis-sentinel --version >/dev/null ||
  die "the new image $tag cannot run redis-sentinel"

new_id=$(docker image inspect --format '{{.Id}}' "$tag")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "redis-test-image: built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}'))"
