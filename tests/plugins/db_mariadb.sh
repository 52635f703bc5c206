#!/bin/sh
# The db module `mariadb` against a real, private mariadbd: starts one (temporary data
# directory, socket, free loopback port), creates a database and a user with a password,
# runs the db conformance suite (tests/plugins/db_conformance) and then the MariaDB-only
# checks (tests/plugins/db_mariadb: migrations, config, 8 MiB output, server killed,
# paused and back). One TAP stream. Skipped only when mariadbd is not installed.
#
# Also called by the C test as "db_mariadb.sh start DIR PORT" to (re)start the server.

PATH=$PATH:/usr/sbin:/sbin

# start DIR PORT: start mariadbd on DIR/data, record its PID in DIR/pid, wait for it.
start_server() {
	dir=$1
	port=$2
	user=
	[ "$(id -u)" = 0 ] && user=--user=mysql
	mariadbd --no-defaults $user --datadir="$dir/data" --socket="$dir/sock" \
		--pid-file="$dir/mariadbd.pid" --bind-address=127.0.0.1 --port="$port" \
		--skip-name-resolve --max-allowed-packet=64M --innodb-buffer-pool-size=64M \
		--log-error="$dir/error.log" >>"$dir/out.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
	i=0
	while [ $i -lt 150 ]; do
		mariadb-admin --no-defaults --socket="$dir/sock" -uroot ping >/dev/null 2>&1 &&
			return 0
		kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	echo "mariadbd did not start; see $dir/error.log" >&2
	return 1
}

