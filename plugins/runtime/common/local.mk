# plugins/runtime/common: what the runtime modules linux and docker share, as the
# convenience library librtcommon.la (not installed): the sandbox's seccomp policy (a table
# of rules, no dependencies) and the executor readiness checks.
noinst_LTLIBRARIES += plugins/runtime/common/librtcommon.la
plugins_runtime_common_librtcommon_la_SOURCES = \
	plugins/runtime/common/scpolicy.h \
	plugins/runtime/common/scpolicy.c \
	plugins/runtime/common/execready.h \
	plugins/runtime/common/execready.c
plugins_runtime_common_librtcommon_la_CFLAGS = $(SBX_PLUGIN_CFLAGS)
