# Helpers for the sbx-executor TAP tests: start the freshly built bundle on a temporary socket
# and workspace, post executions with curl --unix-socket, read fields of the result, emit TAP.
PY=${PYTHON3:-python3}
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
top_builddir=${top_builddir:-.}
BUNDLE=$(cd "$top_builddir/executor/bundle" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/sbx-exec-test.XXXXXX")
WS=$T/ws
mkdir -p "$WS"
n=0
failed=0
PIDS=

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	sleep 0.1
	rm -rf "$T"
}
trap cleanup EXIT

# start_executor SOCKET_OR_EMPTY [extra options...]: sets EXEC_PID
start_executor() {
	sock=$1
	shift
	"$BUNDLE/lib/ld-linux-x86-64.so.2" --library-path "$BUNDLE/lib" "$BUNDLE/bin/sbx-executor" \
		--workspace "$WS" "$@" 2>>"$T/executor.log" &
	EXEC_PID=$!
	PIDS="$PIDS $EXEC_PID"
	i=0
	while [ $i -lt 100 ]; do
		if [ -n "$sock" ] && curl -sf --unix-socket "$sock" http://x/health >/dev/null 2>&1; then
			return 0
		fi
		[ -z "$sock" ] && sleep 0.3 && return 0
		sleep 0.05
		i=$((i + 1))
	done
	echo "Bail out! executor did not start"
	cat "$T/executor.log"
	exit 1
}

# run LANG CODE [EVENT_JSON] [EXTRA_JSON]: the last stream line (the result) lands in $T/res
run() {
	LANG_=$1 CODE_=$2 EVENT_=${3:-'{}'} EXTRA_=${4:-'{}'} $PY -c '
import json, os
d = {"language": os.environ["LANG_"], "code": os.environ["CODE_"],
     "event": json.loads(os.environ["EVENT_"])}
d.update(json.loads(os.environ["EXTRA_"]))
print(json.dumps(d))' >"$T/req"
	curl -s --unix-socket "$SOCK" --data-binary @"$T/req" http://x/execute >"$T/stream"
	tail -n 1 "$T/stream" >"$T/res"
}

# field PATH [FILE]: a dotted path into a JSON file; strings raw, everything else as JSON
field() {
	$PY -c '
import json, sys
try:
    d = json.load(open(sys.argv[2]))
    for k in sys.argv[1].split("."):
        if k:
            d = d[int(k)] if isinstance(d, list) else d[k]
except Exception as e:
    print("<missing: %s>" % e)
    sys.exit(0)
print(d if isinstance(d, str) else json.dumps(d))' "$1" "${2:-$T/res}"
}

# t NAME COMMAND...: one TAP line; on failure show the last result
t() {
	name=$1
	shift
	n=$((n + 1))
	if "$@"; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name"
		failed=1
		echo "# last result: $(head -c 2000 "$T/res" 2>/dev/null)"
	fi
}

eq() { [ "$1" = "$2" ] || { echo "# expected '$2', got '$1'"; return 1; }; }
has() { case "$1" in *"$2"*) return 0 ;; esac; echo "# '$2' not in '$(printf %s "$1" | head -c 300)'"; return 1; }
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

done_testing() {
	echo "1..$n"
	exit $failed
}