# pause DIR: SIGSTOP mariadbd and wait until every one of its threads has stopped (the
# stop is asynchronous: a query sent right after kill could still be answered).
pause_server() {
	pid=$(cat "$1/pid")
	kill -STOP "$pid" || return 1
	i=0
	while [ $i -lt 100 ]; do
		grep -L '^State:[[:space:]]*T' /proc/"$pid"/task/*/status 2>/dev/null | grep -q . ||
			return 0
		sleep 0.02
		i=$((i + 1))
	done
	return 1
}

case $1 in
start)
	start_server "$2" "$3"
	exit $?
	;;
pause)
	pause_server "$2"
	exit $?
	;;
esac

if ! command -v mariadbd >/dev/null 2>&1 || ! command -v mariadb-install-db >/dev/null 2>&1; then
	echo "1..0 # SKIP mariadbd is not installed (apt-get install mariadb-server)"
	exit 0
fi

top_builddir=${top_builddir:-.}
module=$top_builddir/plugins/db/mariadb/db_mariadb.la
conformance=$top_builddir/tests/plugins/db_conformance
specific=$top_builddir/tests/plugins/db_mariadb
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

t0=$(date +%s%N)
dir=$(mktemp -d /tmp/sbxmdb.XXXXXX) || exit 1
chmod 755 "$dir"
n=0
failed=0

stop_server() {
	if [ -f "$dir/pid" ]; then
		pid=$(cat "$dir/pid")
		kill -CONT "$pid" 2>/dev/null
		kill -TERM "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$pid" 2>/dev/null
	fi
}
cleanup() {
	stop_server
	[ -n "$KEEP" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

emit() { # status description
	n=$((n + 1))
	[ "$1" = ok ] || failed=$((failed + 1))
	echo "$1 $n - $2"
}

# run LABEL CMD...: runs a TAP-producing program, re-emits its results numbered after ours;
# a crash, a short plan or a failing exit status without a failed test is one more failure.
run() {
	label=$1
	shift
	"$@" >"$dir/tap.out" 2>"$dir/tap.err"
	rc=$?
	planned=
	seen=0
	bad=0
	while IFS= read -r line; do
		case $line in
		"ok "* | "not ok "*)
			status=ok
			case $line in "not ok "*) status="not ok" bad=$((bad + 1)) ;; esac
			rest=${line#"$status" }
			rest=${rest#* }
			rest=${rest#- }
			seen=$((seen + 1))
			emit "$status" "$label: $rest"
			;;
		1..*) planned=${line#1..} ;;
		"Bail out!"*)
			emit "not ok" "$label: $line"
			bad=$((bad + 1))
			;;
		"#"*) echo "$line" ;;
		*) echo "# $line" ;;
		esac
	done <"$dir/tap.out"
	cat "$dir/tap.err" >&2
	cat "$dir/tap.out" "$dir/tap.err" >>"$dir/all.log"
	if [ "${planned:-x}" != "$seen" ] || { [ $rc -ne 0 ] && [ $bad -eq 0 ]; }; then
		emit "not ok" "$label ran its whole plan (planned ${planned:-none}, ran $seen, exit $rc)"
	fi
}

# Server: private data directory, socket and port.
# As root mariadbd runs as mysql, which must create its socket and logs in here.
mkdir -p "$dir/data"
[ "$(id -u)" = 0 ] && chown mysql "$dir" "$dir/data"
if ! mariadb-install-db --no-defaults $([ "$(id -u)" = 0 ] && echo --user=mysql) \
	--datadir="$dir/data" --auth-root-authentication-method=normal --skip-test-db \
	>"$dir/install.log" 2>&1; then
	echo "Bail out! mariadb-install-db failed: $(tail -3 "$dir/install.log")"
	exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if ! start_server "$dir" "$port"; then
	echo "Bail out! mariadbd did not start: $(tail -5 "$dir/error.log" 2>/dev/null)"
	exit 1
fi
echo "# mariadbd $(mariadbd --version | awk '{print $3}') pid $(cat "$dir/pid") port $port dir $dir"

# A database and a user with a password (kept in a 0600 file) that may create sbxt_*.
pw=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$pw" >"$dir/password"
chmod 600 "$dir/password"
mariadb --no-defaults --socket="$dir/sock" -uroot <<EOF || { echo "Bail out! cannot create the test user"; exit 1; }
CREATE DATABASE sbxt_main;
CREATE USER 'sbxt'@'127.0.0.1' IDENTIFIED BY '$pw';
CREATE USER 'sbxt'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL ON \`sbxt%\`.* TO 'sbxt'@'127.0.0.1';
GRANT ALL ON \`sbxt%\`.* TO 'sbxt'@'localhost';
EOF
config="{\"host\": \"127.0.0.1\", \"port\": $port, \"user\": \"sbxt\",
 \"password_file\": \"$dir/password\", \"database\": \"sbxt_main\",
 \"connect_timeout_s\": 2, \"read_timeout_s\": 5, \"write_timeout_s\": 5}"

t1=$(date +%s%N)
run conformance "$conformance" "$module" "$config"
t2=$(date +%s%N)
echo "# conformance: $(((t2 - t1) / 1000000)) ms"

SBX_DB_MODULE=$module SBX_DB_CONFIG=$config SBX_MARIADB_PREFIX=sbxt_ \
SBX_MARIADB_ADMIN=$dir/sock SBX_MARIADB_PWFILE=$dir/password \
SBX_MARIADB_STOP="kill -KILL \$(cat '$dir/pid') && while kill -0 \$(cat '$dir/pid') 2>/dev/null; do sleep 0.05; done" \
SBX_MARIADB_START="'$self' start '$dir' $port" \
SBX_MARIADB_PAUSE="'$self' pause '$dir'" \
SBX_MARIADB_RESUME="kill -CONT \$(cat '$dir/pid')" \
	run mariadb "$specific"
t3=$(date +%s%N)
echo "# mariadb-only checks: $(((t3 - t2) / 1000000)) ms"

if grep -q "$pw" "$dir/all.log" "$dir/error.log" 2>/dev/null; then
	emit "not ok" "the password never appears in logs or messages"
else
	emit ok "the password never appears in logs or messages"
fi

echo "# total: $(((t3 - t0) / 1000000)) ms"
echo "1..$n"
[ $failed -eq 0 ]
