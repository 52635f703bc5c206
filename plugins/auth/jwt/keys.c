/*
 * auth/jwt: verification keys. Reads hs256_secret_file (raw bytes), public_key_file (PEM
 * RSA or EC P-256 public key or certificate) and jwks_file (RFC 7517 RSA and EC P-256
 * keys) into one immutable key set, and re-reads them when a file changes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "plugins/auth/jwt/jwt.h"

#define SECRET_MIN    32 /* bytes: RFC 7518 §3.2, a key as long as the hash */
#define SECRET_MAX    4096
#define PEM_MAX       (64 * 1024)
#define JWKS_MAX      (1024 * 1024)
#define JWKS_KEYS_MAX 64
#define KID_MAX       256
#define RSA_MIN_BITS  2048
#define P256_COORD    32
#define RECHECK_MS    1000

static const char *const src_names[JWT_NSRC] = {"hs256_secret_file", "public_key_file",
						"jwks_file"};

const char *keys_source_name(int src)
{
	return src >= 0 && src < JWT_NSRC ? src_names[src] : "?";
}

/* ---- key sets ------------------------------------------------------------------ */

static void key_clear(struct jwt_key *k)
{
	EVP_PKEY_free(k->pkey);
	if (k->secret)
		OPENSSL_clear_free(k->secret, k->secret_len);
	free(k->kid);
	free(k->alg);
	free(k->label);
	memset(k, 0, sizeof *k);
}

static void set_free(struct jwt_keyset *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		key_clear(&set->keys[i]);
	free(set->keys);
	free(set);
}

/* Moves *k into the set (k is cleared on success and on failure). */
static int set_add(struct jwt_keyset *set, struct jwt_key *k, sbx_err *err)
{
	struct jwt_key *nk = realloc(set->keys, (set->n + 1) * sizeof *nk);

	if (!nk || !k->label) {
		if (nk)
			set->keys = nk;
		key_clear(k);
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	set->keys = nk;
	set->keys[set->n++] = *k;
	memset(k, 0, sizeof *k);
	return 0;
}

/* ---- files --------------------------------------------------------------------- */

static void stamp_set(struct jwt_source *s, const struct stat *st)
{
	s->have_stamp = st != NULL;
	if (st) {
		s->mtime = st->st_mtim;
		s->size = st->st_size;
		s->ino = st->st_ino;
		s->dev = st->st_dev;
	}
}

static int stamp_differs(const struct jwt_source *s, const struct stat *st)
{
	if (!st)
		return s->have_stamp;
	return !s->have_stamp || s->mtime.tv_sec != st->st_mtim.tv_sec ||
	       s->mtime.tv_nsec != st->st_mtim.tv_nsec || s->size != st->st_size ||
	       s->ino != st->st_ino || s->dev != st->st_dev;
}

/* Reads a whole regular file of at most `max` bytes (plus a NUL); *st describes what
 * was read. The buffer is cleansed by the caller when it holds a secret. */
static int read_file(const char *what, const char *path, size_t max, unsigned char **data,
		     size_t *len, struct stat *st, sbx_err *err)
{
	unsigned char *buf = NULL;
	size_t n = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return sbx_err_set(err, SBX_E_INVALID, "%s '%s' cannot be opened: %s", what, path,
				   strerror(errno));
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s '%s' is not a regular file", what, path);
		goto out;
	}
	if ((unsigned long long)st->st_size > max) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s '%s' is larger than %zu bytes", what,
				  path, max);
		goto out;
	}
	buf = malloc(max + 1);
	if (!buf) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, max + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = sbx_err_set(err, SBX_E_INVALID, "%s '%s' cannot be read: %s", what,
					  path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			ret = sbx_err_set(err, SBX_E_INVALID, "%s '%s' is larger than %zu bytes",
					  what, path, max);
			goto out;
		}
	}
	buf[n] = '\0';
	*data = buf;
	*len = n;
	buf = NULL;
