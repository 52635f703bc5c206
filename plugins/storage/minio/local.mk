# plugins/storage/minio: objects in MinIO, path style (module storage_minio); the code is in
# s3common.
if PLUGIN_storage_minio
plugins_LTLIBRARIES += plugins/storage/minio/storage_minio.la
plugins_storage_minio_storage_minio_la_SOURCES = plugins/storage/minio/storage_minio.c
plugins_storage_minio_storage_minio_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(CURL_CFLAGS)
plugins_storage_minio_storage_minio_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
plugins_storage_minio_storage_minio_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_storage_minio_storage_minio_la_LIBADD = plugins/storage/s3common/libs3common.la \
	$(CURL_LIBS) $(CRYPTO_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS)
endif
EXTRA_DIST += plugins/storage/minio/README.md
