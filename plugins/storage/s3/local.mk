# plugins/storage/s3: objects in Amazon S3 (module storage_s3); the code is in s3common.
if PLUGIN_storage_s3
plugins_LTLIBRARIES += plugins/storage/s3/storage_s3.la
plugins_storage_s3_storage_s3_la_SOURCES = plugins/storage/s3/storage_s3.c
plugins_storage_s3_storage_s3_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(CURL_CFLAGS)
plugins_storage_s3_storage_s3_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
plugins_storage_s3_storage_s3_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_storage_s3_storage_s3_la_LIBADD = plugins/storage/s3common/libs3common.la \
	$(CURL_LIBS) $(CRYPTO_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS)
endif
EXTRA_DIST += plugins/storage/s3/README.md
