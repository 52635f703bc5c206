# tests/: TAP tests run by `make check` (unit, plugin, ABI). Integration tiers: see
# tests/run-all.sh. Each area appends to TESTS / check_PROGRAMS here.
EXTRA_DIST += tests/tap.h

# House style: the C sources are in .clang-format style.
TESTS += tests/format.sh
EXTRA_DIST += tests/format.sh
