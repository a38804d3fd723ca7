#!/bin/sh
# The db container's entrypoint. Three roles (README, "Database roles"):
#   POSTGRES_ADMIN_USER  the bootstrap superuser: only this script uses it, to create and upgrade the others;
#   POSTGRES_OWNER_USER  owns POSTGRES_DB and its schema; the migrate service runs Alembic as it;
#   POSTGRES_USER        the api and worker: no superuser, no ownership, only the rights migration 0010 grants.
# First start: initdb with the admin, accept scram-sha-256 over TCP. Every start: set up the roles and the
# database (idempotent, see postgres-roles.sql) on a server that listens only on a private socket, then
# exec postgres as PID 1 so that SIGINT/SIGTERM reach it and it stops cleanly.
#
# A volume made before the roles existed has POSTGRES_USER as its bootstrap superuser, owning everything.
# Postgres cannot take superuser from the bootstrap role, so it is renamed to POSTGRES_ADMIN_USER, a new
# POSTGRES_USER is made, and every object is handed to the owner: the data stays where it is.
set -eu

# A password may come from a file instead (NAME_FILE: a Docker or Swarm secret under /run/secrets), as
# with the usual Postgres image; setting both is refused.
for name in POSTGRES_ADMIN_PASSWORD POSTGRES_OWNER_PASSWORD POSTGRES_PASSWORD; do
  eval "file=\${${name}_FILE:-}"
  [ -n "$file" ] || continue
  eval "plain=\${${name}:-}"
  if [ -n "$plain" ]; then
    echo "postgres-entrypoint: $name and ${name}_FILE are both set: set only one" >&2
    exit 1
  fi
  [ -r "$file" ] || { echo "postgres-entrypoint: ${name}_FILE: cannot read $file" >&2; exit 1; }
  export "$name=$(cat "$file")"
  unset "${name}_FILE"
done

admin=${POSTGRES_ADMIN_USER:-postgres}
app=${POSTGRES_USER:?POSTGRES_USER must be set}
owner=${POSTGRES_OWNER_USER:?POSTGRES_OWNER_USER must be set}
database=${POSTGRES_DB:-$app}

initialise() {
  : "${POSTGRES_ADMIN_PASSWORD:?POSTGRES_ADMIN_PASSWORD must be set for the first start}"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_ADMIN_PASSWORD" > "$pwfile"
  initdb --pgdata="$PGDATA" --username="$admin" --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  {
    echo "listen_addresses = '*'"
    echo "password_encryption = 'scram-sha-256'"
  } >> "$PGDATA/postgresql.conf"
  echo "postgres-entrypoint: initialised $PGDATA with superuser $admin"
}

# psql on the private socket; the first argument is the role to connect as.
setup_psql() {
  role=$1
  shift
  psql -X -q -v ON_ERROR_STOP=1 -h "$setup_dir" -U "$role" "$@"
}

