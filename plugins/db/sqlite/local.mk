# plugins/db/sqlite: the embedded SQLite state store (module db_sqlite) and the db
# conformance test, run here against it (and reusable against any db module).
if PLUGIN_db_sqlite
plugins_LTLIBRARIES += plugins/db/sqlite/db_sqlite.la
plugins_db_sqlite_db_sqlite_la_SOURCES = \
	plugins/db/sqlite/db_sqlite.c \
	plugins/db/sqlite/schema.c \
	plugins/db/sqlite/sqlite_int.h
plugins_db_sqlite_db_sqlite_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(SQLITE_CFLAGS)
plugins_db_sqlite_db_sqlite_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
plugins_db_sqlite_db_sqlite_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_db_sqlite_db_sqlite_la_LIBADD = plugins/db/common/libdbcommon.la $(SQLITE_LIBS) \
	$(JANSSON_LIBS) $(PTHREAD_LIBS)

# tests/plugins/db_conformance [module [config-json]]: without arguments it checks the
# freshly built db_sqlite.la with a database in the fake core's data directory.
check_PROGRAMS += tests/plugins/db_conformance
TESTS += tests/plugins/db_conformance
tests_plugins_db_conformance_SOURCES = tests/plugins/db_conformance.c
tests_plugins_db_conformance_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
tests_plugins_db_conformance_LDADD = tests/plugins/libfakecore.la $(JANSSON_LIBS) \
	$(CRYPTO_LIBS) $(LTDL_LIBS) $(PTHREAD_LIBS)

check_PROGRAMS += tests/plugins/db_sqlite
TESTS += tests/plugins/db_sqlite
tests_plugins_db_sqlite_SOURCES = tests/plugins/db_sqlite.c
tests_plugins_db_sqlite_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS)
tests_plugins_db_sqlite_LDADD = tests/plugins/libfakecore.la $(SQLITE_LIBS) $(JANSSON_LIBS) \
	$(CRYPTO_LIBS) $(LTDL_LIBS) $(PTHREAD_LIBS)
endif
