#!/usr/bin/env bash
# pyauth on a Docker Swarm (compose.swarm.yaml): up, status, down, update. `make swarm-up` etc. call it.
# Every command exits non-zero when what it was asked to do did not happen.
#   up      initialise a one-node swarm if there is none, build the images (compose's builds, tag
#           PYAUTH_TAG), make local secrets and a self-signed certificate in .swarm/ (once), deploy, and wait
#           until the API replicas are healthy and answer through the edge proxy (SWARM_TIMEOUT seconds)
#   status  the stack's services, their tasks, and /health/ready through the edge
#   down    remove the stack (the database volume stays) and wait until its networks are gone
#   update  build the API image and roll it through: migrate (the job) first, then the API (start-first, one
#           task at a time, rollback on failure), then the workers; the same image again is a forced update
set -euo pipefail
cd "$(dirname "$0")/.."

STACK=${SWARM_STACK:-pyauth-swarm}
SWARM_TIMEOUT=${SWARM_TIMEOUT:-240}
EDGE_PORT=${EDGE_PORT:-8443}
STATE=.swarm
export PYAUTH_TAG=${PYAUTH_TAG:-swarm}
export API_REPLICAS=${API_REPLICAS:-3}
export PYPI_CA_BUNDLE=${PYPI_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# compose.swarm.yaml's variables come from .env (docker stack deploy reads no .env file itself).
set -a
# shellcheck disable=SC1091
. ./.env
set +a

say() { printf 'swarm: %s\n' "$*"; }
fail() { printf 'swarm: FAILED: %s\n' "$*" >&2; exit 1; }

edge_ready() {
  curl -fsS --max-time 3 --cacert "$STATE/edge.crt" "https://localhost:$EDGE_PORT/health/ready" >/dev/null 2>&1
}

diagnose() {
  echo "--- docker service ps (tasks that are not running, with their errors)" >&2
  docker stack ps "$STACK" --no-trunc --format '{{.Name}} {{.Image}} {{.CurrentState}} {{.Error}}' >&2 || true
  for service in $(docker stack services "$STACK" --format '{{.Name}}' 2>/dev/null); do
    echo "--- docker service logs $service (last 15 lines)" >&2
    timeout 30 docker service logs --raw --tail 15 "$service" 2>&1 | sed 's/^/  /' >&2 || true
  done
}

init_swarm() {
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    say "initialising a one-node swarm (docker swarm init --advertise-addr 127.0.0.1)"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  fi
  [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] || fail "this node is not a swarm manager"
}

# A tag naming the image's content (swarm-<image id>): the stack's services name images by it, so that a
# rebuilt image changes the service's spec (and rolls it) and an unchanged one changes nothing. Swarm
# itself cannot tell that a local tag now names another image: there is no registry digest.
content_tag() {
  local image=$1 id
  id=$(docker image inspect --format '{{.Id}}' "$image:$PYAUTH_TAG")
  id=${id#sha256:}
  docker tag "$image:$PYAUTH_TAG" "$image:swarm-${id:0:12}"
  echo "swarm-${id:0:12}"
}

build() {
  say "building pyauth-api and pyauth-postgres (compose.yaml), pgbouncer and edge (compose.swarm.yaml): tag $PYAUTH_TAG"
  docker compose -f compose.yaml build db api
  docker compose -f compose.swarm.yaml build pgbouncer edge
  API_TAG=$(content_tag pyauth-api)
  POSTGRES_TAG=$(content_tag pyauth-postgres)
  PGBOUNCER_TAG=$(content_tag pyauth-pgbouncer)
  EDGE_TAG=$(content_tag pyauth-edge)
  export API_TAG POSTGRES_TAG PGBOUNCER_TAG EDGE_TAG
}

# Local secrets, made once (a Swarm secret cannot change while a service uses it): .env's development
# values, and a self-signed certificate for localhost. Production brings its own (README).
make_secrets() {
  local dir=$STATE/secrets
  mkdir -p "$dir"
  chmod 0700 "$STATE" "$dir"
  write() { [ -s "$dir/$1" ] || (umask 077; printf '%s\n' "$2" > "$dir/$1"); }
  write key_encryption_key "$KEY_ENCRYPTION_KEY"
  write postgres_password "$POSTGRES_PASSWORD"
  write postgres_owner_password "$POSTGRES_OWNER_PASSWORD"
  write postgres_admin_password "$POSTGRES_ADMIN_PASSWORD"
  write smtp_password "${SMTP_PASSWORD:-unused-with-the-console-mail-backend}"
  if [ ! -s "$dir/edge_tls.pem" ]; then
    say "making a self-signed certificate for localhost ($STATE/edge.crt)"
    (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
      -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$STATE/edge.key" -out "$STATE/edge.crt" 2>/dev/null)
    cat "$STATE/edge.crt" "$STATE/edge.key" > "$dir/edge_tls.pem"
    rm -f "$STATE/edge.key"
  fi
}

deploy() {
  docker stack deploy --resolve-image never --detach=true -c compose.swarm.yaml "$STACK" >/dev/null
}

# Waits until the API runs API_REPLICAS healthy tasks of API_TAG and the edge answers /health/ready.
wait_healthy() {
  local deadline=$((SECONDS + SWARM_TIMEOUT)) replicas update
  while :; do
    replicas=$(docker service ls --filter "name=${STACK}_api" --format '{{.Replicas}}' | head -1)
    # Every service's rolling update (a changed image or setting) done, none rolled back or paused.
    update=$(docker service inspect --format '{{.Spec.Name}}={{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' \
      $(docker stack services -q "$STACK") | grep -Ev '=(completed)?$' || true)
    case $update in
      *rollback_*|*paused*) diagnose; fail "update: $update" ;;
    esac
    if [ "$replicas" = "$API_REPLICAS/$API_REPLICAS" ] && [ -z "$update" ] && edge_ready; then
      say "api $replicas healthy, https://localhost:$EDGE_PORT/health/ready answers (after ${SECONDS}s)"
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      diagnose
      fail "api replicas ${replicas:-none} running (of $API_REPLICAS), or the edge not ready, after ${SWARM_TIMEOUT}s"
    fi
    sleep 2
  done
}

# Waits until the stack's containers and networks are gone. Swarm keeps the exited containers of a job's
# tasks (migrate) after the service is removed: they are the stack's, and are removed here.
wait_gone() {
  local deadline=$((SECONDS + 120)) label="label=com.docker.stack.namespace=$STACK"
  while docker network ls --filter "$label" -q | grep -q . || docker ps -aq --filter "$label" | grep -q .; do
    docker ps -aq --filter "$label" --filter status=exited --filter status=created | xargs -r docker rm >/dev/null || true
    [ $SECONDS -lt $deadline ] || fail "the stack's containers or networks are still there after 120s"
    sleep 1
  done
}

# Waits for the service's rolling update to finish; a rollback or a paused update is a failure.
wait_update() {
  local service=$1 deadline=$((SECONDS + SWARM_TIMEOUT)) state
  while :; do
    state=$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$service")
    case $state in
      completed) say "$service updated"; return 0 ;;
      rollback_*|paused) diagnose; fail "$service: update $state" ;;
    esac
    [ $SECONDS -lt $deadline ] || { diagnose; fail "$service: update not done after ${SWARM_TIMEOUT}s ($state)"; }
    sleep 2
  done
}