out:
	if (buf)
		OPENSSL_clear_free(buf, max + 1);
	close(fd);
	return ret;
}

/* ---- public keys ----------------------------------------------------------------- */

/* Classifies a public key: RSA of at least 2048 bits or EC on P-256, else an error that
 * says what the key is. */
static int pkey_type(EVP_PKEY *pkey, const char *what, int *type, sbx_err *err)
{
	char group[64] = "";

	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS)
			return sbx_err_set(err, SBX_E_INVALID,
					   "%s is a %d-bit RSA key; RS256 needs at least %d bits",
					   what, EVP_PKEY_get_bits(pkey), RSA_MIN_BITS);
		*type = KT_RSA;
		return 0;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof group, NULL) != 1 ||
		    strcmp(group, "prime256v1") != 0)
			return sbx_err_set(err, SBX_E_INVALID,
					   "%s is an EC key on curve '%s'; ES256 needs P-256", what,
					   group[0] ? group : "unnamed");
		*type = KT_EC;
		return 0;
	}
	return sbx_err_set(err, SBX_E_INVALID,
			   "%s is a %s key; only RSA (RS256) and EC P-256 (ES256) are supported",
			   what,
			   EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "?");
}

/* EVP_PKEY_public_check: rejects points off the curve and malformed RSA moduli. */
static int pkey_checked(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int ok = c && EVP_PKEY_public_check(c) == 1;

	EVP_PKEY_CTX_free(c);
	return ok;
}

static int load_secret(struct jwt_keystore *ks, const char *path, struct jwt_keyset *set,
		       struct stat *st, sbx_err *err)
{
	const char *what = src_names[JWT_SRC_SECRET];
	struct jwt_key k = {.type = KT_HMAC};
	unsigned char *data = NULL;
	size_t len = 0;
	int ret;

	ret = read_file(what, path, SECRET_MAX, &data, &len, st, err);
	if (ret < 0)
		return ret;
	if (len < SECRET_MIN) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "%s '%s' holds %zu bytes; an HS256 secret must be at least %d "
				  "random bytes",
				  what, path, len, SECRET_MIN);
		goto out;
	}
	/* Guards against the algorithm-confusion set-up of using a public key as secret. */
	if (len >= 10 && memcmp(data, "-----BEGIN", 10) == 0) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "%s '%s' holds a PEM key, not a shared secret; configure public "
				  "keys as public_key_file",
				  what, path);
		goto out;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO))
		ks->core->log(ks->who, SBX_LOG_WARN,
			      "event=jwt_secret_permissions file=%s mode=%04o note=readable by "
			      "group or others; chmod 600 it",
			      path, (unsigned)(st->st_mode & 07777));
	k.secret = data;
	k.secret_len = len;
	data = NULL;
	k.label = strdup(what);
	ret = set_add(set, &k, err);
out:
	if (data)
		OPENSSL_clear_free(data, len);
	return ret;
}

static int load_pem(const char *path, struct jwt_keyset *set, struct stat *st, sbx_err *err)
{
	const char *what = src_names[JWT_SRC_PEM];
	struct jwt_key k = {0};
	unsigned char *data = NULL;
	size_t len = 0;
	char desc[4200];
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	X509 *cert = NULL;
	int ret;

	ret = read_file(what, path, PEM_MAX, &data, &len, st, err);
	if (ret < 0)
		return ret;
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio)
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pkey) {
		BIO_free(bio);
		bio = BIO_new_mem_buf(data, (int)len);
		cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		pkey = cert ? X509_get_pubkey(cert) : NULL;
	}
	ERR_clear_error();
	if (!pkey) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "%s '%s' holds no PEM public key (-----BEGIN PUBLIC KEY-----) or "
				  "certificate; for a private key run 'openssl pkey -pubout'",
				  what, path);
		goto out;
	}
	snprintf(desc, sizeof desc, "%s '%s'", what, path);
	ret = pkey_type(pkey, desc, &k.type, err);
	if (ret < 0)
		goto out;
	k.pkey = pkey;
	pkey = NULL;
	k.label = strdup(what);
	ret = set_add(set, &k, err);
