#!/usr/bin/env bash
# The whole test suite, every tier, as the README's test command runs it (as root, on
# Debian 12, with .ci/packages installed):
#   1. build (warnings are errors) and `make check`: unit, plugin, ABI and executor tests;
#   2. `make install` into PREFIX (default /usr/local), then the installed-SDK test (the
#      example plugin built out of tree with `pkg-config sandbox-plugin`);
#   3. the HTTP integration suite and the isolation probes (pytest) against the installed
#      sbxd on the embedded default configuration, then the integration suite again on
#      the production configuration (MariaDB + an S3 server, both started here), and
#      both suites on the docker runtime against a private dockerd started here (images
#      built by etc/images/build.sh, cached in /var/cache/sbxd-images), and the docker
#      module's own test (tests/plugins/runtime_docker.sh, a private dockerd of its own);
#   4. `make distcheck`;
#   5. the sanitizer tier: a separate build (build-asan) with --enable-asan --enable-ubsan
#      (gcc; LeakSanitizer on) and its `make check` (SKIP_SANITIZERS=1 skips it);
#   6. the fuzzing tier: tests/fuzz/run.sh, every libFuzzer target for FUZZ_SECONDS (60)
#      built with clang in build-fuzz (SKIP_FUZZ=1 skips it).
# Ends with one line "N passed, N failed" summing every tier; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
prefix=${PREFIX:-/usr/local}
build=${BUILD_DIR:-$top/build-test}
jobs=${JOBS:-$(nproc)}
pass=0 fail=0 skip=0
step_fail=0

say() { printf '\n=== %s ===\n' "$*"; }
count_automake() { # test-suite.log → pass/fail/skip
	local log=$1 p f s e
	[ -f "$log" ] || { fail=$((fail + 1)); return; }
	p=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
	f=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
	e=$(sed -n 's/^# ERROR: *//p' "$log" | head -1)
	s=$(sed -n 's/^# SKIP: *//p' "$log" | head -1)
	pass=$((pass + ${p:-0})) fail=$((fail + ${f:-0} + ${e:-0})) skip=$((skip + ${s:-0}))
}
count_junit() { # pytest junit xml → pass/fail/skip
	local out
	out=$(/usr/bin/python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1, 0); sys.exit()
suites = [r] if r.tag == "testsuite" else list(r)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
k = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - k, f, k)
PY
)
	set -- $out
	pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + $3))
}

say "build"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	./autogen.sh >/dev/null 2>&1 || { echo "autogen.sh failed"; exit 1; }
fi
mkdir -p "$build"
( cd "$build" && "$top/configure" --prefix="$prefix" --enable-werror -q ) 2>&1 |
	grep -v "rm: cannot remove 'core': Is a directory"
( cd "$build" && make -j"$jobs" -s ) || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

say "make check (unit, plugin, ABI, executor)"
( cd "$build" && make -j"$jobs" check ) || step_fail=1
count_automake "$build/test-suite.log"
[ $step_fail = 1 ] && [ -f "$build/test-suite.log" ] && grep -E '^(FAIL|ERROR)' "$build/test-suite.log"

say "make install (prefix $prefix) and the installed SDK"
( cd "$build" && make -s install ) >/dev/null || { echo "make install failed"; fail=$((fail + 1)); }
ldconfig 2>/dev/null || true
if [ -x tests/abi/example.sh ]; then
	if PREFIX=$prefix bash tests/abi/example.sh > "$build/example.log" 2>&1; then
		cat "$build/example.log"
		pass=$((pass + $(grep -c '^ok ' "$build/example.log")))
		fail=$((fail + $(grep -c '^not ok ' "$build/example.log")))
	else
		cat "$build/example.log"
		fail=$((fail + 1 + $(grep -c '^not ok ' "$build/example.log")))
		pass=$((pass + $(grep -c '^ok ' "$build/example.log")))
	fi
fi

say "HTTP integration suite and isolation probes (installed sbxd, embedded default)"
SBXD="$prefix/sbin/sbxd" SBXD_CONFIG="$prefix/etc/sandbox/sbxd.conf" \
	/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE \
	--junitxml="$build/pytest.xml" tests/integration tests/security
count_junit "$build/pytest.xml"

say "HTTP integration suite under the production configuration (mariadbd + S3 server)"
prod=$(mktemp -d /tmp/sbxd-prod.XXXXXX)
if cfg=$(tests/production/services.sh start "$prod" "$prefix" 2>"$build/production-services.log"); then
	SBXD="$prefix/sbin/sbxd" SBXD_CONFIG="$cfg" SBXD_PROD_DIR="$prod" \
		/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE \
		--junitxml="$build/pytest-production.xml" tests/integration
	count_junit "$build/pytest-production.xml"
