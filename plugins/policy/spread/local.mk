# plugins/policy/spread: the least loaded node (module policy_spread), and its test with
# scripted node inventories.
if PLUGIN_policy_spread
plugins_LTLIBRARIES += plugins/policy/spread/policy_spread.la
plugins_policy_spread_policy_spread_la_SOURCES = plugins/policy/spread/policy_spread.c
plugins_policy_spread_policy_spread_la_CFLAGS = $(SBX_PLUGIN_CFLAGS)
plugins_policy_spread_policy_spread_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_policy_spread_policy_spread_la_LIBADD = plugins/policy/common/libpolcommon.la \
	$(JANSSON_LIBS)

check_PROGRAMS += tests/plugins/policy_spread
TESTS += tests/plugins/policy_spread
tests_plugins_policy_spread_SOURCES = tests/plugins/policy_spread.c \
	tests/plugins/policy_inv.h
tests_plugins_policy_spread_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
tests_plugins_policy_spread_LDADD = tests/plugins/libfakecore.la $(JANSSON_LIBS) $(LTDL_LIBS) \
	$(PTHREAD_LIBS)
endif
