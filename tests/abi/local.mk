# tests/abi/: ABI fixtures (modules the core must refuse, and modules built against the
# frozen 1.0 headers that every 1.x core must load), their TAP tests, and the shipped
# out-of-tree example plugin (plugin-sdk/examples/, distributed, never built here).

# Shared objects for the tests only: -rpath makes libtool build them shared, check_ keeps
# them from being installed.
ABI_FIXTURE_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS) -rpath /nowhere
ABI_FIXTURE_CFLAGS = $(SBX_PLUGIN_CFLAGS)

check_LTLIBRARIES += \
	tests/abi/abi_bad_magic.la \
	tests/abi/abi_newer_major.la \
	tests/abi/abi_older_major.la \
	tests/abi/abi_newer_minor.la \
	tests/abi/abi_short_size.la \
	tests/abi/abi_no_select_node.la \
	tests/abi/abi_no_create.la \
	tests/abi/abi_db_no_session_insert.la \
	tests/abi/abi_no_entry.la \
	tests/abi/policy_frozen.la \
	tests/abi/auth_frozen.la

tests_abi_abi_bad_magic_la_SOURCES = tests/abi/fixtures/bad_magic.c
tests_abi_abi_bad_magic_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_abi_bad_magic_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_abi_bad_magic_la_LIBADD = $(JANSSON_LIBS)

tests_abi_abi_newer_major_la_SOURCES = tests/abi/fixtures/newer_major.c
tests_abi_abi_newer_major_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_abi_newer_major_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_abi_newer_major_la_LIBADD = $(JANSSON_LIBS)

tests_abi_abi_older_major_la_SOURCES = tests/abi/fixtures/older_major.c
tests_abi_abi_older_major_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_abi_older_major_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_abi_older_major_la_LIBADD = $(JANSSON_LIBS)

tests_abi_abi_newer_minor_la_SOURCES = tests/abi/fixtures/newer_minor.c
tests_abi_abi_newer_minor_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_abi_newer_minor_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_abi_newer_minor_la_LIBADD = $(JANSSON_LIBS)

tests_abi_abi_short_size_la_SOURCES = tests/abi/fixtures/short_size.c
tests_abi_abi_short_size_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_abi_short_size_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_abi_short_size_la_LIBADD = $(JANSSON_LIBS)

tests_abi_abi_no_select_node_la_SOURCES = tests/abi/fixtures/no_select_node.c
tests_abi_abi_no_select_node_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_abi_no_select_node_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_abi_no_select_node_la_LIBADD = $(JANSSON_LIBS)

tests_abi_abi_no_create_la_SOURCES = tests/abi/fixtures/no_create.c
tests_abi_abi_no_create_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_abi_no_create_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_abi_no_create_la_LIBADD = $(JANSSON_LIBS)

tests_abi_abi_db_no_session_insert_la_SOURCES = tests/abi/fixtures/db_no_session_insert.c
tests_abi_abi_db_no_session_insert_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_abi_db_no_session_insert_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_abi_db_no_session_insert_la_LIBADD = $(JANSSON_LIBS)

# Exports a near-miss of the entry name, so the regex differs from everyone else's.
tests_abi_abi_no_entry_la_SOURCES = tests/abi/fixtures/no_entry.c
tests_abi_abi_no_entry_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_abi_no_entry_la_LDFLAGS = -module -avoid-version -no-undefined -shared \
	-export-symbols-regex '^sbx_plugin_entry_v1$$' $(AM_LDFLAGS) -rpath /nowhere
tests_abi_abi_no_entry_la_LIBADD = $(JANSSON_LIBS)

# Frozen 1.0 modules: compiled against tests/abi/frozen-1.0 only, never plugin-sdk/include.
# Named <kind>_<module> so that server.plugins_dir + module = "frozen" finds them too.
ABI_FROZEN_CPPFLAGS = -I$(top_srcdir)/tests/abi/frozen-1.0 -I$(top_builddir)

tests_abi_policy_frozen_la_SOURCES = tests/abi/frozen/policy_frozen.c
tests_abi_policy_frozen_la_CPPFLAGS = $(ABI_FROZEN_CPPFLAGS)
tests_abi_policy_frozen_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_policy_frozen_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_policy_frozen_la_LIBADD = $(JANSSON_LIBS)

tests_abi_auth_frozen_la_SOURCES = tests/abi/frozen/auth_frozen.c
tests_abi_auth_frozen_la_CPPFLAGS = $(ABI_FROZEN_CPPFLAGS)
tests_abi_auth_frozen_la_CFLAGS = $(ABI_FIXTURE_CFLAGS)
tests_abi_auth_frozen_la_LDFLAGS = $(ABI_FIXTURE_LDFLAGS)
tests_abi_auth_frozen_la_LIBADD = $(JANSSON_LIBS)

TESTS += tests/abi/refuse.sh tests/abi/frozen.sh

# example.sh tests the *installed* SDK and sbxd, so it runs from installcheck (and from
# tests/run-all.sh after `make install`), not from `make check`.
installcheck-local: installcheck-example
installcheck-example:
	PREFIX='$(prefix)' top_srcdir='$(top_srcdir)' $(SHELL) $(top_srcdir)/tests/abi/example.sh
.PHONY: installcheck-example

EXTRA_DIST += \
	tests/abi/lib.sh \
	tests/abi/refuse.sh \
	tests/abi/frozen.sh \
	tests/abi/example.sh \
	tests/abi/fixtures/fixture.h \
	tests/abi/frozen-1.0/README \
	tests/abi/frozen-1.0/sandbox/plugin.h \
	tests/abi/frozen-1.0/sandbox/err.h \
	tests/abi/frozen-1.0/sandbox/core.h \
	tests/abi/frozen-1.0/sandbox/runtime.h \
	tests/abi/frozen-1.0/sandbox/storage.h \
	tests/abi/frozen-1.0/sandbox/policy.h \
	tests/abi/frozen-1.0/sandbox/auth.h \
	tests/abi/frozen-1.0/sandbox/db.h \
	plugin-sdk/examples/policy-first-fit/Makefile \
	plugin-sdk/examples/policy-first-fit/README.md \
	plugin-sdk/examples/policy-first-fit/policy_first_fit.c \
	plugin-sdk/examples/policy-first-fit/test_first_fit.c \
	plugin-sdk/examples/policy-first-fit/sbxd.conf.example

# loader_vet, the core's descriptor check, tested member by member without modules.
check_PROGRAMS += tests/abi/vet
TESTS += tests/abi/vet
tests_abi_vet_SOURCES = tests/abi/vet.c
tests_abi_vet_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core -I$(top_srcdir)/tests
tests_abi_vet_CFLAGS = $(SBXD_CORE_CFLAGS)
tests_abi_vet_LDADD = $(SBXD_CORE_LIBS)
