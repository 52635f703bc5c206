#!/usr/bin/env bash
# The fuzzing tier: build the libFuzzer targets of tests/fuzz in their own build directory
# (clang, --enable-fuzzing: ASan + UBSan + coverage everywhere) and run each for
# FUZZ_SECONDS on a scratch copy of its committed corpus, so nothing new is written into the
# tree. TAP on stdout, one line per target with the executions run; exits non-zero on any
# crash, leak, timeout or sanitizer report, keeping the reproducer and printing its path.
#
# Environment: FUZZ_SECONDS (default 60), FUZZ_TARGETS (default: every target),
# FUZZ_BUILD_DIR (default build-fuzz), CC (default clang), JOBS (default nproc).
# Reproduce a failure: FUZZ_BUILD_DIR/tests/fuzz/<target> <artifact>.
set -u
cd "$(dirname "$0")/../.."
top=$(pwd)
build=${FUZZ_BUILD_DIR:-$top/build-fuzz}
secs=${FUZZ_SECONDS:-60}
jobs=${JOBS:-$(nproc)}
targets=${FUZZ_TARGETS:-"fuzz_config fuzz_exec_stream fuzz_http_request fuzz_executor_request"}
fuzzdir=$top/tests/fuzz

# Only the targets this checkout has (fuzz_executor_request needs executor/request.c).
have=""
for t in $targets; do
	[ -f "$fuzzdir/$t.c" ] && have="$have $t"
done
targets=$have
n=$(echo $targets | wc -w)

bail() { # build problems: one failing test point, so that run-all counts it
	echo "1..1"
	echo "not ok 1 - fuzz targets build: $*"
	exit 1
}

if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	./autogen.sh >/dev/null 2>&1 || bail "autogen.sh failed"
fi
mkdir -p "$build"
if [ ! -f "$build/Makefile" ] || [ configure -nt "$build/Makefile" ]; then
	(cd "$build" && CC=${CC:-clang} "$top/configure" --enable-fuzzing --enable-werror -q) \
		>"$build/configure.out" 2>&1 || {
		grep -v "rm: cannot remove 'core'" "$build/configure.out" | tail -5 >&2
		bail "configure failed (needs clang and libclang-rt-14-dev), see $build/config.log"
	}
fi
(cd "$build" && make -j"$jobs" -s $(printf 'tests/fuzz/%s ' $targets) \
	plugins/db/sqlite/db_sqlite.la) >"$build/make.out" 2>&1 || {
	grep -E "error|Error" "$build/make.out" | head -20 >&2
	bail "make failed, see $build/make.out"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/sbxd-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"
if ! command -v llvm-symbolizer >/dev/null 2>&1; then # Debian's llvm-14 keeps it off PATH
	for s in /usr/lib/llvm-*/bin/llvm-symbolizer; do
		[ -x "$s" ] && export ASAN_SYMBOLIZER_PATH=$s
	done
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$fuzzdir/lsan.supp:print_suppressions=0}

echo "1..$n"
i=0 bad=0
for t in $targets; do
	i=$((i + 1))
	corpus=$work/corpus-$t
	mkdir -p "$corpus" "$work/tmp-$t"
	[ -d "$fuzzdir/corpus/$t" ] && cp -R "$fuzzdir/corpus/$t/." "$corpus/"
	dict=()
	[ -f "$fuzzdir/$t.dict" ] && dict=(-dict="$fuzzdir/$t.dict")
	log=$build/fuzz-$t.log
	rm -f "$artifacts/$t-"*
	t0=$(date +%s)
	TMPDIR=$work/tmp-$t "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
		"${dict[@]}" "$corpus" >"$log" 2>&1
	rc=$?
	t1=$(date +%s)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	art=$(ls "$artifacts/$t-"* 2>/dev/null | head -1)
	if [ $rc -eq 0 ] && [ -z "$art" ] &&
		! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
		echo "ok $i - $t: ${execs:-0} execs in $((t1 - t0)) s"
	else
		bad=1
		why=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z -]+|runtime error: .*|fuzz_[a-z_]+: .*' "$log")
		echo "not ok $i - $t: ${why:-exit $rc} after ${execs:-?} execs; reproducer: ${art:-none}; log: $log"
		grep -E '^ +#[0-9]+ .* in ' "$log" |
			grep -v -E 'libFuzzer|fuzzer::|__sanitizer|__interceptor|__asan|libc| in (main|_start) ' |
			head -8 | sed 's/^/# /'
	fi
done
exit $bad
