# plugins/storage/s3common: the code shared by the storage modules s3 and minio, as the
# convenience library libs3common.la (not installed), and their test: a C program run by
# tests/plugins/storage_s3.sh against a local s3rver (node), plus offline unit tests.
noinst_LTLIBRARIES += plugins/storage/s3common/libs3common.la
plugins_storage_s3common_libs3common_la_SOURCES = \
	plugins/storage/s3common/s3common.h \
	plugins/storage/s3common/s3conf.c \
	plugins/storage/s3common/s3http.c \
	plugins/storage/s3common/s3ops.c \
	plugins/storage/s3common/s3presign.c
plugins_storage_s3common_libs3common_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(CURL_CFLAGS) \
	$(CRYPTO_CFLAGS)
plugins_storage_s3common_libs3common_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
plugins_storage_s3common_libs3common_la_LIBADD = $(CURL_LIBS) $(CRYPTO_LIBS) $(JANSSON_LIBS) \
	$(PTHREAD_LIBS)

if PLUGIN_storage_s3
if PLUGIN_storage_minio
check_PROGRAMS += tests/plugins/storage_s3
tests_plugins_storage_s3_SOURCES = tests/plugins/storage_s3.c
tests_plugins_storage_s3_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
tests_plugins_storage_s3_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_plugins_storage_s3_LDADD = tests/plugins/libfakecore.la \
	plugins/storage/s3common/libs3common.la $(JANSSON_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS) \
	$(LTDL_LIBS) $(PTHREAD_LIBS)
TESTS += tests/plugins/storage_s3.sh
EXTRA_DIST += tests/plugins/storage_s3.sh tests/plugins/storage_s3rver.js
endif
endif

# The test installs s3rver (npm) into the build tree on first use; distclean removes it.
clean-local: s3rver-clean-cache
s3rver-clean-cache:
	rm -rf tests/plugins/s3rver-cache
.PHONY: s3rver-clean-cache