set_up_roles() {
  : "${POSTGRES_ADMIN_PASSWORD:?POSTGRES_ADMIN_PASSWORD must be set}"
  : "${POSTGRES_OWNER_PASSWORD:?POSTGRES_OWNER_PASSWORD must be set}"
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  for distinct in "$app" "$owner"; do
    if [ "$distinct" = "$admin" ]; then
      echo "postgres-entrypoint: POSTGRES_USER, POSTGRES_OWNER_USER and POSTGRES_ADMIN_USER must differ" >&2
      exit 1
    fi
  done
  if [ "$app" = "$owner" ]; then
    echo "postgres-entrypoint: POSTGRES_USER and POSTGRES_OWNER_USER must differ" >&2
    exit 1
  fi

  # Trust, but only on a socket in a directory only this container's postgres user can open, and only
  # while this server runs: it listens on no TCP port, so nothing else can reach it.
  setup_dir=$(mktemp -d /tmp/pyauth-setup.XXXXXX)
  printf 'local all all trust\n' > "$setup_dir/pg_hba.conf"
  trap 'pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$setup_dir"' EXIT
  trap 'exit 143' TERM INT
  # The server's own log goes to the container's (crash recovery after a kill shows there, too).
  pg_ctl -D "$PGDATA" -w -t 300 -o "-c listen_addresses='' -c unix_socket_directories='$setup_dir' \
    -c hba_file='$setup_dir/pg_hba.conf'" -s start

  bootstrap=$(setup_psql "$admin" -d postgres -Atc "SELECT rolname FROM pg_roles WHERE oid = 10" 2>/dev/null \
    || setup_psql "$app" -d postgres -Atc "SELECT rolname FROM pg_roles WHERE oid = 10")
  if [ "$bootstrap" != "$admin" ]; then
    # An old volume: its bootstrap superuser is POSTGRES_USER. A session cannot rename its own role, so a
    # short-lived superuser renames it to the admin.
    echo "postgres-entrypoint: upgrading an old volume: superuser $bootstrap becomes $admin"
    setup_psql "$bootstrap" -d postgres -v admin="$admin" <<'SQL'
SET pyauth_setup.admin = :'admin';
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = current_setting('pyauth_setup.admin')) THEN
    RAISE EXCEPTION 'a role named % exists already: set POSTGRES_ADMIN_USER to another name',
      current_setting('pyauth_setup.admin');
  END IF;
END
$$;
SET client_min_messages = warning;
DROP ROLE IF EXISTS pyauth_role_upgrade;
CREATE ROLE pyauth_role_upgrade LOGIN SUPERUSER;
SQL
    echo 'ALTER ROLE :"old" RENAME TO :"admin";' \
      | setup_psql pyauth_role_upgrade -d postgres -v old="$bootstrap" -v admin="$admin"
    echo 'DROP ROLE pyauth_role_upgrade;' | setup_psql "$admin" -d postgres
  fi

  # The passwords reach psql through its environment (\getenv), never its command line.
  setup_psql "$admin" -d postgres -f /usr/local/share/pyauth/postgres-roles.sql \
    -v admin="$admin" -v owner="$owner" -v app="$app" -v database="$database"

  pg_ctl -D "$PGDATA" -m fast -w -s stop
  trap - EXIT TERM INT
  rm -rf "$setup_dir"
  echo "postgres-entrypoint: roles ready: $owner owns $database, $app has the application's rights"
}

# The server's pg_hba.conf, written on every start from the roles (PGDATA/pg_hba.conf, from initdb, is not
# read), so an old volume gets the same rules as a new one. The local socket, reachable only inside this
# container (`docker compose exec db psql`), trusts each role where the roles setup lets it connect, as the
# usual Postgres image trusts local connections: the admin in every database, the owner and the
# application role in POSTGRES_DB only (the only database they may connect to). Over TCP every role gives
# its scram-sha-256 password.
hba_file=/tmp/pyauth-pg_hba.conf
write_hba() {
  umask 077
  cat > "$hba_file" <<HBA
# Written by postgres-entrypoint on every start of the db container.
local all "$admin" trust
local "$database" "$owner","$app" trust
host all all all scram-sha-256
HBA
  umask 022
}

if [ "${1:-}" = "postgres" ]; then
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initialise
  fi
  set_up_roles
  shift
  # The socket where every Postgres client looks for it, so that `docker compose exec db psql -U pyauth`
  # works as with the usual image. The root filesystem is read-only in compose, which mounts a tmpfs
  # owned by postgres there; without one (a read-only run that did not) it falls back to /tmp.
  socket_dir=/var/run/postgresql
  if ! [ -w "$socket_dir" ]; then
    echo "postgres-entrypoint: $socket_dir is not writable: the socket goes to /tmp (psql -h /tmp)"
    socket_dir=/tmp
  fi
  write_hba
  exec postgres -D "$PGDATA" -c unix_socket_directories="$socket_dir" -c hba_file="$hba_file" "$@"
fi
exec "$@"
