#!/usr/bin/env bash
# Starts (or stops) the production dependencies on loopback for the integration suite's
# production tier: a private mariadbd (database sbxd, a user with a password file) and an
# S3 server (s3rver, verifying SigV4) with a bucket, and writes DIR/sbxd.conf: the
# installed embedded-default configuration with db = mariadb and storage = minio.
#   tests/production/services.sh start DIR [PREFIX]    (prints the config path)
#   tests/production/services.sh stop DIR
#   tests/production/services.sh db-stop DIR / db-start DIR   (restart MariaDB alone)
set -u
cmd=${1:?start|stop}
dir=${2:?directory}
prefix=${3:-/usr/local}
top=$(cd "$(dirname "$0")/../.." && pwd)

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
	for p in "$dir/mariadb.pid" "$dir/s3rver.pid"; do
		[ -f "$p" ] || continue
		pid=$(cat "$p")
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
		rm -f "$p"
	done
}

db_start() { # DIR/db.port holds the port; same datadir, same port
	mariadbd --no-defaults $user_opt --datadir="$dir/mariadb/data" --socket="$dir/mariadb/sock" \
		--bind-address=127.0.0.1 --port="$(cat "$dir/db.port")" --skip-name-resolve \
		--max-allowed-packet=256M --log-error="$dir/mariadb/error.log" \
		--pid-file="$dir/mariadb/mariadbd.pid" &
	echo $! >"$dir/mariadb.pid"
	for _ in $(seq 1 100); do
		mariadb-admin --no-defaults --socket="$dir/mariadb/sock" -uroot ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "mariadbd did not start: see $dir/mariadb/error.log" >&2
	return 1
}
user_opt=
[ "$(id -u)" = 0 ] && user_opt=--user=mysql

case "$cmd" in
stop)
	stop
	exit 0
	;;
db-stop)
	pid=$(cat "$dir/mariadb.pid")
	kill "$pid"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
	rm -f "$dir/mariadb.pid"
	exit 0
	;;
db-start)
	db_start
	exit $?
	;;
esac

mkdir -p "$dir"
chmod 711 "$dir"
trap 'stop' ERR

# ---- MariaDB ---------------------------------------------------------------------------
command -v mariadbd >/dev/null || { echo "mariadbd is not installed (apt-get install mariadb-server)" >&2; exit 1; }
mkdir -p "$dir/mariadb"
[ "$(id -u)" = 0 ] && chown mysql "$dir/mariadb"
mariadb-install-db --no-defaults $user_opt --datadir="$dir/mariadb/data" \
	--auth-root-authentication-method=normal --skip-test-db >"$dir/mariadb-install.log" 2>&1 ||
	{ echo "mariadb-install-db failed: see $dir/mariadb-install.log" >&2; exit 1; }
[ "$(id -u)" = 0 ] && chown -R mysql "$dir/mariadb"
db_port=$(free_port)
echo "$db_port" >"$dir/db.port"
db_start || { stop; exit 1; }
pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$pw" >"$dir/db.password"
chmod 600 "$dir/db.password"
mariadb --no-defaults --socket="$dir/mariadb/sock" -uroot <<SQL || { echo "cannot create the sbxd database" >&2; stop; exit 1; }
CREATE DATABASE sbxd;
CREATE USER 'sbxd'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL ON sbxd.* TO 'sbxd'@'127.0.0.1';
SQL

# ---- S3 (s3rver) -----------------------------------------------------------------------
cache=${S3RVER_CACHE:-$top/build-test/s3rver-cache}
mods="$cache/node_modules"
if [ ! -f "$mods/@20minutes/s3rver/package.json" ]; then
	mkdir -p "$cache"
	npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$cache" \
		@20minutes/s3rver@5.0.0 >"$dir/npm.log" 2>&1 ||
		{ echo "npm install @20minutes/s3rver failed: see $dir/npm.log" >&2; stop; exit 1; }
fi
ak=sbxprod$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
sk=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
node --openssl-legacy-provider "$top/tests/plugins/storage_s3rver.js" "$(cd "$mods" && pwd)" \
	"$dir/s3" "$ak" "$sk" sbxd-prod "$dir/s3.ports" >"$dir/s3rver.log" 2>&1 &
echo $! >"$dir/s3rver.pid"
for _ in $(seq 1 100); do [ -s "$dir/s3.ports" ] && break; sleep 0.1; done
[ -s "$dir/s3.ports" ] || { echo "s3rver did not start: see $dir/s3rver.log" >&2; stop; exit 1; }
s3_port=$(awk '{print $1}' "$dir/s3.ports")
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$ak" "$sk" >"$dir/s3.credentials"
chmod 600 "$dir/s3.credentials"

# ---- sbxd configuration ------------------------------------------------------------------
/usr/bin/python3 - "$prefix/etc/sandbox/sbxd.conf" "$dir/sbxd.conf" <<PY
import re, sys
src, dst = sys.argv[1:3]
s = open(src).read()
db = ('{ kind = "db"; module = "mariadb"; config = { host = "127.0.0.1"; port = $db_port; '
      'user = "sbxd"; database = "sbxd"; password_file = "$dir/db.password"; '
      'connect_timeout_s = 2; read_timeout_s = 30; write_timeout_s = 30; }; }')
st = ('{ kind = "storage"; module = "minio"; config = { endpoint = "http://127.0.0.1:$s3_port"; '
      'bucket = "sbxd-prod"; credentials_file = "$dir/s3.credentials"; }; }')
s, n1 = re.subn(r'\{ kind = "db";[^\n]*\}, *\n', db + ',\n', s)
s, n2 = re.subn(r'\{ kind = "storage";[^\n]*\}, *\n', st + ',\n', s)
# placement through the affinity policy, as in the production example (a test machine has
# few cores: CPU is overcommitted far beyond the default so that the suite's sessions fit)
s, n3 = re.subn(r'(\{ kind = "runtime";[^\n]*\})( *\n)',
                r'\1,\n  { kind = "policy"; module = "affinity"; config = { cpu_overcommit = 64.0; }; }\2', s)
assert n1 == 1 and n2 == 1 and n3 == 1, (n1, n2, n3)
open(dst, "w").write(s)
PY
echo "$dir/sbxd.conf"
