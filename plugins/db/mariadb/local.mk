# plugins/db/mariadb: the MariaDB state store (module db_mariadb), shared by sbxd
# replicas, and its tests: the db conformance suite plus MariaDB-only checks against a
# private mariadbd that tests/plugins/db_mariadb.sh starts (skipped without mariadbd).
if PLUGIN_db_mariadb
plugins_LTLIBRARIES += plugins/db/mariadb/db_mariadb.la
plugins_db_mariadb_db_mariadb_la_SOURCES = \
	plugins/db/mariadb/db_mariadb.c \
	plugins/db/mariadb/conn.c \
	plugins/db/mariadb/schema.c \
	plugins/db/mariadb/mariadb_int.h
plugins_db_mariadb_db_mariadb_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(MARIADB_CFLAGS)
plugins_db_mariadb_db_mariadb_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
plugins_db_mariadb_db_mariadb_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_db_mariadb_db_mariadb_la_LIBADD = plugins/db/common/libdbcommon.la $(MARIADB_LIBS) \
	$(JANSSON_LIBS) $(PTHREAD_LIBS)
EXTRA_DIST += plugins/db/mariadb/README.md

check_PROGRAMS += tests/plugins/db_mariadb
tests_plugins_db_mariadb_SOURCES = tests/plugins/db_mariadb.c
tests_plugins_db_mariadb_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(MARIADB_CFLAGS)
tests_plugins_db_mariadb_LDADD = tests/plugins/libfakecore.la $(MARIADB_LIBS) $(JANSSON_LIBS) \
	$(CRYPTO_LIBS) $(LTDL_LIBS) $(PTHREAD_LIBS)

TESTS += tests/plugins/db_mariadb.sh
EXTRA_DIST += tests/plugins/db_mariadb.sh
endif
