# core/: the sbxd daemon. Everything but main.c is a convenience library so that tests and
# fuzz targets link the very code the daemon runs.
noinst_LTLIBRARIES += core/libsbxd.la
core_libsbxd_la_SOURCES = \
	core/server.h \
	core/conf.c core/conf.h \
	core/loader.c core/loader.h \
	core/log.c core/log.h \
	core/metrics.c core/metrics.h \
	core/pool.c core/pool.h \
	core/http.c core/http.h \
	core/router.c core/router.h \
	core/httpc.c core/httpc.h \
	core/services.c core/services.h \
	core/model.c core/model.h \
	core/sessions.c core/sessions.h \
	core/execs.c core/execs.h \
	core/exec_client.c core/exec_client.h \
	core/recovery.c core/recovery.h \
	core/loops.c core/loops.h \
	core/leases.c core/leases.h \
	core/probe.c core/probe.h \
	core/warm.c core/warm.h \
	core/quotas.c core/quotas.h \
	core/relay.c core/relay.h \
	core/archive.c core/archive.h \
	core/keys.c core/keys.h core/api_keys.c \
	core/api.h core/api_common.c core/api_health.c core/api_sessions.c \
	core/api_executions.c core/api_templates.c core/api_files.c
SBXD_CORE_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(MHD_CFLAGS) $(LIBCONFIG_CFLAGS) \
	$(CURL_CFLAGS) $(CRYPTO_CFLAGS)
SBXD_CORE_LIBS = core/libsbxd.la $(JANSSON_LIBS) $(MHD_LIBS) $(LIBCONFIG_LIBS) $(CURL_LIBS) \
	$(CRYPTO_LIBS) $(LTDL_LIBS) $(PTHREAD_LIBS) -lm
core_libsbxd_la_CFLAGS = $(SBXD_CORE_CFLAGS)

sbin_PROGRAMS += sbxd
sbxd_SOURCES = core/main.c
sbxd_CFLAGS = $(SBXD_CORE_CFLAGS)
sbxd_LDADD = $(SBXD_CORE_LIBS)
