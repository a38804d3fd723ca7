# Postgres 17 from Debian trixie's own packages (no registry needed).
# Sets up its superuser (POSTGRES_ADMIN_*), the schema owner (POSTGRES_OWNER_*), the application role
# (POSTGRES_USER/POSTGRES_PASSWORD) and POSTGRES_DB on every start (postgres-entrypoint.sh), keeps its data
# in /var/lib/postgresql/data, runs as `postgres` (uid 100, gid 102: the volumes' files and the socket
# tmpfs in compose.yaml are theirs; the build fails if the package ever picks others), asks for
# scram-sha-256 passwords over TCP, and trusts its local socket in /var/run/postgresql as the usual image
# does, for each role where it may connect (`docker compose exec db psql -U pyauth`).

FROM debian:trixie-slim
ENV DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/lib/postgresql/17/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
# No default cluster: the entrypoint makes its own in PGDATA from the environment.
RUN mkdir -p /etc/postgresql-common \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-17 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
    && install -d -o postgres -g postgres -m 2775 /var/run/postgresql \
    && test "$(id -u postgres):$(id -g postgres)" = 100:102
COPY --chmod=0755 postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
COPY --chmod=0644 postgres-roles.sql /usr/local/share/pyauth/postgres-roles.sql
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
CMD ["postgres"]
