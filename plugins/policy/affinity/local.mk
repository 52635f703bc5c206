# plugins/policy/affinity: a weighted score of free capacity and template affinity (module
# policy_affinity), and its test with scripted node inventories.
if PLUGIN_policy_affinity
plugins_LTLIBRARIES += plugins/policy/affinity/policy_affinity.la
plugins_policy_affinity_policy_affinity_la_SOURCES = plugins/policy/affinity/policy_affinity.c
plugins_policy_affinity_policy_affinity_la_CFLAGS = $(SBX_PLUGIN_CFLAGS)
plugins_policy_affinity_policy_affinity_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_policy_affinity_policy_affinity_la_LIBADD = plugins/policy/common/libpolcommon.la \
	$(JANSSON_LIBS)

check_PROGRAMS += tests/plugins/policy_affinity
TESTS += tests/plugins/policy_affinity
tests_plugins_policy_affinity_SOURCES = tests/plugins/policy_affinity.c \
	tests/plugins/policy_inv.h
tests_plugins_policy_affinity_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
tests_plugins_policy_affinity_LDADD = tests/plugins/libfakecore.la $(JANSSON_LIBS) $(LTDL_LIBS) \
	$(PTHREAD_LIBS)
endif
