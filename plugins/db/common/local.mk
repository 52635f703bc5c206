# plugins/db/common: what the db modules sqlite and mariadb share, as the convenience
# library libdbcommon.la (not installed): the db.h domain rules without SQL (record kinds,
# record checks and merge, list query validation, pages, lease arguments).
noinst_LTLIBRARIES += plugins/db/common/libdbcommon.la
plugins_db_common_libdbcommon_la_SOURCES = \
	plugins/db/common/dbcommon.h \
	plugins/db/common/dbcommon.c
plugins_db_common_libdbcommon_la_CFLAGS = $(SBX_PLUGIN_CFLAGS)
plugins_db_common_libdbcommon_la_LIBADD = $(JANSSON_LIBS)
