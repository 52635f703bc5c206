# plugins/auth/jwt: bearer JWTs (HS256, RS256, ES256) verified with libcrypto (module
# auth_jwt) and its test, which makes its own keys and signs its own tokens.
if PLUGIN_auth_jwt
plugins_LTLIBRARIES += plugins/auth/jwt/auth_jwt.la
plugins_auth_jwt_auth_jwt_la_SOURCES = \
	plugins/auth/jwt/jwt.h \
	plugins/auth/jwt/auth_jwt.c \
	plugins/auth/jwt/jws.c \
	plugins/auth/jwt/keys.c
plugins_auth_jwt_auth_jwt_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
plugins_auth_jwt_auth_jwt_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(CRYPTO_CFLAGS)
plugins_auth_jwt_auth_jwt_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_auth_jwt_auth_jwt_la_LIBADD = $(CRYPTO_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm

check_PROGRAMS += tests/plugins/auth_jwt
TESTS += tests/plugins/auth_jwt
tests_plugins_auth_jwt_SOURCES = tests/plugins/auth_jwt.c
tests_plugins_auth_jwt_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_plugins_auth_jwt_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
tests_plugins_auth_jwt_LDADD = tests/plugins/libfakecore.la $(JANSSON_LIBS) $(CRYPTO_LIBS) \
	$(LTDL_LIBS) $(PTHREAD_LIBS)
endif
EXTRA_DIST += plugins/auth/jwt/README.md
