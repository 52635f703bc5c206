# plugins/policy/common: the node inventory, hard filters, tie-break and strict config
# shared by the policy modules affinity and spread, as the convenience library
# libpolcommon.la (not installed).
noinst_LTLIBRARIES += plugins/policy/common/libpolcommon.la
plugins_policy_common_libpolcommon_la_SOURCES = \
	plugins/policy/common/polcommon.h \
	plugins/policy/common/inventory.c \
	plugins/policy/common/pconfig.c
plugins_policy_common_libpolcommon_la_CFLAGS = $(SBX_PLUGIN_CFLAGS)
plugins_policy_common_libpolcommon_la_LIBADD = $(JANSSON_LIBS)
