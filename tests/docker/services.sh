#!/usr/bin/env bash
# Starts (or stops) a private Docker engine for the docker tier: dockerd on DIR/docker.sock
# with its state under DIR (no iptables, no bridge: sandboxes run with NetworkMode none),
# the template images built into it by etc/images/build.sh (cached), and DIR/sbxd.conf: the
# installed embedded-default configuration with the runtime `docker` instead of `linux`
# (same template ids), pointing at that engine and at PREFIX's executor bundle, and running
# sandboxes as uid/gid 1000 like the linux runtime (the images' user `sandbox`).
#   tests/docker/services.sh start DIR [PREFIX]    (prints the config path)
#   tests/docker/services.sh stop DIR              (removes every container, stops dockerd)
set -u
cmd=${1:?start|stop}
dir=${2:?directory}
prefix=${3:-/usr/local}
top=$(cd "$(dirname "$0")/../.." && pwd)
sock=$dir/docker.sock
dk() { docker -H "unix://$sock" "$@"; }

remove_containers() { # the engine is private: every container on it belongs to the tests
	local ids
	ids=$(dk ps -aq 2>/dev/null) || return 0
	[ -n "$ids" ] && dk rm -f -v $ids >/dev/null 2>&1
	return 0
}

stop() {
	[ -f "$dir/dockerd.pid" ] || return 0
	local pid
	pid=$(cat "$dir/dockerd.pid")
	if kill -0 "$pid" 2>/dev/null; then
		remove_containers
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
	fi
	rm -f "$dir/dockerd.pid"
	# A dockerd that was killed may leave its mounts (overlays, netns, shm) under DIR.
	awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done
	return 0
}

case "$cmd" in
stop)
	stop
	exit 0
	;;
start) ;;
*)
	echo "usage: $0 start DIR [PREFIX] | stop DIR" >&2
	exit 2
	;;
esac

command -v dockerd >/dev/null || { echo "dockerd is not installed (apt-get install docker.io)" >&2; exit 1; }
command -v docker >/dev/null || { echo "the docker client is not installed (apt-get install docker.io)" >&2; exit 1; }
[ -f "$prefix/etc/sandbox/sbxd.conf" ] ||
	{ echo "$prefix/etc/sandbox/sbxd.conf is missing: make install with --prefix=$prefix" >&2; exit 1; }
executor=$prefix/libexec/sbxd/executor
[ -x "$executor/bin/sbx-executor" ] ||
	{ echo "no executor bundle at $executor (make install with --prefix=$prefix)" >&2; exit 1; }

mkdir -p "$dir/data" "$dir/exec" "$dir/sockets"
chmod 711 "$dir"
trap 'stop' ERR
dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pidfile" \
	--iptables=false --ip-masq=false --bridge=none -H "unix://$sock" \
	>"$dir/dockerd.log" 2>&1 &
echo $! >"$dir/dockerd.pid"
ready=0
for _ in $(seq 1 200); do
	dk version --format '{{.Server.Version}}' >/dev/null 2>&1 && { ready=1; break; }
	kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null || break
	sleep 0.1
done
[ $ready = 1 ] || { echo "dockerd did not start: see $dir/dockerd.log" >&2; tail -5 "$dir/dockerd.log" >&2; stop; exit 1; }
remove_containers # a reused DIR may hold containers of an earlier run

"$top/etc/images/build.sh" --docker-host "unix://$sock" >"$dir/images.log" 2>&1 ||
	{ echo "building the sandbox images failed: see $dir/images.log" >&2; tail -5 "$dir/images.log" >&2; stop; exit 1; }

# ---- sbxd configuration ------------------------------------------------------------------
/usr/bin/python3 - "$prefix/etc/sandbox/sbxd.conf" "$dir/sbxd.conf" <<PY
import re, sys
src, dst = sys.argv[1:3]
s = open(src).read()
rt = ('{ kind = "runtime"; module = "docker"; name = "local"; config = { '
      'host = "unix://$sock"; executor_dir = "$executor"; sockets_dir = "$dir/sockets"; '
      'user = "1000:1000"; }; }')
s, n = re.subn(r'\{ kind = "runtime";[^\n]*\}', rt, s)
assert n == 1, n
open(dst, "w").write(s)
PY
echo "$dir/sbxd.conf"
