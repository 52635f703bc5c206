#!/bin/sh
# Modules that break the ABI rules are refused by `sbxd --check-config` with exit 1 and one
# line per problem naming the instance, the file and the reason (DESIGN.md §3).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

top_srcdir=${top_srcdir:-$here/../..}
top_builddir=${top_builddir:-$top_srcdir}
B=$(abs_dir "$top_builddir")
SBXD=${SBXD:-$B/sbxd}
fx=$B/tests/abi/.libs
[ -x "$SBXD" ] || bail "no sbxd at $SBXD (build it first)"
[ -f "$fx/abi_bad_magic.so" ] || bail "fixtures not built in $fx (make check builds them)"
make_tmp
mkdir -p "$tmp/plugins" "$tmp/data"

# conf FILE GROUP...: a config whose plugins list is the given groups.
conf()
{
	f=$1
	shift
	{
		echo "server = { data_dir = \"$tmp/data\"; plugins_dir = \"$tmp/plugins\"; };"
		echo "plugins = ("
		sep=""
		for g in "$@"; do
			printf '%s  %s\n' "$sep" "$g"
			sep=","
		done
		echo ");"
	} >"$f"
}

# refused LABEL KIND NAME PATH CONFIG PHRASE...: a config with one instance is refused
# with exit 1, and one stderr line names the instance and file and holds every PHRASE.
refused()
{
	label=$1 kind=$2 name=$3 path=$4 cfg=$5
	shift 5
	conf "$tmp/$name.conf" "{ kind = \"$kind\"; module = \"$name\"; name = \"$name\"; path = \"$path\"; config = { $cfg }; }"
	"$SBXD" --config "$tmp/$name.conf" --check-config >"$tmp/out" 2>"$tmp/err"
	rc=$?
	ok $([ $rc -eq 1 ]; echo $?) "$label: exit status 1 (got $rc)"
	line_has "$tmp/err" "plugin '$name' ($path)" "$@"
	r=$?
	ok $r "$label: stderr names '$name', its file and says: $*"
	[ $r -eq 0 ] || diag "stderr was:" "$(cat "$tmp/err")"
	! grep -q 'configuration OK' "$tmp/out" "$tmp/err"
	ok $? "$label: does not claim 'configuration OK'"
}

refused "file missing" policy missing "$tmp/nowhere/policy_missing.so" "" "cannot load"

printf 'not an ELF object\n' >"$tmp/garbage.so"
refused "not a shared object" policy garbage "$tmp/garbage.so" "" "cannot load"

refused "no entry symbol" policy no-entry "$fx/abi_no_entry.so" "" \
	"no sbx_plugin_entry symbol" "not an sbxd plugin"
refused "bad magic" policy bad-magic "$fx/abi_bad_magic.so" "" \
	"bad magic 0x12345678" "not an sbxd plugin"
refused "newer major" policy newer-major "$fx/abi_newer_major.so" "" \
	"built for ABI 2.0" "rebuild it against this sbxd's SDK"
refused "older major" policy older-major "$fx/abi_older_major.so" "" \
	"built for ABI 0.9" "rebuild it against this sbxd's SDK"
refused "newer minor" policy newer-minor "$fx/abi_newer_minor.so" "" \
	"built for ABI 1.99, newer than this sbxd" "upgrade sbxd or rebuild the plugin"
refused "short size" policy short-size "$fx/abi_short_size.so" "" \
	"descriptor size" "policy descriptor"
refused "policy without select_node" policy no-select-node "$fx/abi_no_select_node.so" "" \
	"missing mandatory method 'select_node'"
refused "policy without create" policy no-create "$fx/abi_no_create.so" "" \
	"missing mandatory method 'create'"
refused "db without session_insert" db db-no-session-insert \
	"$fx/abi_db_no_session_insert.so" "" "missing mandatory method 'session_insert'"
refused "wrong kind" storage wrong-kind "$fx/policy_frozen.so" "" \
	"is a policy plugin, configured as storage"
refused "create fails on an unknown config key" policy bad-key "$fx/policy_frozen.so" \
	"min_free_sesions = 2;" "create failed" "min_free_sesions"
refused "create fails on a bad config value" auth short-token "$fx/auth_frozen.so" \
	"token = \"short\";" "create failed" "at least 16 characters"

# Without `path`, the module is looked up as <plugins_dir>/<kind>_<module>.so and the
# message names the file it looked for.
conf "$tmp/lookup.conf" '{ kind = "policy"; module = "nosuch"; config = { }; }'
"$SBXD" --config "$tmp/lookup.conf" --check-config >"$tmp/out" 2>"$tmp/err"
rc=$?
ok $([ $rc -eq 1 ]; echo $?) "module lookup: exit status 1 (got $rc)"
line_has "$tmp/err" "plugin 'nosuch' ($tmp/plugins/policy_nosuch.so)" "cannot load"
r=$?
ok $r "module lookup: names <plugins_dir>/policy_nosuch.so"
[ $r -eq 0 ] || diag "stderr was:" "$(cat "$tmp/err")"

# Every bad instance is reported, one line each, not just the first.
conf "$tmp/many.conf" \
	"{ kind = \"policy\"; module = \"a\"; name = \"first-bad\"; path = \"$fx/abi_bad_magic.so\"; }" \
	"{ kind = \"policy\"; module = \"b\"; name = \"good\"; path = \"$fx/policy_frozen.so\"; }" \
	"{ kind = \"policy\"; module = \"c\"; name = \"second-bad\"; path = \"$fx/abi_newer_major.so\"; }"
"$SBXD" --config "$tmp/many.conf" --check-config >"$tmp/out" 2>"$tmp/err"
rc=$?
ok $([ $rc -eq 1 ]; echo $?) "two bad instances: exit status 1 (got $rc)"
line_has "$tmp/err" "plugin 'first-bad'" "bad magic" &&
	line_has "$tmp/err" "plugin 'second-bad'" "built for ABI 2.0"
r=$?
ok $r "two bad instances: both reported"
[ $r -eq 0 ] || diag "stderr was:" "$(cat "$tmp/err")"
! grep -q "plugin 'good'" "$tmp/err"
ok $? "two bad instances: the good one is not blamed"

done_testing
