#!/usr/bin/env bash
# Makes sure the base image debian:trixie-slim exists in the local engine.
# It is pulled when a registry answers; where none does (as on CI), it is built from Debian's own packages
# with debootstrap's minbase variant (what the official slim images are built from) and `docker import`.
# The mirror is the machine's own, from its apt configuration, or debootstrap's default.
set -euo pipefail
image=debian:trixie-slim
log() { printf 'base-image: %s\n' "$*"; }

if docker image inspect "$image" >/dev/null 2>&1; then exit 0; fi
if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then log "pulled $image"; exit 0; fi

log "no registry answered; building $image with debootstrap (about a minute)"
command -v debootstrap >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase trixie "$root" ${mirror:+"$mirror"} >/dev/null
# Keep the image small and its apt lists fresh-fetched, as the official slim image does.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import - "$image" >/dev/null
log "built $image"
