#!/bin/sh
# Modules built against the frozen ABI 1.0 headers (tests/abi/frozen-1.0) still load, are
# created with their config, show in /health/detailed, and are called by this sbxd.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

top_srcdir=${top_srcdir:-$here/../..}
top_builddir=${top_builddir:-$top_srcdir}
B=$(abs_dir "$top_builddir")
SBXD=${SBXD:-$B/sbxd}
fx=$B/tests/abi/.libs
token=frozen-test-token-0123456789
[ -x "$SBXD" ] || bail "no sbxd at $SBXD (build it first)"
[ -f "$fx/policy_frozen.so" ] || bail "fixtures not built in $fx (make check builds them)"
make_tmp
mkdir -p "$tmp/plugins" "$tmp/data"

# The uninstalled tree: every module this build made, plus the frozen ones, in one
# plugins_dir, so that modules the core loads by default are found too.
for so in "$B"/plugins/*/*/.libs/*.so "$fx/policy_frozen.so" "$fx/auth_frozen.so"; do
	[ -f "$so" ] && ln -sf "$so" "$tmp/plugins/"
done
# sbxd needs a db and a runtime besides the modules under test.
base='{ kind = "db"; module = "sqlite"; config = { path = "sbxd.db"; }; },
  { kind = "storage"; module = "local"; config = { dir = "objects"; }; },
  { kind = "runtime"; module = "linux"; name = "local"; config = { }; },'

cat >"$tmp/path.conf" <<CONF
server = { data_dir = "$tmp/data"; plugins_dir = "$tmp/plugins"; };
plugins = (
  $base
  { kind = "policy"; module = "frozen"; name = "frozen-policy"; path = "$fx/policy_frozen.so";
    config = { min_free_sessions = 1; }; },
  { kind = "auth"; module = "frozen"; name = "frozen-auth"; path = "$fx/auth_frozen.so";
    config = { token = "$token"; tenant = "t-frozen"; }; }
);
CONF
"$SBXD" --config "$tmp/path.conf" --check-config >"$tmp/out" 2>"$tmp/err"
rc=$?
ok $rc "frozen policy and auth modules by path: --check-config exits 0"
[ $rc -eq 0 ] || diag "stderr was:" "$(cat "$tmp/err")"
grep -q 'configuration OK' "$tmp/out" "$tmp/err"
ok $? "frozen modules by path: prints 'configuration OK'"

# Found by <plugins_dir>/<kind>_<module>.so, two instances of one module side by side.
cat >"$tmp/lookup.conf" <<CONF
server = { data_dir = "$tmp/data"; plugins_dir = "$tmp/plugins"; };
plugins = (
  $base
  { kind = "policy"; module = "frozen"; config = { }; },
  { kind = "policy"; module = "frozen"; name = "frozen-two"; config = { min_free_sessions = 2; }; },
  { kind = "auth"; module = "frozen"; config = { token = "$token"; }; }
);
CONF
"$SBXD" --config "$tmp/lookup.conf" --check-config >"$tmp/out" 2>"$tmp/err"
rc=$?
ok $rc "frozen modules by plugins_dir lookup, two instances of one: --check-config exits 0"
[ $rc -eq 0 ] || diag "stderr was:" "$(cat "$tmp/err")"

# Running: /health/detailed lists them, and the frozen auth module decides requests.
if sbxd_start "$SBXD" "$tmp/path.conf"; then
	ok 0 "sbxd starts with the frozen modules"
	curl -sS -H "Authorization: Bearer $token" -o "$tmp/health.json" \
		"http://127.0.0.1:$port/api/v1/health/detailed"
	for inst in "frozen-policy policy" "frozen-auth auth"; do
		set -- $inst
		has_instance "$tmp/health.json" "$1" "$2" frozen 1.0.0
		r=$?
		ok $r "/health/detailed lists $1 (kind $2, module frozen, version 1.0.0, status)"
		[ $r -eq 0 ] || diag "health/detailed was:" "$(cat "$tmp/health.json")"
	done
	code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/templates")
	ok $([ "$code" = 401 ]; echo $?) "no credential: the frozen auth chain refuses (401, got $code)"
	code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong-token" \
		"http://127.0.0.1:$port/api/v1/templates")
	ok $([ "$code" = 401 ]; echo $?) "wrong token: frozen auth says unauthorized (401, got $code)"
	code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
		"http://127.0.0.1:$port/api/v1/templates")
	ok $([ "$code" = 200 ]; echo $?) "right token: frozen auth admits the request (200, got $code)"
	sbxd_stop
else
	ok 1 "sbxd starts with the frozen modules"
fi

# The core calls the frozen select_node: asking for more free slots than any node has
# gives its SBX_E_LIMIT, i.e. 429 carrying its message.
sed 's/min_free_sessions = 1;/min_free_sessions = 1000000;/' "$tmp/path.conf" >"$tmp/full.conf"
if sbxd_start "$SBXD" "$tmp/full.conf"; then
	code=$(curl -sS -o "$tmp/resp.json" -w '%{http_code}' -X POST \
		-H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		-d '{"template_id": "shell-basic"}' "http://127.0.0.1:$port/api/v1/sessions")
	[ "$code" = 429 ] && grep -q 'free session slot' "$tmp/resp.json"
	r=$?
	ok $r "frozen select_node is called: no node fits -> 429 with its message (got $code)"
	[ $r -eq 0 ] || diag "response was:" "$(cat "$tmp/resp.json")"
	sbxd_stop
else
	ok 1 "frozen select_node is called: sbxd starts"
fi

done_testing
