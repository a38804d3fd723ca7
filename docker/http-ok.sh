#!/bin/bash
# http-ok PORT PATH: exit 0 if GET http://127.0.0.1:PORT/PATH answers 200 within 2 s, else 1.
# The containers' healthchecks: bash alone (its /dev/tcp), a few milliseconds of CPU per check, where a
# Python interpreter started every few seconds cost ~0.12 CPU-s per check in every container that ran one.
set -u
port=$1 path=$2
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3 || exit 1
read -r -t 2 _ status _ <&3 || exit 1
[ "$status" = 200 ]
