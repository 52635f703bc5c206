/*
 * auth/jwt: declarations shared by the module's files: keys.c (key files, JWKS, reload),
 * jws.c (base64url and signature verification) and auth_jwt.c (config, claims).
 * Nothing here is exported: the module is built with -fvisibility=hidden.
 */
#ifndef SBX_AUTH_JWT_H
#define SBX_AUTH_JWT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include <sandbox/core.h>

/* The JWS algorithms this module verifies (a bit set in the config). */
enum jwt_alg {
	ALG_HS256 = 1,
	ALG_RS256 = 2,
	ALG_ES256 = 4,
};

/* What a key can verify: an algorithm only ever meets a key of its own type. */
enum jwt_key_type {
	KT_HMAC = 1, /* hs256_secret_file */
	KT_RSA = 2,  /* RSA public key, >= 2048 bits */
	KT_EC = 3,   /* EC public key on P-256 */
};

/* One verification key. Immutable once loaded. */
struct jwt_key {
	int type;              /* enum jwt_key_type */
	char *kid;             /* JWK "kid", NULL for the PEM and secret files */
	char *alg;             /* JWK "alg" when present (must then equal the token's) */
	char *label;           /* for messages: the kid, or the config key of the file */
	EVP_PKEY *pkey;        /* KT_RSA, KT_EC */
	unsigned char *secret; /* KT_HMAC: the file's bytes (never logged) */
	size_t secret_len;
};

/* Every key of an instance, replaced as a whole when a key file changes. Reference
 * counted under the instance lock so that a reload never frees keys in use. */
struct jwt_keyset {
	int refs;
	size_t n;
	struct jwt_key *keys;
};

#define JWT_SRC_SECRET 0
#define JWT_SRC_PEM    1
#define JWT_SRC_JWKS   2
#define JWT_NSRC       3

/* A configured key file and the identity of the version last read (or tried). */
struct jwt_source {
	char *path; /* absolute; NULL when not configured */
	int have_stamp;
	struct timespec mtime;
	off_t size;
	ino_t ino;
	dev_t dev;
};

/* The keys of one instance and when their files were last looked at. */
struct jwt_keystore {
	const struct sbx_core_api *core;
	const char *who; /* instance name, for logs (borrowed from the instance) */
	pthread_mutex_t lock;
	struct jwt_keyset *cur;
	struct jwt_source src[JWT_NSRC];
	int64_t checked_ms; /* monotonic time of the last stat of the files */
};

/* Names of the config keys of the sources, for messages: "hs256_secret_file", ... */
const char *keys_source_name(int src);

/*
 * Reads every configured source (ks->src[i].path) into ks->cur. Called by create, on the
 * main thread. Returns 0, or SBX_E_INVALID naming the file and what is wrong with it.
 */
int keys_load(struct jwt_keystore *ks, sbx_err *err);

/*
 * Returns the current key set with a reference the caller drops with keys_release. At
 * most once a second it first stats the key files and, when one changed, reads them all
 * again; a set that fails to load is logged and the previous keys stay in use. Any thread.
 */
struct jwt_keyset *keys_acquire(struct jwt_keystore *ks);
void keys_release(struct jwt_keystore *ks, struct jwt_keyset *set);

/* Frees everything ks owns (not ks itself). */
void keys_fini(struct jwt_keystore *ks);

/*
 * Decodes unpadded base64url text in[0..len) into a new malloc'ed buffer (*out, *outlen;
 * one extra NUL byte is written after the data). Returns 0, or -1 when the text is not
 * base64url or memory ran out.
 */
int jws_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *outlen);

/* True when s[0..len) holds only base64url characters. */
int jws_is_b64url(const char *s, size_t len);

/*
 * Verifies the JWS signature `sig` over `input` with key `k` for algorithm `alg` (the key
 * type was already matched to the algorithm). Returns 1 when it verifies, 0 when it does
 * not, and -1 on an internal failure. ES256 signatures are the raw 64-byte R||S of RFC
 * 7518 §3.4; HS256 compares in constant time.
 */
int jws_verify(const struct jwt_key *k, int alg, const unsigned char *input, size_t inlen,
	       const unsigned char *sig, size_t siglen);

#endif
