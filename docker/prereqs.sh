#!/usr/bin/env bash
# `make prereqs` (before up, test and every other target that needs Docker): is there a docker CLI, an
# engine that answers it, and the Compose v2 plugin? If one is missing: on Debian as root, run
# docker/install-engine.sh (which installs and starts what is missing, and nothing else) and say so;
# anywhere else, print the one command that fixes it and stop. Tested by docker/test-prereqs.sh.
# PYAUTH_OS_RELEASE names the os-release file to read (default /etc/os-release): the tests set it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
installer="$here/install-engine.sh"

# Sets $problem to what is missing, in words (empty when all is there), and $denied when the engine runs
# but refuses this user (not in the docker group).
check() {
  problem= denied=
  if ! command -v docker >/dev/null 2>&1; then
    problem="the docker command is not installed"
    return
  fi
  local info
  if ! info=$(docker info 2>&1 >/dev/null); then
    if grep -qi "permission denied" <<<"$info"; then
      denied=1
      problem="the Docker engine refuses this user (permission denied on its socket)"
    else
      problem="the Docker engine is not running or not reachable"
    fi
    return
  fi
  if ! docker compose version --short 2>/dev/null | grep -Eq '^v?[2-9]\.'; then
    problem="the Compose v2 plugin is missing ('docker compose version' must say 2.x)"
  fi
}

os_id() {
  local release=${PYAUTH_OS_RELEASE:-/etc/os-release}
  [ -r "$release" ] || return 0
  # shellcheck disable=SC1090
  (. "$release" && printf '%s\n' "${ID:-}")
}

# The one command to run here, for $problem.
advice() {
  if [ -n "${DOCKER_HOST:-}" ] && command -v docker >/dev/null 2>&1 && [[ $problem == *"not running"* ]]; then
    echo "unset DOCKER_HOST   (it points at $DOCKER_HOST; or start the engine there)"
    return
  fi
  if [ -n "$denied" ]; then
    echo "sudo usermod -aG docker \"\$USER\"   (then log out and in again, or run make with sudo)"
    return
  fi
  case "$(uname -s)" in
    Darwin)
      if command -v docker >/dev/null 2>&1 && [[ $problem == *"not running"* ]]; then
        echo "open -a Docker   (start Docker Desktop, then run make again)"
      else
        echo "brew install --cask docker   (Docker Desktop, with Compose v2; start it once, then run make again)"
      fi
      return
      ;;
  esac
  if [ "$(os_id)" = debian ]; then
    if command -v sudo >/dev/null 2>&1; then
      echo "sudo bash docker/install-engine.sh"
    else
      echo "su -c 'bash docker/install-engine.sh'"
    fi
  elif command -v docker >/dev/null 2>&1 && [[ $problem == *"not running"* ]]; then
    echo "sudo systemctl start docker"
  else
    echo "curl -fsSL https://get.docker.com | sudo sh   (Docker's installer: engine and Compose v2)"
  fi
}

check
[ -z "$problem" ] && exit 0

# Not when DOCKER_HOST names another engine: a local one would not be the one make uses.
if [ "$(os_id)" = debian ] && [ "$(id -u)" = 0 ] && [ -z "$denied" ] && [ -z "${DOCKER_HOST:-}" ]; then
  echo "prereqs: $problem."
  echo "prereqs: this is Debian and you are root: running docker/install-engine.sh to install and start"
  echo "prereqs: the Docker engine (docker.io) and the Compose v2 plugin (README, Troubleshooting)."
  if ! bash "$installer"; then
    echo "prereqs: docker/install-engine.sh failed (its reason is above; README, Troubleshooting)." >&2
    exit 1
  fi
  check
  if [ -z "$problem" ]; then
    echo "prereqs: Docker is ready; going on."
    exit 0
  fi
  echo "prereqs: still not ready after docker/install-engine.sh: $problem (README, Troubleshooting)." >&2
  exit 1
fi

echo "prereqs: $problem. Run this, then make again (README, Troubleshooting):" >&2
echo "" >&2
echo "    $(advice)" >&2
echo "" >&2
exit 1
