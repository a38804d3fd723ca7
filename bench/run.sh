#!/usr/bin/env bash
# `make bench`: measures the running stack (`make up` first) against the limits of this machine.
#
#  1. starts the API under test (bench-api: the api service, plus a trusted proxy for the load generator's
#     client addresses) and the ceilings, all from the api service's image and settings: the
#     constant-JSON, raw-SELECT and raw-rotation apps on the API's server options, the argon2id meter on
#     as many threads as the API hashes on, and the token-verification meter (pyauth-resource and PyJWT
#     alone, one core); the same API and argon2id meter again at issue 13's second parameter set (64 MiB,
#     t=3, p=4); and the side-by-side app, a plain FastAPI + SQLAlchemy `/users/me` (compose.bench.yaml).
#     All but bench-api have no healthcheck: the driver waits for each to answer, once;
#  2. runs bench/driver.py in the load-generator container, inside the compose network: it creates its
#     accounts through the API, measures each ceiling right before the scenarios it bounds, runs every
#     scenario with wrk, then open loop (bench/tail.py), reads the CPU counters of the containers named in
#     BENCH_CONTAINERS around each run, and writes bench/results/;
#  3. stops them and deletes the bench's accounts from the development database (also when
#     interrupted). Accounts are named bench-…@bench.example; nothing else is touched.
#
# The stack's mail worker is paused (docker pause: frozen, not stopped) from before the accounts are
# made until the cleanup has deleted their mails from the outbox, then unpaused: registering the bench's
# accounts queues a confirmation mail each, which the worker would otherwise deliver (MAIL_BACKEND=console:
# print, link included, to its logs). Other mail queued meanwhile waits and goes out once it resumes.
#
# Exit status: 1 when any run had errors, timeouts or no answer at all (the driver's gate; the ratio
# targets are a report), and whatever failed otherwise.
#
# Which stack: the compose project BENCH_PROJECT (else COMPOSE_PROJECT_NAME, else compose.yaml's `pyauth`),
# with its images PYAUTH_TAG; e.g. a stack of one's own, started beside the development one with
#   PYAUTH_TAG=me POSTGRES_PORT=25432 API_PORT=28000 docker compose -p pyauth-me \
#     -f compose.yaml -f compose.test.yaml up --build --detach --wait
#   BENCH_PROJECT=pyauth-me PYAUTH_TAG=me POSTGRES_PORT=25432 API_PORT=28000 make bench
# (the ports only keep compose from reading the development defaults; nothing of the bench is published).
# Some runs only: BENCH_SCENARIOS=login,login-mfa (see driver.py RUNS), written to bench/results/subset.*.
set -euo pipefail
cd "$(dirname "$0")/.."

project=${BENCH_PROJECT:-${COMPOSE_PROJECT_NAME:-pyauth}}
compose() {
  docker compose -p "$project" -f compose.yaml -f compose.test.yaml -f compose.bench.yaml --profile bench "$@"
}
log() { printf 'bench: %s\n' "$*"; }

# As the owner: the cleanup deletes audit rows, which the application role may not.
dev_psql() {
  compose exec -T db sh -c 'PGPASSWORD="$POSTGRES_OWNER_PASSWORD" psql -h 127.0.0.1 -U "$POSTGRES_OWNER_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -Atq' \
    < "$1"
}

# Requests still in flight when wrk stops finish afterwards; a cleanup that meets them can deadlock, so
# it waits and tries again.
delete_bench_data() {
  for attempt in 1 2 3; do
    dev_psql bench/cleanup.sql 2>/dev/null && return 0
    sleep $((attempt * 2))
  done
  dev_psql bench/cleanup.sql
}

# One bench at a time per stack: a second run's cleanup would stop the first one's services in mid-run.
exec 9>"${TMPDIR:-/tmp}/pyauth-bench-$project.lock"
if ! flock --nonblock 9; then
  echo "bench: another make bench is running on compose project '$project': wait until it has finished" >&2
  exit 1
fi

api=$(compose ps -q api 2>/dev/null || true)
if [ -z "$api" ] || [ "$(docker inspect --format '{{.State.Health.Status}}' "$api" 2>/dev/null)" != healthy ]; then
  echo "bench: the stack of compose project '$project' is not up and healthy: run 'make up' first" >&2
  exit 1