else
	echo "could not start mariadbd and the S3 server:"
	cat "$build/production-services.log"
	fail=$((fail + 1))
fi
tests/production/services.sh stop "$prod"
rm -rf "$prod"

say "HTTP integration suite and isolation probes on the docker runtime (real dockerd)"
t0=$SECONDS
dock=$(mktemp -d /tmp/sbxd-docker.XXXXXX)
if cfg=$(tests/docker/services.sh start "$dock" "$prefix" 2>"$build/docker-services.log"); then
	SBXD="$prefix/sbin/sbxd" SBXD_CONFIG="$cfg" SBXD_RUNTIME=docker \
		SBXD_DOCKER_HOST="unix://$dock/docker.sock" \
		/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE \
		--junitxml="$build/pytest-docker.xml" tests/integration tests/security
	count_junit "$build/pytest-docker.xml"
else
	echo "could not start dockerd or build the sandbox images:"
	cat "$build/docker-services.log"
	fail=$((fail + 1))
fi
tests/docker/services.sh stop "$dock"
rm -rf --one-file-system "$dock"
# The docker module's own test (TAP) against a private dockerd of its own (also on TCP with
# TLS client certificates): every container setting read back from the engine, OOM, kill,
# list, cleanup, error mapping.
( cd "$build" && top_srcdir="$top" top_builddir=. "$top/tests/plugins/runtime_docker.sh" ) \
	> "$build/runtime_docker.tap" 2>&1
rd=$?
grep -E '^(not )?ok ' "$build/runtime_docker.tap" | grep -v '^ok ' | head -20
pass=$((pass + $(grep -c '^ok ' "$build/runtime_docker.tap")))
fail=$((fail + $(grep -c '^not ok ' "$build/runtime_docker.tap")))
if [ $rd != 0 ] && ! grep -q '^not ok ' "$build/runtime_docker.tap"; then
	tail -20 "$build/runtime_docker.tap"
	fail=$((fail + 1))
fi
echo "docker tier: $((SECONDS - t0)) s"

if [ "${SKIP_DISTCHECK:-0}" != 1 ]; then
	say "make distcheck"
	if ( cd "$build" && make -j"$jobs" distcheck ) > "$build/distcheck.log" 2>&1; then
		pass=$((pass + 1))
		tail -4 "$build/distcheck.log"
	else
		fail=$((fail + 1))
		tail -40 "$build/distcheck.log"
	fi
fi

if [ "${SKIP_SANITIZERS:-0}" != 1 ]; then
	say "sanitizer tier: make check built with ASan + UBSan (build-asan)"
	san=${SAN_BUILD_DIR:-$top/build-asan}
	t0=$SECONDS
	mkdir -p "$san"
	# ASAN_OPTIONS for tests/executor/api.sh only: it bounds the executor's peak RSS after
	# 64 MiB of output at 40 MB, and ASan's quarantine (256 MB by default) keeps the freed
	# buffers resident; 8 MB keeps the bound meaningful (28 MB measured).
	san_env='case $$f in *tests/executor/api.sh) ASAN_OPTIONS=quarantine_size_mb=8:$${ASAN_OPTIONS:-}; export ASAN_OPTIONS;; esac;'
	if ! ( cd "$san" && "$top/configure" --enable-asan --enable-ubsan --enable-werror -q &&
		make -j"$jobs" -s ) > "$san/build.out" 2>&1; then
		grep -v "rm: cannot remove 'core'" "$san/build.out" | tail -30
		echo "sanitizer build failed"
		fail=$((fail + 1))
	else
		( cd "$san" && make -j"$jobs" check TESTS_ENVIRONMENT="$san_env" ) > "$san/check.out" 2>&1
		count_automake "$san/test-suite.log"
		grep -E '^(FAIL|ERROR)' "$san/test-suite.log" 2>/dev/null
		grep -rl -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$san/tests" \
			--include='*.log' 2>/dev/null | sed 's/^/sanitizer report in: /'
		sed -n 's/^# \(TOTAL\|PASS\|FAIL\|ERROR\):/  &/p' "$san/test-suite.log" 2>/dev/null
	fi
	echo "sanitizer tier: $((SECONDS - t0)) s"
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
	say "fuzzing tier: libFuzzer targets, ${FUZZ_SECONDS:-60} s each (build-fuzz)"
	t0=$SECONDS
	fz=${FUZZ_BUILD_DIR:-$top/build-fuzz}
	mkdir -p "$fz"
	tests/fuzz/run.sh > "$fz/run.tap" 2>&1
	cat "$fz/run.tap"
	pass=$((pass + $(grep -c '^ok ' "$fz/run.tap")))
	fail=$((fail + $(grep -c '^not ok ' "$fz/run.tap")))
	echo "fuzzing tier: $((SECONDS - t0)) s"
fi

echo
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
