#!/usr/bin/env bash
# Installs and starts a Docker engine and the Compose v2 plugin on a Debian machine that has neither.
# Idempotent: every step is skipped when what it provides is already there. Run as root.
# The Compose plugin comes from Debian trixie's docker-compose package, fetched from the machine's own
# Debian mirror (read from its apt configuration) through a throw-away apt state.
set -euo pipefail

log() { printf 'install-engine: %s\n' "$*"; }

debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { log "no Debian mirror found in the apt configuration"; exit 1; }
  printf '%s\n' "$uri"
}

install_dockerd() {
  if command -v dockerd >/dev/null 2>&1; then return; fi
  log "installing docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then return; fi
  log "starting dockerd (output in /var/log/dockerd.log)"
  setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  log "dockerd did not answer within 60 s; see /var/log/dockerd.log"
  tail -n 20 /var/log/dockerd.log >&2 || true
  exit 1
}

install_compose() {
  if docker compose version --short 2>/dev/null | grep -Eq '^v?[2-9]\.'; then return; fi
  log "installing the Compose v2 plugin from Debian trixie"
  local work mirror
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  mirror=$(debian_mirror)
  mkdir -p "$work/lists/partial" "$work/archives/partial"
  printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$mirror" > "$work/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
              -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" download docker-compose >/dev/null)
  dpkg-deb -x "$work"/docker-compose_*.deb "$work/pkg"
  install -D -m 0755 "$work/pkg/usr/libexec/docker/cli-plugins/docker-compose" \
    /usr/libexec/docker/cli-plugins/docker-compose
}

install_dockerd
start_dockerd
install_compose
log "ready: $(docker version --format 'engine {{.Server.Version}}'), $(docker compose version --short)"
