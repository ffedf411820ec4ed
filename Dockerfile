# The chat binaries (chat-server, chat-registry, chat-health) in one image.
#
#   docker build -t chat .                       # build in Docker (target `chat`, the default)
#   cargo build --release --workspace && \
#     docker build --target runtime -t chat .    # package binaries built on this machine
#
# Run one binary per container: `docker run chat` is a chat-server (embedded mode),
# `docker run chat chat-registry` a registry, `docker run chat chat-health` a health checker;
# configuration comes from CHAT_* variables (README, docs/registry.md). compose.yaml runs the
# whole cluster on this image.
#
# Stages: `base` (slim Debian, non-root user, healthcheck), `runtime` (base + host binaries),
# `deps` and `build` (official Rust image; dependencies compile in their own layer, so a
# source change rebuilds only the workspace crates), `chat` (base + built binaries).
# `runtime` comes before the Rust stages so that the classic builder, which builds every
# stage up to the target, never needs the Rust image for it. BuildKit (Docker 23+,
# `docker compose`) skips stages the target does not use; the classic builder (e.g.
# docker-compose 1.29 without BuildKit) builds `runtime` on the way to `chat`, so there run
# `cargo build --release --workspace` first.
#
# Host binaries must be linked against a glibc no newer than the runtime's (Debian 12:
# 2.36), e.g. built on Debian 12 or Ubuntu 22.04.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS base
RUN groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid chat --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin chat
COPY deploy/docker/chat-healthz /usr/local/bin/chat-healthz
USER chat:chat
# chat-server 3000, chat-registry 8080, chat-health 8090 (each moves with CHAT_LISTEN).
EXPOSE 3000 8080 8090
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["chat-healthz"]
# SIGTERM drains a chat-server (clients get `drain` and move) within CHAT_DRAIN_TIMEOUT
# (default 10s): give containers a longer stop timeout than that.
STOPSIGNAL SIGTERM
CMD ["chat-server"]

# Binaries built on the host: `cargo build --release --workspace`; .dockerignore lets exactly
# these in. (scripts/compose-smoke.sh --debug passes PROFILE=debug with a context of its own.)
FROM base AS runtime
ARG PROFILE=release
COPY target/${PROFILE}/chat-server target/${PROFILE}/chat-registry target/${PROFILE}/chat-health /usr/local/bin/

# Keep the manifests below in step with the workspace members of Cargo.toml.
FROM ${RUST_IMAGE} AS deps
WORKDIR /src
# The toolchain of the image; rust-toolchain.toml would make rustup download rustfmt and
# clippy, which a build does not need.
ENV CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
COPY Cargo.toml Cargo.lock ./
# Patched dependencies ([patch.crates-io] in Cargo.toml, vendor/README.md).
COPY vendor vendor
COPY chat-core/Cargo.toml chat-core/
COPY chat-env/Cargo.toml chat-env/
COPY chat-server/Cargo.toml chat-server/
COPY chat-registry/Cargo.toml chat-registry/
COPY chat-health/Cargo.toml chat-health/
COPY chat-testing/Cargo.toml chat-testing/
COPY chat-archive/Cargo.toml chat-archive/
COPY examples/embed/Cargo.toml examples/embed/
# Empty crates with the real manifests: this layer holds every compiled dependency and is
# reused until Cargo.toml or Cargo.lock change.
RUN for lib in chat-core chat-env chat-server chat-registry chat-health chat-testing chat-archive examples/embed; do \
      mkdir -p "$lib/src" && touch "$lib/src/lib.rs"; done \
 && for bin in chat-server chat-registry chat-health; do echo 'fn main() {}' > "$bin/src/main.rs"; done \
 && cargo build --release --locked -p chat-server -p chat-registry -p chat-health \
 && rm -rf chat-*/src examples/embed/src target/release/chat-* target/release/deps/chat_* \
      target/release/deps/libchat_* target/release/.fingerprint/chat-*

FROM deps AS build
COPY chat-core chat-core
COPY chat-env chat-env
COPY chat-server chat-server
COPY chat-registry chat-registry
COPY chat-health chat-health
COPY chat-testing chat-testing
COPY chat-archive chat-archive
COPY examples/embed examples/embed
# chat-testing (test support), chat-archive (not wired into chat-server yet) and examples/embed
# complete the workspace; nothing of them is built.
RUN cargo build --release --locked -p chat-server -p chat-registry -p chat-health --bins

FROM base AS chat
COPY --from=build /src/target/release/chat-server /src/target/release/chat-registry /src/target/release/chat-health /usr/local/bin/
