# plugins/auth/apikey: hashed API keys with tenants, roles and quota overrides in a JSON
# file shared by the daemon and the `sbxd keys` CLI (module auth_apikey), and its test.
if PLUGIN_auth_apikey
plugins_LTLIBRARIES += plugins/auth/apikey/auth_apikey.la
plugins_auth_apikey_auth_apikey_la_SOURCES = \
	plugins/auth/apikey/apikey.h \
	plugins/auth/apikey/apikey.c \
	plugins/auth/apikey/store.c
plugins_auth_apikey_auth_apikey_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(CRYPTO_CFLAGS)
plugins_auth_apikey_auth_apikey_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_auth_apikey_auth_apikey_la_LIBADD = $(CRYPTO_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS)

check_PROGRAMS += tests/plugins/auth_apikey
TESTS += tests/plugins/auth_apikey
tests_plugins_auth_apikey_SOURCES = tests/plugins/auth_apikey.c
tests_plugins_auth_apikey_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
tests_plugins_auth_apikey_LDADD = tests/plugins/libfakecore.la $(JANSSON_LIBS) \
	$(CRYPTO_LIBS) $(LTDL_LIBS) $(PTHREAD_LIBS)
endif
EXTRA_DIST += plugins/auth/apikey/README.md