fi
log "benchmarking compose project $project (images ${PYAUTH_TAG:-latest})"

# The ceilings, the side-by-side app and bench-api-64mib have no healthcheck (compose.bench.yaml): started
# without --wait, and the driver waits for each to answer. bench-api keeps the api's own healthcheck and is
# waited for here.
ceilings=(bench-ceiling-json bench-ceiling-select bench-ceiling-rotation bench-ceiling-argon2 bench-verify bench-sidebyside
  bench-api-64mib bench-ceiling-argon2-64mib)
services=(bench-api "${ceilings[@]}")
worker_paused=
cleanup() {
  log "stopping the bench services and deleting the bench's data"
  compose rm --stop --force "${services[@]}" >/dev/null 2>&1 || true
  delete_bench_data || log "cleanup failed: run 'make psql < bench/cleanup.sql' by hand"
  if [ -n "$worker_paused" ]; then
    log "resuming the mail worker"
    compose unpause worker >/dev/null 2>&1 || log "could not resume the mail worker: run 'docker unpause $worker_paused'"
  fi
}
trap cleanup EXIT

started=$SECONDS
log "building the load generator image"
compose build --quiet bench

log "deleting leftovers of an interrupted run"
delete_bench_data

# Paused until the cleanup has deleted the bench's mails (see the header): none of them is delivered.
worker=$(compose ps -q --status running worker 2>/dev/null || true)
if [ -n "$worker" ]; then
  log "pausing the mail worker until the bench's mails are deleted"
  compose pause worker 2>&1 | { grep -v '^ Container' || true; }
  worker_paused=$worker
else
  # Left paused by a run that was killed before its cleanup: resumed by this run's cleanup.
  worker_paused=$(compose ps -q --status paused worker 2>/dev/null || true)
fi

# The test profile's browser and SMTP server, which `make test` starts and leaves running, each exec a
# healthcheck every 2 s: stopped for the run (the next `make test` starts them again).
if [ -n "$(compose --profile test ps -q --status running browser smtp 2>/dev/null || true)" ]; then
  log "stopping the test profile's browser and SMTP server (make test starts them again)"
  compose --profile test stop browser smtp 2>&1 | { grep -v '^ Container' || true; }
fi

# The load generator's network: its X-Forwarded-For is believed by bench-api (see compose.bench.yaml).
network=$(docker inspect --format '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "$api" | awk '{print $1}')
BENCH_SUBNET=$(docker network inspect --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}' "$network" | awk '{print $1}')
export BENCH_SUBNET
# The side-by-side app's HS256 secret, new each run: it checks the tokens the driver signs with it.
BENCH_SIDEBYSIDE_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export BENCH_SIDEBYSIDE_SECRET

log "starting the API under test and the ceilings (the api service's image and settings)"
compose up --detach --no-deps --no-build "${ceilings[@]}" 2>&1 | { grep -v '^ Container' || true; }
compose up --detach --wait --no-deps --no-build bench-api 2>&1 | { grep -v '^ Container' || true; }

api_settings=$(compose exec -T bench-api python3 - < bench/api_settings.py)
log "API settings: $api_settings"
api_64mib_settings=$(compose exec -T bench-api-64mib python3 - < bench/api_settings.py)
log "API settings at 64 MiB: $api_64mib_settings"

# The containers whose CPU time per request the driver reports (bench/cpu.py): label=id.
containers=""
for pair in api=bench-api db=db json=bench-ceiling-json select=bench-ceiling-select \
  rotation=bench-ceiling-rotation argon2=bench-ceiling-argon2 api_64mib=bench-api-64mib \
  argon2_64mib=bench-ceiling-argon2-64mib; do
  containers="$containers ${pair%%=*}=$(compose ps -q "${pair#*=}" 2>/dev/null || true)"
done

git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then git_rev="$git_rev+changes"; fi
status=0
compose run --rm --no-deps -T --user "$(id -u):$(id -g)" \
  -e BENCH_API_SETTINGS="$api_settings" -e BENCH_API_64MIB_SETTINGS="$api_64mib_settings" \
  -e BENCH_GIT="$git_rev" -e BENCH_CONTAINERS="$containers" \
  bench python3 /bench/driver.py || status=$?

log "finished in $((SECONDS - started)) s, exit status $status"
exit "$status"
