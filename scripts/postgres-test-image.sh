#!/usr/bin/env bash
# Builds the Docker image the PostgreSQL integration tests run (chat-testing/src/postgres.rs)
# from this machine's PostgreSQL, for machines that cannot pull `postgres` from a registry.
#
#   scripts/postgres-test-image.sh [TAG] [--force]
#
# TAG defaults to chat-test-postgres:local (the tests' default; CHAT_TEST_POSTGRES_IMAGE
# overrides it). Nothing is pulled: the image is a tarball of the host's PostgreSQL server
# (/usr/lib/postgresql/<v>, /usr/share/postgresql/<v>), /bin/sh, the time zone data and the
# shared libraries `ldd` lists, imported FROM scratch, with a `postgres` user. Debian:
# apt-get install postgresql (.ci/run does). Skips the build when TAG exists, unless --force.
set -euo pipefail

die() { printf 'postgres-test-image: %s\n' "$*" >&2; exit 1; }

tag=chat-test-postgres:local
force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option $arg (usage: $0 [TAG] [--force])" ;;
    *) tag=$arg ;;
  esac
done

command -v docker >/dev/null 2>&1 || die "docker is missing: install docker.io (.ci/run does)"
docker info >/dev/null 2>&1 || die "the docker engine does not answer: start dockerd (.ci/run does)"
command -v ldd >/dev/null 2>&1 || die "ldd is missing"
# The newest server installed: /usr/lib/postgresql/<version>/bin/postgres.
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] && [ -x "$bin/postgres" ] || die "no PostgreSQL server found: install postgresql (.ci/run does)"
version=$(basename "$(dirname "$bin")")
share=/usr/share/postgresql/$version
[ -d "$share" ] || die "$share is missing"

old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
if [ -n "$old_id" ] && [ "$force" = 0 ]; then
  echo "postgres-test-image: $tag exists (use --force to rebuild)"
  exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql" "$root/usr/share" "$root/bin" \
  "$root/tmp" "$root/etc" "$root/var/run/postgresql"
chmod 1777 "$root/tmp" "$root/var/run/postgresql"
cp -a "$(dirname "$bin")" "$root/usr/lib/postgresql/"
cp -a "$share" "$root/usr/share/postgresql/"
[ -d /usr/share/zoneinfo ] && cp -a /usr/share/zoneinfo "$root/usr/share/"
# initdb runs the server through the shell.
cp -L /bin/sh "$root/bin/sh"

# Every library the server, its tools and its modules (text search dictionaries, PL/pgSQL)
# load, at the path the loader looks for it.
libs=$(
  for f in "$bin/postgres" "$bin/initdb" "$bin/pg_ctl" /bin/sh "$(dirname "$bin")"/lib/*.so; do
    [ -e "$f" ] || continue
    ldd "$f" 2>/dev/null || true
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
  [ -e "$root$lib" ] && continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done <<<"$libs"
[ -e /etc/ld.so.cache ] && cp /etc/ld.so.cache "$root/etc/"
printf 'root:x:0:0:root:/tmp:/nonexistent\npostgres:x:999:999:postgres:/tmp:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\npostgres:x:999:\n' >"$root/etc/group"

echo "postgres-test-image: building $tag from $bin (PostgreSQL $version, $(wc -l <<<"$libs") libraries)"
tar -C "$root" --owner=0 --group=0 --numeric-owner -cf - . |
  docker import \
    --change "ENV PATH=$bin:/bin" \
    --change 'ENV TZ=UTC' \
    --change 'USER postgres' \
    --change 'WORKDIR /tmp' \
    --change 'EXPOSE 5432' \
    --change 'CMD ["postgres", "--version"]' \
    --change "LABEL org.opencontainers.image.description=\"PostgreSQL $version from the host, for chat tests\"" \
    --message "PostgreSQL $version from $bin" \
    - "$tag" >/dev/null

# Smoke test: the loader finds every library, and a cluster initialises.
docker run --rm --network none "$tag" sh -c 'initdb -D /tmp/pg -U postgres --auth=trust -E UTF8 --locale=C >/dev/null && postgres --version' >/dev/null ||
  die "the new image $tag cannot initialise a database"

new_id=$(docker image inspect --format '{{.Id}}' "$tag")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "postgres-test-image: built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}'))"
