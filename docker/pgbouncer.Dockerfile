# PgBouncer from Debian trixie's own package, in transaction pooling mode, between the API replicas (and the
# mail workers) and Postgres in compose.swarm.yaml. Its configuration is written at every start by
# pgbouncer-entrypoint.sh from the environment and the database password's secret file.
FROM debian:trixie-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends pgbouncer \
    && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 pgbouncer-entrypoint.sh /usr/local/bin/pgbouncer-entrypoint
USER postgres
EXPOSE 6432
# Bash's /dev/tcp: PgBouncer accepts connections (pg_isready would need the Postgres client package).
HEALTHCHECK --interval=3s --timeout=2s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/6432"]
ENTRYPOINT ["/usr/local/bin/pgbouncer-entrypoint"]
