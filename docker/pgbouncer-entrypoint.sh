#!/bin/sh
# Writes PgBouncer's configuration to /tmp (the root filesystem is read-only) and execs it as PID 1.
#   PGBOUNCER_DATABASE      the database clients ask for, and its name on the server (POSTGRES_DB)
#   PGBOUNCER_SERVER_HOST   Postgres: a name, looked up here (libc, Docker's DNS) and written into the
#                           configuration as an address; a watcher looks again every 2 s and reloads
#                           PgBouncer (SIGHUP) when the address changes (a restarted Postgres task)
#   PGBOUNCER_USER          the one role clients log in as (the application role, POSTGRES_USER)
#   PGBOUNCER_PASSWORD_FILE that role's password (a secret file); PgBouncer checks clients with SCRAM and
#                           logs in to Postgres with SCRAM using it
# Pool sizes: PGBOUNCER_DEFAULT_POOL_SIZE server connections per database/user, PGBOUNCER_MAX_CLIENT_CONN.
set -eu
database=${PGBOUNCER_DATABASE:?PGBOUNCER_DATABASE must be set}
server=${PGBOUNCER_SERVER_HOST:?PGBOUNCER_SERVER_HOST must be set}
user=${PGBOUNCER_USER:?PGBOUNCER_USER must be set}
password_file=${PGBOUNCER_PASSWORD_FILE:?PGBOUNCER_PASSWORD_FILE must be set}
[ -r "$password_file" ] || { echo "pgbouncer-entrypoint: cannot read $password_file" >&2; exit 1; }

config=/tmp/pgbouncer
mkdir -p "$config"
umask 077

# PgBouncer's own resolver (c-ares here) kept the old address of a restarted Postgres task for minutes,
# measured by `make scale-check` (check 6), a known class of PgBouncer DNS problems; so the name is
# resolved by libc, as every other client here does, and PgBouncer is given the address.
address_of() { getent ahostsv4 "$1" | awk 'NR == 1 { print $1 }'; }
address=$(address_of "$server")
until [ -n "$address" ]; do
  echo "pgbouncer-entrypoint: waiting for $server to resolve"
  sleep 1
  address=$(address_of "$server")
done
# userlist.txt: "name" "password"; a double quote inside is doubled.
password=$(cat "$password_file")
printf '"%s" "%s"\n' "$user" "$(printf '%s' "$password" | sed 's/"/""/g')" > "$config/userlist.txt"
write_config() {
cat > "$config/pgbouncer.ini" <<INI
[databases]
$database = host=$1 port=${PGBOUNCER_SERVER_PORT:-5432} dbname=$database

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $config/userlist.txt
; Transaction pooling: a server connection belongs to a client for one transaction only. pyauth runs with
; DB_PGBOUNCER=true (no prepared statement reused across transactions); its advisory locks are all
; transaction-scoped (pg_advisory_xact_lock) and its SET is SET LOCAL, which both end with the transaction.
pool_mode = transaction
; Named protocol-level prepared statements (SQLAlchemy's, uniquely named) are tracked and re-prepared on
; whichever server connection serves the next transaction.
max_prepared_statements = 200
default_pool_size = ${PGBOUNCER_DEFAULT_POOL_SIZE:-20}
max_client_conn = ${PGBOUNCER_MAX_CLIENT_CONN:-500}
; A restarted Postgres comes back soon: retry the login quickly.
server_login_retry = 1
server_connect_timeout = 3
query_wait_timeout = 10
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
admin_users =
INI
}
write_config "$address"

# The watcher: a child of this shell, which becomes PgBouncer (PID 1) by exec below; it ends with it.
(
  current=$address
  while sleep 2; do
    found=$(address_of "$server")
    if [ -n "$found" ] && [ "$found" != "$current" ]; then
      write_config "$found"
      kill -HUP 1
      echo "pgbouncer-entrypoint: $server is now at $found (was $current): configuration reloaded"
      current=$found
    fi
  done
) &
exec pgbouncer "$config/pgbouncer.ini"