out:
	EVP_PKEY_free(pkey);
	X509_free(cert);
	BIO_free(bio);
	free(data);
	return ret;
}

/* ---- JWKS ---------------------------------------------------------------------- */

static BIGNUM *jwk_bn(const json_t *jwk, const char *member)
{
	const char *s = json_string_value(json_object_get(jwk, member));
	unsigned char *bin = NULL;
	size_t len = 0;
	BIGNUM *bn = NULL;

	if (s && jws_b64url_decode(s, strlen(s), &bin, &len) == 0 && len > 0 && len <= 2048)
		bn = BN_bin2bn(bin, (int)len, NULL);
	free(bin);
	return bn;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return pkey;
}

static EVP_PKEY *jwk_rsa(const json_t *jwk)
{
	BIGNUM *n = jwk_bn(jwk, "n"), *e = jwk_bn(jwk, "e");
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		pkey = pkey_fromdata("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}

/* x and y are the 32-byte big-endian coordinates (RFC 7518 §6.2.1.2: full length). */
static EVP_PKEY *jwk_ec(const json_t *jwk)
{
	const char *xs = json_string_value(json_object_get(jwk, "x"));
	const char *ys = json_string_value(json_object_get(jwk, "y"));
	unsigned char *x = NULL, *y = NULL, point[1 + 2 * P256_COORD];
	size_t xl = 0, yl = 0;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;

	if (!xs || !ys || jws_b64url_decode(xs, strlen(xs), &x, &xl) < 0 ||
	    jws_b64url_decode(ys, strlen(ys), &y, &yl) < 0 || xl != P256_COORD || yl != P256_COORD)
		goto out;
	point[0] = 0x04; /* uncompressed */
	memcpy(point + 1, x, P256_COORD);
	memcpy(point + 1 + P256_COORD, y, P256_COORD);
	bld = OSSL_PARAM_BLD_new();
	if (bld &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point))
		pkey = pkey_fromdata("EC", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

/*
 * One JWKS entry. Entries that are well formed but not for us (use other than "sig",
 * other key types or curves, other algorithms) are skipped (*skipped set); an entry we
 * would use but cannot (bad numbers, point off the curve, short modulus) is an error.
 */
static int load_jwk(const char *path, size_t idx, const json_t *jwk, struct jwt_keyset *set,
		    int *skipped, sbx_err *err)
{
	const char *what = src_names[JWT_SRC_JWKS];
	const char *kty, *use, *alg, *kid, *crv;
	struct jwt_key k = {0};
	char desc[4400];
	int ret;

	*skipped = 0;
	if (!json_is_object(jwk))
		return sbx_err_set(err, SBX_E_INVALID, "%s '%s': keys[%zu] is not an object", what,
				   path, idx);
	kty = json_string_value(json_object_get(jwk, "kty"));
	use = json_string_value(json_object_get(jwk, "use"));
	alg = json_string_value(json_object_get(jwk, "alg"));
	kid = json_string_value(json_object_get(jwk, "kid"));
	crv = json_string_value(json_object_get(jwk, "crv"));
	if (!kty)
		return sbx_err_set(err, SBX_E_INVALID, "%s '%s': keys[%zu] has no 'kty'", what,
				   path, idx);
	if ((json_object_get(jwk, "kid") && (!kid || !*kid || strlen(kid) > KID_MAX)) ||
	    (json_object_get(jwk, "alg") && !alg) || (json_object_get(jwk, "use") && !use))
		return sbx_err_set(err, SBX_E_INVALID,
				   "%s '%s': keys[%zu]: 'kid' (1..%d bytes), 'alg' and 'use' "
				   "must be strings",
				   what, path, idx, KID_MAX);
	if ((use && strcmp(use, "sig") != 0) ||
	    !((strcmp(kty, "RSA") == 0 && (!alg || strcmp(alg, "RS256") == 0)) ||
	      (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0 &&
	       (!alg || strcmp(alg, "ES256") == 0)))) {
		*skipped = 1;
		return 0;
	}
	snprintf(desc, sizeof desc, "%s '%s': keys[%zu]%s%.64s%s", what, path, idx,
		 kid ? " (kid '" : "", kid ? kid : "", kid ? "')" : "");
	k.pkey = strcmp(kty, "RSA") == 0 ? jwk_rsa(jwk) : jwk_ec(jwk);
	if (!k.pkey || !pkey_checked(k.pkey)) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "%s is not a valid %s public key (%s must be unpadded base64url)",
				  desc, kty, strcmp(kty, "RSA") == 0 ? "n and e" : "x and y");
		goto out;
	}
	ret = pkey_type(k.pkey, desc, &k.type, err);
	if (ret < 0)
		goto out;
	k.kid = kid ? strdup(kid) : NULL;
	k.alg = alg ? strdup(alg) : NULL;
	if (kid) {
		k.label = strdup(kid);
	} else {
		char label[64];

		snprintf(label, sizeof label, "jwks_file keys[%zu]", idx);
		k.label = strdup(label);
	}
	if ((kid && !k.kid) || (alg && !k.alg)) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	return set_add(set, &k, err);
out:
	key_clear(&k);
	return ret;
}

static int load_jwks(struct jwt_keystore *ks, const char *path, struct jwt_keyset *set,
		     struct stat *st, sbx_err *err)
{
	const char *what = src_names[JWT_SRC_JWKS];
	unsigned char *data = NULL;
	size_t len = 0, idx, before = set->n;
	json_error_t jerr;
	json_t *doc = NULL, *keys, *jwk;
	int ret, skipped, nskipped = 0;

	ret = read_file(what, path, JWKS_MAX, &data, &len, st, err);
	if (ret < 0)
		return ret;
	doc = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s '%s' is not JSON: %s at line %d", what,
				  path, jerr.text, jerr.line);
		goto out;
	}
	keys = json_object_get(doc, "keys");
	if (!json_is_array(keys)) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "%s '%s' is not a JWK set: it needs a 'keys' array", what, path);
		goto out;
	}
	if (json_array_size(keys) > JWKS_KEYS_MAX) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s '%s' has %zu keys; at most %d are read",
				  what, path, json_array_size(keys), JWKS_KEYS_MAX);
		goto out;
	}
	json_array_foreach (keys, idx, jwk) {
		ret = load_jwk(path, idx, jwk, set, &skipped, err);
		if (ret < 0)
			goto out;
		nskipped += skipped;
	}
	if (set->n == before) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "%s '%s' has no RSA or EC P-256 signing key (of %zu keys, %d are "
				  "for other uses, types or algorithms)",
				  what, path, json_array_size(keys), nskipped);
		goto out;
	}
	if (nskipped)
		ks->core->log(ks->who, SBX_LOG_INFO,
			      "event=jwt_jwks_skipped file=%s skipped=%d note=keys for other "
			      "uses, types or algorithms",
			      path, nskipped);
