# plugins/runtime/linux: the embedded default runtime (namespaces + cgroups + seccomp).
if PLUGIN_runtime_linux
plugins_LTLIBRARIES += plugins/runtime/linux/runtime_linux.la
plugins_runtime_linux_runtime_linux_la_SOURCES = \
	plugins/runtime/linux/linux.h \
	plugins/runtime/linux/plugin.c \
	plugins/runtime/linux/config.c \
	plugins/runtime/linux/catalogue.c \
	plugins/runtime/linux/cgroup.c \
	plugins/runtime/linux/seccomp.c \
	plugins/runtime/linux/rootfs.c \
	plugins/runtime/linux/spawn.c \
	plugins/runtime/linux/child.c \
	plugins/runtime/linux/ready.c \
	plugins/runtime/linux/state.c \
	plugins/runtime/linux/slots.c
plugins_runtime_linux_runtime_linux_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(SECCOMP_CFLAGS)
plugins_runtime_linux_runtime_linux_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
plugins_runtime_linux_runtime_linux_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_runtime_linux_runtime_linux_la_LIBADD = plugins/runtime/common/librtcommon.la \
	$(SECCOMP_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS)

check_PROGRAMS += tests/plugins/runtime_linux
TESTS += tests/plugins/runtime_linux
tests_plugins_runtime_linux_SOURCES = tests/plugins/runtime_linux.c \
	tests/plugins/fakecore.c tests/plugins/fakecore.h core/httpc.c core/httpc.h
tests_plugins_runtime_linux_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_plugins_runtime_linux_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
tests_plugins_runtime_linux_LDADD = $(JANSSON_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS) $(LTDL_LIBS) \
	$(PTHREAD_LIBS)
endif
EXTRA_DIST += plugins/runtime/linux/README.md
