#!/bin/sh
# Runs tests/plugins/storage_s3 (the storage modules s3 and minio) against s3rver, an S3
# stand-in on node that verifies SigV4 signatures and presigned-URL expiry (no MinIO server
# can be installed here). s3rver 5.0.0 is installed on first use into a cache under the
# build directory (npm install --no-save --prefix). Without node/npm only the offline unit
# tests run. Both servers listen on 127.0.0.1 and are stopped by PID on exit. TAP.
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
prog="$top_builddir/tests/plugins/storage_s3"
cache="$top_builddir/tests/plugins/s3rver-cache"
mods="$cache/node_modules"
work=$(mktemp -d "${TMPDIR:-/tmp}/sbx-s3test-XXXXXX") || exit 1
pid=

cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "# node/npm not installed: offline unit tests only"
	exec "$prog"
fi
if [ ! -f "$mods/@20minutes/s3rver/package.json" ]; then
	mkdir -p "$cache"
	if ! npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$cache" \
		@20minutes/s3rver@5.0.0 >"$work/npm.log" 2>&1; then
		sed 's/^/# npm: /' "$work/npm.log"
		echo "1..0 # SKIP npm could not install @20minutes/s3rver@5.0.0"
		exit 0
	fi
fi

ak="AKSBXTEST$$"
sk="sbx-secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
bucket=sbx-test
# s3rver's continuation tokens use DES, which OpenSSL 3 keeps in the legacy provider.
node --openssl-legacy-provider "$top_srcdir/tests/plugins/storage_s3rver.js" "$(cd "$mods" && pwd)" \
	"$work/data" "$ak" "$sk" "$bucket" "$work/ports" >"$work/s3rver.log" 2>&1 &
pid=$!
i=0
while [ ! -s "$work/ports" ] && [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if [ ! -s "$work/ports" ]; then
	sed 's/^/# s3rver: /' "$work/s3rver.log"
	echo "Bail out! s3rver did not start"
	exit 1
fi
read -r port lax_port <"$work/ports"
echo "# s3rver on 127.0.0.1:$port (strict) and :$lax_port (lax, virtual hosts), pid $pid"

S3_TEST_ENDPOINT="http://127.0.0.1:$port" \
	S3_TEST_LAX_ENDPOINT="http://s3.localhost:$lax_port" \
	S3_TEST_BUCKET="$bucket" S3_TEST_ACCESS_KEY="$ak" S3_TEST_SECRET_KEY="$sk" \
	TMPDIR="$work" top_builddir="$top_builddir" "$prog"
