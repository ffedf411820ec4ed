# Stand-in for the official `postgres` image, for scripts/compose-smoke.sh where no image
# registry is reachable: Debian's PostgreSQL (15 on bookworm) on a local Debian root
# filesystem. What compose.yaml relies on is the same: POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB creating the cluster on first start in PGDATA (/var/lib/postgresql/data),
# password (scram-sha-256) logins from any address, `postgres` as the command with server
# options after it (`postgres -c listen_addresses=...`), pg_isready for the healthcheck
# (postgres-entrypoint.sh).
ARG BASE=chat-smoke/debian:local
FROM ${BASE}
# No cluster of Debian's own (pg_createcluster): the entrypoint makes the one in PGDATA.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/lib/postgresql/*/bin/* /usr/local/bin/ \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
# SIGINT: PostgreSQL's fast shutdown, as the official image.
STOPSIGNAL SIGINT
ENTRYPOINT ["sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
