# plugins/storage/local: objects as files under a directory (module storage_local), its
# test, and the fake core library every plugin test links (tests/plugins/libfakecore.la).
check_LTLIBRARIES += tests/plugins/libfakecore.la
tests_plugins_libfakecore_la_SOURCES = \
	tests/plugins/fakecore.c \
	tests/plugins/fakecore.h \
	core/httpc.c \
	core/httpc.h
tests_plugins_libfakecore_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS) \
	$(CRYPTO_CFLAGS)
tests_plugins_libfakecore_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_plugins_libfakecore_la_LIBADD = $(JANSSON_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS) \
	$(LTDL_LIBS) $(PTHREAD_LIBS)

if PLUGIN_storage_local
plugins_LTLIBRARIES += plugins/storage/local/storage_local.la
plugins_storage_local_storage_local_la_SOURCES = plugins/storage/local/storage_local.c
plugins_storage_local_storage_local_la_CFLAGS = $(SBX_PLUGIN_CFLAGS)
plugins_storage_local_storage_local_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_storage_local_storage_local_la_LIBADD = $(JANSSON_LIBS) $(PTHREAD_LIBS)

check_PROGRAMS += tests/plugins/storage_local
TESTS += tests/plugins/storage_local
tests_plugins_storage_local_SOURCES = tests/plugins/storage_local.c
tests_plugins_storage_local_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
tests_plugins_storage_local_LDADD = tests/plugins/libfakecore.la $(JANSSON_LIBS) \
	$(CRYPTO_LIBS) $(LTDL_LIBS) $(PTHREAD_LIBS)
endif
