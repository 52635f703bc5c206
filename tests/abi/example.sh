#!/bin/sh
# The shipped example plugin builds out of tree against the INSTALLED SDK and loads into
# the installed sbxd. Skips until `make install` has put sbxd under PREFIX.
#   PREFIX=/usr/local sh tests/abi/example.sh       (by hand, after make install)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

top_srcdir=${top_srcdir:-$here/../..}
PREFIX=${PREFIX:-${SBX_PREFIX:-/usr/local}}
SBXD=$PREFIX/sbin/sbxd
src=$(abs_dir "$top_srcdir")/plugin-sdk/examples/policy-first-fit
PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig:$PREFIX/lib64/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH

[ -x "$SBXD" ] || skip_all "no installed sbxd at $SBXD (run make install, or set PREFIX)"
pkg-config --exists sandbox-plugin || skip_all "sandbox-plugin.pc not found under $PREFIX"
[ -d "$src" ] || bail "example sources not found at $src"
make_tmp
# Run from `make check`, the example's make must not join the parent's jobserver.
unset MAKEFLAGS MFLAGS MAKELEVEL

# A copy, so the (possibly read-only) source tree stays clean.
cp -R "$src" "$tmp/src" && chmod -R u+w "$tmp/src"

case $(pkg-config --cflags sandbox-plugin) in
*"-I$PREFIX/include"*) r=0 ;;
*) r=1 ;;
esac
ok $r "pkg-config --cflags sandbox-plugin points into $PREFIX/include"
pluginsdir=$(pkg-config --variable=pluginsdir sandbox-plugin)
case $pluginsdir in
"$PREFIX"/*/sandbox/plugins) r=0 ;;
*) r=1 ;;
esac
ok $r "the .pc names a pluginsdir under the prefix ($pluginsdir)"

make -C "$tmp/src" >"$tmp/build.log" 2>&1
r=$?
ok $r "example builds with the installed SDK (plain make)"
[ $r -eq 0 ] || diag "$(cat "$tmp/build.log")"
! grep -q '\.c:[0-9]*:[0-9]*: warning:' "$tmp/build.log"
r=$?
ok $r "example builds without warnings"
[ $r -eq 0 ] || diag "$(grep -A3 ': warning:' "$tmp/build.log")"

make -C "$tmp/src" check >"$tmp/check.log" 2>&1
r=$?
ok $r "example's own unit test (fake core table) passes"
[ $r -eq 0 ] || diag "$(cat "$tmp/check.log")"

make -C "$tmp/src" install DESTDIR="$tmp/root" >"$tmp/install.log" 2>&1
so=$tmp/root$pluginsdir/policy_first_fit.so
ok $([ -f "$so" ]; echo $?) "make install puts policy_first_fit.so into DESTDIR + pluginsdir"

mkdir -p "$tmp/data"
cat >"$tmp/sbxd.conf" <<CONF
server = { data_dir = "$tmp/data"; };
plugins = (
  { kind = "db"; module = "sqlite"; config = { path = "sbxd.db"; }; },
  { kind = "storage"; module = "local"; config = { dir = "objects"; }; },
  { kind = "runtime"; module = "linux"; name = "local"; config = { }; },
  { kind = "policy"; module = "first_fit"; name = "ff"; path = "$so";
    config = { reserve_memory_mb = 256; prefer_warm = true; }; }
);
CONF
"$SBXD" --config "$tmp/sbxd.conf" --check-config >"$tmp/out" 2>"$tmp/err"
rc=$?
ok $rc "installed sbxd --check-config accepts the example (exit 0)"
[ $rc -eq 0 ] || diag "stderr was:" "$(cat "$tmp/err")"
grep -q 'configuration OK' "$tmp/out" "$tmp/err"
ok $? "prints 'configuration OK'"

sed 's/prefer_warm = true;/prefer_wram = true;/' "$tmp/sbxd.conf" >"$tmp/bad.conf"
"$SBXD" --config "$tmp/bad.conf" --check-config >"$tmp/out" 2>"$tmp/err"
rc=$?
line_has "$tmp/err" "plugin 'ff'" "create failed" "prefer_wram"
r=$?
ok $([ $rc -eq 1 ] && [ $r -eq 0 ]; echo $?) "a misspelt config key is refused naming the key"
[ $r -eq 0 ] || diag "stderr was:" "$(cat "$tmp/err")"

if sbxd_start "$SBXD" "$tmp/sbxd.conf"; then
	ok 0 "installed sbxd starts with the example loaded"
	curl -sS -o "$tmp/health.json" "http://127.0.0.1:$port/api/v1/health/detailed"
	has_instance "$tmp/health.json" ff policy first_fit 1.0.0
	r=$?
	ok $r "/health/detailed lists ff (policy, first_fit, 1.0.0, status)"
	[ $r -eq 0 ] || diag "health/detailed was:" "$(cat "$tmp/health.json")"
	sbxd_stop
else
	ok 1 "installed sbxd starts with the example loaded"
fi

# The core calls select_node: with every node's memory reserved, sessions get our
# SBX_E_LIMIT, i.e. 429 carrying our message.
sed 's/reserve_memory_mb = 256;/reserve_memory_mb = 1000000000;/' "$tmp/sbxd.conf" >"$tmp/full.conf"
if sbxd_start "$SBXD" "$tmp/full.conf"; then
	code=$(curl -sS -o "$tmp/resp.json" -w '%{http_code}' -X POST \
		-H 'Content-Type: application/json' -d '{"template_id": "shell-basic"}' \
		"http://127.0.0.1:$port/api/v1/sessions")
	[ "$code" = 429 ] && grep -q 'no healthy node has' "$tmp/resp.json"
	r=$?
	ok $r "select_node is called: no node fits -> 429 with the module's message (got $code)"
	[ $r -eq 0 ] || diag "response was:" "$(cat "$tmp/resp.json")"
	sbxd_stop
else
	ok 1 "select_node is called: sbxd starts with a policy no node satisfies"
fi

done_testing