out:
	json_decref(doc);
	free(data);
	return ret;
}

/* ---- loading and reloading ------------------------------------------------------- */

/* Builds a key set from every configured source; st[i] describes what was read. */
static int build_set(struct jwt_keystore *ks, struct stat st[JWT_NSRC], struct jwt_keyset **out,
		     sbx_err *err)
{
	struct jwt_keyset *set = calloc(1, sizeof *set);
	int ret = 0;

	if (!set)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	set->refs = 1;
	if (ks->src[JWT_SRC_SECRET].path)
		ret = load_secret(ks, ks->src[JWT_SRC_SECRET].path, set, &st[JWT_SRC_SECRET], err);
	if (ret == 0 && ks->src[JWT_SRC_PEM].path)
		ret = load_pem(ks->src[JWT_SRC_PEM].path, set, &st[JWT_SRC_PEM], err);
	if (ret == 0 && ks->src[JWT_SRC_JWKS].path)
		ret = load_jwks(ks, ks->src[JWT_SRC_JWKS].path, set, &st[JWT_SRC_JWKS], err);
	if (ret < 0) {
		set_free(set);
		return ret;
	}
	*out = set;
	return 0;
}

static void log_loaded(struct jwt_keystore *ks, const char *event)
{
	int hmac = 0, rsa = 0, ec = 0;

	for (size_t i = 0; i < ks->cur->n; i++) {
		hmac += ks->cur->keys[i].type == KT_HMAC;
		rsa += ks->cur->keys[i].type == KT_RSA;
		ec += ks->cur->keys[i].type == KT_EC;
	}
	ks->core->log(ks->who, SBX_LOG_INFO, "event=%s hs256_secrets=%d rsa_keys=%d ec_keys=%d",
		      event, hmac, rsa, ec);
}

