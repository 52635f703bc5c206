# core/: the sbxd daemon.
sbin_PROGRAMS += sbxd
sbxd_SOURCES = core/main.c core/httpc.c core/httpc.h
sbxd_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(MHD_CFLAGS) $(LIBCONFIG_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
sbxd_LDADD = $(JANSSON_LIBS) $(MHD_LIBS) $(LIBCONFIG_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS) $(LTDL_LIBS) $(PTHREAD_LIBS)
