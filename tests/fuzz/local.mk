# tests/fuzz/: libFuzzer targets, built with ./configure CC=clang --enable-fuzzing (which
# also compiles everything with ASan, UBSan and coverage instrumentation) and run by
# tests/fuzz/run.sh, which builds them in its own directory (build-fuzz).
FUZZ_TARGETS = fuzz_config fuzz_exec_stream fuzz_http_request fuzz_executor_request
EXTRA_DIST += tests/fuzz/run.sh tests/fuzz/corpus tests/fuzz/README.md tests/fuzz/lsan.supp \
	$(FUZZ_TARGETS:%=tests/fuzz/%.c) $(FUZZ_TARGETS:%=tests/fuzz/%.dict)

if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_config tests/fuzz/fuzz_exec_stream tests/fuzz/fuzz_http_request \
	tests/fuzz/fuzz_executor_request
FUZZ_TARGET_LINKFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
FUZZ_TARGET_CPP = $(AM_CPPFLAGS) -I$(top_srcdir)/core

tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c
tests_fuzz_fuzz_config_CPPFLAGS = $(FUZZ_TARGET_CPP)
tests_fuzz_fuzz_config_CFLAGS = $(SBXD_CORE_CFLAGS)
tests_fuzz_fuzz_config_LDFLAGS = $(FUZZ_TARGET_LINKFLAGS)
tests_fuzz_fuzz_config_LDADD = $(SBXD_CORE_LIBS)

tests_fuzz_fuzz_exec_stream_SOURCES = tests/fuzz/fuzz_exec_stream.c
tests_fuzz_fuzz_exec_stream_CPPFLAGS = $(FUZZ_TARGET_CPP)
tests_fuzz_fuzz_exec_stream_CFLAGS = $(SBXD_CORE_CFLAGS)
tests_fuzz_fuzz_exec_stream_LDFLAGS = $(FUZZ_TARGET_LINKFLAGS)
tests_fuzz_fuzz_exec_stream_LDADD = $(SBXD_CORE_LIBS)

# The sqlite db plugin is loaded from this build tree (SBXD_FUZZ_DB_PLUGIN overrides).
tests_fuzz_fuzz_http_request_SOURCES = tests/fuzz/fuzz_http_request.c
tests_fuzz_fuzz_http_request_CPPFLAGS = $(FUZZ_TARGET_CPP) \
	-DFUZZ_DB_PLUGIN='"$(abs_top_builddir)/plugins/db/sqlite/.libs/db_sqlite.so"'
tests_fuzz_fuzz_http_request_CFLAGS = $(SBXD_CORE_CFLAGS)
tests_fuzz_fuzz_http_request_LDFLAGS = $(FUZZ_TARGET_LINKFLAGS)
tests_fuzz_fuzz_http_request_LDADD = $(SBXD_CORE_LIBS)

# The executor's request validation, compiled from executor/request.c (no core library).
tests_fuzz_fuzz_executor_request_SOURCES = tests/fuzz/fuzz_executor_request.c executor/request.c
tests_fuzz_fuzz_executor_request_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/executor
tests_fuzz_fuzz_executor_request_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
tests_fuzz_fuzz_executor_request_LDFLAGS = $(FUZZ_TARGET_LINKFLAGS)
tests_fuzz_fuzz_executor_request_LDADD = $(JANSSON_LIBS) $(PTHREAD_LIBS)
endif