int keys_load(struct jwt_keystore *ks, sbx_err *err)
{
	struct stat st[JWT_NSRC];
	struct jwt_keyset *set = NULL;
	int ret;

	memset(st, 0, sizeof st);
	ret = build_set(ks, st, &set, err);
	if (ret < 0)
		return ret;
	for (int i = 0; i < JWT_NSRC; i++)
		if (ks->src[i].path)
			stamp_set(&ks->src[i], &st[i]);
	ks->cur = set;
	ks->checked_ms = ks->core->monotonic_ms();
	log_loaded(ks, "jwt_keys_loaded");
	return 0;
}

/* Under ks->lock. */
static void maybe_reload(struct jwt_keystore *ks)
{
	struct stat now[JWT_NSRC], got[JWT_NSRC];
	int present[JWT_NSRC], changed = 0;
	struct jwt_keyset *set = NULL;
	sbx_err err = {0};

	for (int i = 0; i < JWT_NSRC; i++) {
		if (!ks->src[i].path)
			continue;
		present[i] = stat(ks->src[i].path, &now[i]) == 0;
		changed |= stamp_differs(&ks->src[i], present[i] ? &now[i] : NULL);
	}
	if (!changed)
		return;
	memset(got, 0, sizeof got);
	if (build_set(ks, got, &set, &err) < 0) {
		/* Remember what we tried so a broken file is reported once, not every second. */
		for (int i = 0; i < JWT_NSRC; i++)
			if (ks->src[i].path)
				stamp_set(&ks->src[i], present[i] ? &now[i] : NULL);
		ks->core->log(ks->who, SBX_LOG_WARN,
			      "event=jwt_keys_reload_failed error=\"%s\" note=the previous keys "
			      "stay in use",
			      err.message);
		return;
	}
	for (int i = 0; i < JWT_NSRC; i++)
		if (ks->src[i].path)
			stamp_set(&ks->src[i], &got[i]);
	if (--ks->cur->refs == 0)
		set_free(ks->cur);
	ks->cur = set;
	log_loaded(ks, "jwt_keys_reloaded");
}

struct jwt_keyset *keys_acquire(struct jwt_keystore *ks)
{
	struct jwt_keyset *set;
	int64_t now;

	pthread_mutex_lock(&ks->lock);
	now = ks->core->monotonic_ms();
	if (now - ks->checked_ms >= RECHECK_MS) {
		ks->checked_ms = now;
		maybe_reload(ks);
	}
	set = ks->cur;
	set->refs++;
	pthread_mutex_unlock(&ks->lock);
	return set;
}

void keys_release(struct jwt_keystore *ks, struct jwt_keyset *set)
{
	pthread_mutex_lock(&ks->lock);
	if (--set->refs == 0)
		set_free(set);
	pthread_mutex_unlock(&ks->lock);
}

void keys_fini(struct jwt_keystore *ks)
{
	if (ks->cur && --ks->cur->refs == 0)
		set_free(ks->cur);
	ks->cur = NULL;
	for (int i = 0; i < JWT_NSRC; i++) {
		free(ks->src[i].path);
		ks->src[i].path = NULL;
	}
}
