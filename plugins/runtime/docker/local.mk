# plugins/runtime/docker: sandboxes as containers of a Docker Engine (module runtime_docker),
# through libcurl against the Engine API. Its test needs a real dockerd: in `make check` it
# skips unless SBX_TEST_DOCKER_HOST is set; tests/plugins/runtime_docker.sh starts a
# private dockerd, imports a test image and runs it.
if PLUGIN_runtime_docker
plugins_LTLIBRARIES += plugins/runtime/docker/runtime_docker.la
plugins_runtime_docker_runtime_docker_la_SOURCES = \
	plugins/runtime/docker/docker.h \
	plugins/runtime/docker/plugin.c \
	plugins/runtime/docker/config.c \
	plugins/runtime/docker/engine.c \
	plugins/runtime/docker/seccomp.c
plugins_runtime_docker_runtime_docker_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(CURL_CFLAGS)
plugins_runtime_docker_runtime_docker_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
plugins_runtime_docker_runtime_docker_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_runtime_docker_runtime_docker_la_LIBADD = plugins/runtime/common/librtcommon.la \
	$(CURL_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS)

check_PROGRAMS += tests/plugins/runtime_docker
TESTS += tests/plugins/runtime_docker
tests_plugins_runtime_docker_SOURCES = tests/plugins/runtime_docker.c
tests_plugins_runtime_docker_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_plugins_runtime_docker_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
tests_plugins_runtime_docker_LDADD = tests/plugins/libfakecore.la $(JANSSON_LIBS) $(CURL_LIBS) \
	$(CRYPTO_LIBS) $(LTDL_LIBS) $(PTHREAD_LIBS)
endif
EXTRA_DIST += plugins/runtime/docker/README.md tests/plugins/runtime_docker.sh
