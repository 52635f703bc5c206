# plugins/runtime/common: the sandbox's seccomp policy (a table of rules, no dependencies)
# shared by the runtime modules linux and docker, as the convenience library
# libscpolicy.la (not installed).
noinst_LTLIBRARIES += plugins/runtime/common/libscpolicy.la
plugins_runtime_common_libscpolicy_la_SOURCES = \
	plugins/runtime/common/scpolicy.h \
	plugins/runtime/common/scpolicy.c
plugins_runtime_common_libscpolicy_la_CFLAGS = $(SBX_PLUGIN_CFLAGS)
