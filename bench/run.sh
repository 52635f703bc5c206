#!/bin/sh
# sbxd benchmark: starts sbxd on a free 127.0.0.1 port with a temp data dir, runs every
# measurement in one run, stops sbxd, prints a table and writes bench/RESULTS.md.
#   bench/run.sh [--sbxd PATH] [--config PATH] [--url URL] [--quick] [--out FILE] [--json FILE]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/bench.py" --command "bench/run.sh${*:+ $*}" "$@"
