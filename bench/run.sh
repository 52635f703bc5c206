#!/bin/sh
# sbxd benchmark: starts sbxd on a free 127.0.0.1 port with a temp data dir, runs every
# measurement in one run, stops sbxd, prints a table and writes bench/RESULTS.md.
#   bench/run.sh [--sbxd PATH] [--config PATH] [--url URL] [--quick] [--out FILE] [--json FILE]
#   bench/run.sh --docker [--prefix DIR] [--quick] [--out FILE] [--json FILE]   (bench/docker.py)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = --docker ]; then # docker mode: bench/docker.py (bench/README.md)
	shift
	exec /usr/bin/python3 "$here/docker.py" --command "bench/run.sh --docker${*:+ $*}" "$@"
fi
exec /usr/bin/python3 "$here/bench.py" --command "bench/run.sh${*:+ $*}" "$@"