# Runs the migrate job again with the image and waits until that run completes.
run_migrations() {
  local image=$1 deadline=$((SECONDS + SWARM_TIMEOUT)) states
  docker service update --detach --no-resolve-image --image "$image" "${STACK}_migrate" >/dev/null
  while :; do
    states=$(docker service ps --no-trunc --format '{{.Image}} {{.CurrentState}}' "${STACK}_migrate" | grep "^$image " || true)
    if grep -q " Complete" <<<"$states"; then say "migrate ($image) complete"; return 0; fi
    if grep -q " Failed" <<<"$states" && [ $SECONDS -ge $deadline ]; then diagnose; fail "migrate failed"; fi
    [ $SECONDS -lt $deadline ] || { diagnose; fail "migrate not complete after ${SWARM_TIMEOUT}s"; }
    sleep 2
  done
}

case ${1:-} in
  up)
    SECONDS=0
    init_swarm
    build
    make_secrets
    say "deploying stack $STACK (pyauth-api:$API_TAG x $API_REPLICAS)"
    deploy
    wait_healthy
    ;;
  status)
    docker stack services "$STACK" --format 'table {{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}' \
      || fail "no stack $STACK"
    docker stack ps "$STACK" --filter desired-state=running --format 'table {{.Name}}\t{{.Image}}\t{{.CurrentState}}'
    if edge_ready; then say "https://localhost:$EDGE_PORT/health/ready: ready"
    else fail "https://localhost:$EDGE_PORT/health/ready does not answer 200"; fi
    replicas=$(docker service ls --filter "name=${STACK}_api" --format '{{.Replicas}}' | head -1)
    [ "$replicas" = "$API_REPLICAS/$API_REPLICAS" ] || fail "api replicas $replicas, expected $API_REPLICAS"
    ;;
  down)
    if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
      docker stack rm "$STACK"
    fi
    wait_gone
    say "stack $STACK removed; the volume ${STACK}_pgdata stays (docker volume rm ${STACK}_pgdata deletes the data)"
    ;;
  update)
    SECONDS=0
    docker compose -f compose.yaml build api
    image=pyauth-api:$(content_tag pyauth-api)
    current=$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "${STACK}_api")
    [ "$current" != "$image" ] || say "$image runs already: rolling it through again (a forced update)"
    say "rolling $image through: migrate, then api (start-first), then worker"
    run_migrations "$image"
    force=$([ "$current" = "$image" ] && echo --force || true)
    docker service update --detach --no-resolve-image $force --image "$image" "${STACK}_api" >/dev/null
    wait_update "${STACK}_api"
    docker service update --detach --no-resolve-image $force --image "$image" "${STACK}_worker" >/dev/null
    wait_update "${STACK}_worker"
    edge_ready || fail "the edge does not answer /health/ready after the update"
    say "$image rolled out in ${SECONDS}s"
    ;;
  *)
    echo "usage: $0 up|status|down|update" >&2
    exit 2
    ;;
esac
