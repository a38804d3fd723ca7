#!/usr/bin/env bash
# Tests docker/prereqs.sh (`make prereqs`, run before `make up` and `make test`) without touching the real
# engine: each case runs a copy of the script beside a stub install-engine.sh, with a PATH of stubs (docker,
# id, uname, sudo) whose answers the case chooses. `make lint` runs it on the host.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
cases=0

# A fresh case directory: the script under test, a stub installer, and bin/ with only the tools it uses.
# State files in the case directory stand for the machine: has-cli, engine, denied, compose.
new_case() {
  case_dir="$work/$1"
  mkdir -p "$case_dir/docker" "$case_dir/bin"
  cp "$here/prereqs.sh" "$case_dir/docker/prereqs.sh"
  local tool
  for tool in bash dirname grep; do ln -s "$(command -v "$tool")" "$case_dir/bin/$tool"; done
  stub id 'echo 0'
  stub uname 'echo Linux'
  printf 'ID=debian\n' > "$case_dir/os-release"
  cat > "$case_dir/docker-stub" <<EOF
#!$(command -v bash)
case "\$1" in
  info)
    [ -e "$case_dir/engine" ] && exit 0
    [ -e "$case_dir/denied" ] && { echo "permission denied while trying to connect to the docker API" >&2; exit 1; }
    echo "Cannot connect to the Docker daemon" >&2; exit 1 ;;
  compose)
    [ -e "$case_dir/compose" ] && { echo 2.26.1; exit 0; }
    echo "docker: 'compose' is not a docker command." >&2; exit 1 ;;
esac
EOF
  chmod +x "$case_dir/docker-stub"
  # The stub installer makes everything present, unless the case made it "broken".
  cat > "$case_dir/docker/install-engine.sh" <<EOF
echo "install-engine: stub"
$(command -v touch) "$case_dir/installer-ran"
[ -e "$case_dir/broken" ] && exit 0
$(command -v ln) -sf "$case_dir/docker-stub" "$case_dir/bin/docker"
$(command -v touch) "$case_dir/engine" "$case_dir/compose"
EOF
}

stub() {
  printf '#!%s\n%s\n' "$(command -v bash)" "$2" > "$case_dir/bin/$1"
  chmod +x "$case_dir/bin/$1"
}

machine() {  # what the case's machine has: cli, engine, compose, denied, broken
  local thing
  for thing in "$@"; do
    if [ "$thing" = cli ]; then ln -sf "$case_dir/docker-stub" "$case_dir/bin/docker"; else touch "$case_dir/$thing"; fi
  done
}

run() {  # run the copy with only the case's bin on PATH; sets $status and $output
  set +e
  output=$(env -i PATH="$case_dir/bin" PYAUTH_OS_RELEASE="$case_dir/os-release" ${DOCKER_HOST:+DOCKER_HOST=$DOCKER_HOST} \
    "$case_dir/bin/bash" "$case_dir/docker/prereqs.sh" 2>&1)
  status=$?
  set -e
}

expect() {  # expect NAME STATUS INSTALLER(ran|not) [TEXT ...]
  local name=$1 want_status=$2 installer=$3 text ok=1
  shift 3
  cases=$((cases + 1))
  [ "$status" = "$want_status" ] || ok=
  if [ "$installer" = ran ]; then [ -e "$case_dir/installer-ran" ] || ok=; else [ ! -e "$case_dir/installer-ran" ] || ok=; fi
  for text in "$@"; do grep -qF -- "$text" <<<"$output" || ok=; done
  if [ -n "$ok" ]; then
    echo "ok   $name"
  else
    failures=$((failures + 1))
    printf 'FAIL %s: exit %s (wanted %s), installer %s\n%s\n' "$name" "$status" "$want_status" "$installer" "$output"
  fi
}

new_case ready; machine cli engine compose; run
expect "everything there: silent, nothing installed" 0 not
[ -z "$output" ] || { failures=$((failures + 1)); echo "FAIL ready case printed: $output"; }

new_case fresh-debian-root; run
expect "fresh Debian as root, no docker at all: runs install-engine.sh and says so" 0 ran \
  "the docker command is not installed" "running docker/install-engine.sh" "Docker is ready"

new_case debian-root-engine-down; machine cli compose; run
expect "Debian as root, engine not running: runs install-engine.sh" 0 ran "not running or not reachable"

new_case debian-root-compose-v1; machine cli engine; run
expect "Debian as root, no Compose v2: runs install-engine.sh" 0 ran "Compose v2 plugin is missing"

new_case debian-root-still-broken; machine broken; run
expect "Debian as root, still missing after install-engine.sh: stops" 1 ran "still not ready"

new_case debian-root-installer-fails; printf 'echo "install-engine: no network"; exit 1\n' > "$case_dir/docker/install-engine.sh"; run
expect "Debian as root, install-engine.sh fails: stops and says so" 1 not "install-engine.sh failed" "no network"

new_case debian-user-sudo; stub id 'echo 1000'; stub sudo 'exit 0'; run
expect "Debian, not root, sudo there: prints the one command" 1 not "sudo bash docker/install-engine.sh"

new_case debian-user-no-sudo; stub id 'echo 1000'; run
expect "Debian, not root, no sudo: prints the su command" 1 not "su -c 'bash docker/install-engine.sh'"

new_case other-linux-root; printf 'ID=fedora\n' > "$case_dir/os-release"; run
expect "another Linux: prints Docker's installer, runs nothing" 1 not "get.docker.com"

new_case other-linux-engine-down; printf 'ID=fedora\n' > "$case_dir/os-release"; machine cli compose; run
expect "another Linux, engine down: prints systemctl start" 1 not "sudo systemctl start docker"

new_case macos-engine-down; stub uname 'echo Darwin'; rm "$case_dir/os-release"; machine cli compose; run
expect "macOS, Docker Desktop not running: prints open -a Docker" 1 not "open -a Docker"

new_case debian-root-denied; machine cli compose denied; stub id 'echo 1000'; run
expect "engine refuses the user: prints the docker group command" 1 not "usermod -aG docker"

new_case debian-root-docker-host; machine cli compose; DOCKER_HOST=tcp://127.0.0.1:1 run
expect "DOCKER_HOST names an engine that does not answer: no local install, says so" 1 not "unset DOCKER_HOST"

echo "prereqs: $((cases - failures)) passed, $failures failed"
[ "$failures" = 0 ]
