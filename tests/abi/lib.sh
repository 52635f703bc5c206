# tests/abi/lib.sh: TAP output, temp dirs, free ports and sbxd start/stop for the ABI
# tests. Sourced, not run. Needs sh, python3 (port, JSON) and curl.

tap_n=0
tap_failed=0
tmp=""
sbxd_pid=""

# ok STATUS DESCRIPTION: one TAP line; STATUS 0 is a pass.
ok()
{
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n - $2"
	else
		echo "not ok $tap_n - $2"
		tap_failed=1
	fi
}

diag()
{
	printf '%s\n' "$@" | sed 's/^/# /'
}

skip_all()
{
	echo "1..0 # SKIP $1"
	exit 0
}

bail()
{
	echo "Bail out! $1"
	exit 1
}

done_testing()
{
	echo "1..$tap_n"
	exit $tap_failed
}

abs_dir()
{
	(cd "$1" && pwd)
}

cleanup()
{
	if [ -n "$sbxd_pid" ]; then
		kill "$sbxd_pid" 2>/dev/null
		wait "$sbxd_pid" 2>/dev/null
	fi
	[ -n "$tmp" ] && rm -rf "$tmp"
}

make_tmp()
{
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/sbx-abi.XXXXXX") || bail "mktemp failed"
	# runtime/linux mounts from the data dir inside: others need search (not read).
	chmod 0711 "$tmp"
	trap cleanup EXIT
	trap 'exit 1' INT TERM
}

free_port()
{
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# sbxd_start SBXD CONFIG: start it on a free port with a fresh data dir; sets $port and
# $sbxd_pid; returns non-zero (with stderr in $tmp/sbxd.log) if /health never answers.
sbxd_start()
{
	port=$(free_port)
	mkdir -p "$tmp/data"
	"$1" --config "$2" --listen "127.0.0.1:$port" --data-dir "$tmp/data" \
		>"$tmp/sbxd.log" 2>&1 &
	sbxd_pid=$!
	i=0
	while [ $i -lt 100 ]; do
		if curl -fsS -o /dev/null "http://127.0.0.1:$port/api/v1/health" 2>/dev/null; then
			return 0
		fi
		kill -0 "$sbxd_pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	diag "sbxd did not come up; its output:"
	diag "$(cat "$tmp/sbxd.log")"
	return 1
}

sbxd_stop()
{
	if [ -n "$sbxd_pid" ]; then
		kill "$sbxd_pid" 2>/dev/null
		wait "$sbxd_pid" 2>/dev/null
		sbxd_pid=""
	fi
}

# has_instance FILE NAME KIND MODULE VERSION: FILE (JSON from /health/detailed) holds,
# anywhere, an object with these name/kind/module/version members and a status member.
has_instance()
{
	python3 - "$@" <<'PY'
import json, sys
path, name, kind, module, version = sys.argv[1:6]
doc = json.load(open(path))
def walk(v):
    if isinstance(v, dict):
        if (v.get("name") == name and v.get("kind") == kind and v.get("module") == module
                and v.get("version") == version and "status" in v):
            return True
        return any(walk(x) for x in v.values())
    if isinstance(v, list):
        return any(walk(x) for x in v)
    return False
sys.exit(0 if walk(doc) else 1)
PY
}

# line_has FILE TEXT...: some line of FILE contains every TEXT (fixed strings).
line_has()
{
	f=$1
	shift
	python3 - "$f" "$@" <<'PY'
import sys
lines = open(sys.argv[1], errors="replace").read().splitlines()
sys.exit(0 if any(all(t in l for t in sys.argv[2:]) for l in lines) else 1)
PY
}
