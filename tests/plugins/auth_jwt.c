/*
 * Tests of the auth module `jwt` (auth.h) through the built module file. The test makes
 * its own keys (RSA 2048, EC P-256, an HS256 secret), writes them as PEM, JWKS and secret
 * files, and signs its own tokens with EVP. TAP.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <sandbox/auth.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

#define ISS "https://idp.example.test"
#define AUD "sbxd"

static const struct sbx_auth_plugin *ap;
static char dir[4200]; /* the fake core's data directory: key files */
static EVP_PKEY *rsa, *rsa2, *ec, *ec2;
static unsigned char secret[48];

enum how { SIG_HS, SIG_RS, SIG_ES, SIG_NONE };

/* ---- encoding, files, keys --------------------------------------------------------- */

static char *b64url(const void *data, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	int len;

	if (!out)
		abort();
	len = EVP_EncodeBlock((unsigned char *)out, data, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

static char *path_of(const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);

	sprintf(p, "%s/%s", dir, name);
	return p;
}

/* Replaces dir/name atomically (as an operator rotating keys would). */
static void write_file(const char *name, const void *data, size_t n, mode_t mode)
{
	char *p = path_of(name), tmp[4400];
	FILE *f;

	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	f = fopen(tmp, "wb");
	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0 || chmod(tmp, mode) != 0 ||
	    rename(tmp, p) != 0) {
		printf("Bail out! writing %s: %s\n", p, strerror(errno));
		exit(1);
	}
	free(p);
}

static char *pem_of(EVP_PKEY *k, size_t *n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long len;

	if (!b || PEM_write_bio_PUBKEY(b, k) != 1)
		abort();
	len = BIO_get_mem_data(b, &data);
	out = malloc((size_t)len + 1);
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	*n = (size_t)len;
	BIO_free(b);
	return out;
}

static void write_pem(const char *name, EVP_PKEY *k)
{
	size_t n;
	char *pem = pem_of(k, &n);

	write_file(name, pem, n, 0644);
	free(pem);
}

static json_t *bn_member(EVP_PKEY *k, const char *param, int pad)
{
	BIGNUM *bn = NULL;
	unsigned char buf[512];
	int n;
	char *s;
	json_t *v;

	if (EVP_PKEY_get_bn_param(k, param, &bn) != 1)
		abort();
	n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	s = b64url(buf, (size_t)n);
	v = json_string(s);
	free(s);
	BN_free(bn);
	return v;
}

static json_t *jwk_of(EVP_PKEY *k, const char *kid)
{
	json_t *j;

	if (EVP_PKEY_is_a(k, "RSA"))
		j = json_pack("{s:s, s:o, s:o}", "kty", "RSA", "n",
			      bn_member(k, OSSL_PKEY_PARAM_RSA_N, 0), "e",
			      bn_member(k, OSSL_PKEY_PARAM_RSA_E, 0));
	else
		j = json_pack("{s:s, s:s, s:o, s:o}", "kty", "EC", "crv", "P-256", "x",
			      bn_member(k, OSSL_PKEY_PARAM_EC_PUB_X, 32), "y",
			      bn_member(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32));
	if (kid)
		json_object_set_new(j, "kid", json_string(kid));
	return j;
}

static void write_json(const char *name, json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2));

	write_file(name, s, strlen(s), 0644);
	free(s);
	json_decref(doc);
}

/* ---- signing ----------------------------------------------------------------------- */

/* A compact JWS of header and claims (both stolen). */
static char *sign_json(json_t *header, json_t *claims, enum how how, EVP_PKEY *k,
		       const unsigned char *key, size_t keylen)
{
	char *hj = json_dumps(header, JSON_COMPACT), *cj = json_dumps(claims, JSON_COMPACT);
	char *h = b64url(hj, strlen(hj)), *c = b64url(cj, strlen(cj));
	size_t inlen = strlen(h) + strlen(c) + 1;
	char *input = malloc(inlen + 1), *s, *tok;
	unsigned char sig[1024];
	size_t siglen = 0;

	sprintf(input, "%s.%s", h, c);
	if (how == SIG_HS) {
		if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
			       (unsigned char *)input, inlen, sig, sizeof sig, &siglen))
			abort();
	} else if (how == SIG_RS || how == SIG_ES) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		unsigned char der[256];
		size_t derlen = sizeof der;

		siglen = sizeof sig;
		if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k) != 1 ||
		    EVP_DigestSign(ctx, how == SIG_RS ? sig : der,
				   how == SIG_RS ? &siglen : &derlen, (unsigned char *)input,
				   inlen) != 1)
			abort();
		EVP_MD_CTX_free(ctx);
		if (how == SIG_ES) {
			const unsigned char *p = der;
			ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
			const BIGNUM *r, *ss;

			if (!es)
				abort();
			ECDSA_SIG_get0(es, &r, &ss);
			BN_bn2binpad(r, sig, 32);
			BN_bn2binpad(ss, sig + 32, 32);
			siglen = 64;
			ECDSA_SIG_free(es);
		}
	}
	s = b64url(sig, siglen);
	tok = malloc(inlen + strlen(s) + 2);
	sprintf(tok, "%s.%s", input, s);
	free(hj);
	free(cj);
	free(h);
	free(c);
	free(input);
	free(s);
	json_decref(header);
	json_decref(claims);
	return tok;
}

static json_t *header(const char *alg, const char *kid)
{
	json_t *h = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");

	if (kid)
		json_object_set_new(h, "kid", json_string(kid));
	return h;
}

static json_int_t now_s(void)
{
	return (json_int_t)time(NULL);
}

/* Claims every instance accepts unless a test changes them. */
static json_t *claims(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "sub", "alice", "tenant", "acme",
			 "role", "user", "iss", ISS, "aud", AUD, "iat", now_s(), "exp",
			 now_s() + 600);
}

static json_t *with(json_t *c, const char *name, json_t *v)
{
	if (v)
		json_object_set_new(c, name, v);
	else
		json_object_del(c, name);
	return c;
}

static char *hs(json_t *c)
{
	return sign_json(header("HS256", NULL), c, SIG_HS, NULL, secret, sizeof secret);
}

static char *rs(EVP_PKEY *k, const char *kid, json_t *c)
{
	return sign_json(header("RS256", kid), c, SIG_RS, k, NULL, 0);
}

static char *es(EVP_PKEY *k, const char *kid, json_t *c)
{
	return sign_json(header("ES256", kid), c, SIG_ES, k, NULL, 0);
}

/* ---- driving the module ------------------------------------------------------------ */

static int auth_hdrs(void *inst, json_t *headers, json_t **principal, sbx_err *err)
{
	json_t *req = json_pack("{s:s, s:s, s:s, s:o}", "method", "GET", "path", "/api/v1/sessions",
				"remote_addr", "127.0.0.1", "headers", headers);
	int rc;

	*principal = NULL;
	sbx_err_clear(err);
	rc = ap->authenticate(inst, req, principal, err);
	json_decref(req);
	return rc;
}

static int auth(void *inst, const char *authorization, json_t **principal, sbx_err *err)
{
	json_t *h = json_object();

	if (authorization)
		json_object_set_new(h, "authorization", json_string(authorization));
	return auth_hdrs(inst, h, principal, err);
}

static int auth_tok(void *inst, const char *tok, json_t **principal, sbx_err *err)
{
	char *v = malloc(strlen(tok) + 8);
	int rc;

	sprintf(v, "Bearer %s", tok);
	rc = auth(inst, v, principal, err);
	free(v);
	return rc;
}

/* True when the message repeats no segment of the token (nor 16 bytes of one). */
static int no_token_in(const char *msg, const char *tok)
{
	const char *seg = tok;

	while (seg && *seg) {
		const char *end = strchr(seg, '.');
		size_t n = end ? (size_t)(end - seg) : strlen(seg);

		for (size_t off = 0; n >= 16 && off + 16 <= n; off += 8) {
			char piece[17];

			memcpy(piece, seg + off, 16);
			piece[16] = '\0';
			if (strstr(msg, piece))
				return 0;
		}
		seg = end ? end + 1 : NULL;
	}
	return 1;
}

/* Expects the token (freed) to be refused with `code` and a message containing `want`. */
static void refused(void *inst, char *tok, int code, const char *want, const char *name)
{
	json_t *p = NULL;
	sbx_err err;
	int rc = auth_tok(inst, tok, &p, &err);

	if (!ok(rc == -code && strstr(err.message, want) && !p && no_token_in(err.message, tok),
		"%s", name))
		diag("rc=%d message: %s (wanted %d, '%s')", rc, err.message, -code, want);
	json_decref(p);
	free(tok);
}

/* Expects the token (freed) to be accepted with this principal. */
static void accepted(void *inst, char *tok, const char *tenant, const char *role,
		     const char *subject, const char *key_id, const char *name)
{
	json_t *p = NULL;
	sbx_err err;
	int rc = auth_tok(inst, tok, &p, &err);
	const char *kid = json_string_value(json_object_get(p, "key_id"));

	if (!ok(rc == 0 && p &&
		    strcmp(json_string_value(json_object_get(p, "tenant")) ?: "", tenant) == 0 &&
		    strcmp(json_string_value(json_object_get(p, "role")) ?: "", role) == 0 &&
		    strcmp(json_string_value(json_object_get(p, "subject")) ?: "", subject) == 0 &&
		    (key_id ? kid && strcmp(kid, key_id) == 0 : kid == NULL),
		"%s", name)) {
		char *s = p ? json_dumps(p, JSON_COMPACT) : NULL;

		diag("rc=%d message: %s principal: %s", rc, err.message, s ? s : "-");
		free(s);
	}
	json_decref(p);
	free(tok);
}

static void *make(const char *name, json_t *cfg)
{
	void *inst = NULL;
	sbx_err err;

	sbx_err_clear(&err);
	if (ap->life.create(fakecore_api(), name, cfg, &inst, &err) != 0 || !inst) {
		printf("Bail out! create %s: %s\n", name, err.message);
		exit(1);
	}
	json_decref(cfg);
	return inst;
}

/* Expects create to refuse cfg (freed) with SBX_E_INVALID and a message containing want. */
static void bad_config(json_t *cfg, const char *want, const char *name)
{
	void *inst = NULL;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = ap->life.create(fakecore_api(), "bad", cfg, &inst, &err);
	if (!ok(rc == -SBX_E_INVALID && !inst && strstr(err.message, want), "%s", name))
		diag("rc=%d message: %s (wanted '%s')", rc, err.message, want);
	if (inst)
		ap->life.destroy(inst);
	json_decref(cfg);
}

static char *iso(json_int_t t)
{
	static char buf[32];
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

/* Replaces the character at index i of a token with another base64url character. */
static char *flip(char *tok, size_t i)
{
	tok[i] = tok[i] == 'A' ? 'B' : 'A';
	return tok;
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_defer(void *inst)
{
	json_t *p = NULL, *h;
	sbx_err err;

	ok(auth(inst, NULL, &p, &err) == SBX_DEFER && !p,
	   "a request without an Authorization header is deferred");
	ok(auth(inst, "Basic YWxpY2U6c2VjcmV0", &p, &err) == SBX_DEFER && !p,
	   "a Basic credential is deferred");
	ok(auth(inst, "Bearer sbx_3f9a0c1d2e4b5a6978", &p, &err) == SBX_DEFER && !p,
	   "a bearer API key (sbx_...) is deferred to the apikey module");
	ok(auth(inst, "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0", &p, &err) == SBX_DEFER,
	   "a bearer value of two segments is deferred");
	ok(auth(inst, "Bearer a.b.c.d", &p, &err) == SBX_DEFER,
	   "a bearer value of four segments is deferred");
	ok(auth(inst, "Bearer ab+c.de/f.ghi", &p, &err) == SBX_DEFER,
	   "a bearer value with non-base64url characters is deferred");
	ok(auth(inst, "Bearer ", &p, &err) == SBX_DEFER, "an empty bearer value is deferred");
	h = json_pack("{s:s}", "x-api-key", "sbx_3f9a0c1d2e4b5a6978");
	ok(auth_hdrs(inst, h, &p, &err) == SBX_DEFER && !p,
	   "a request with only X-API-Key is deferred");
}

static void test_hs256(void *inst)
{
	json_int_t now = now_s();
	char *tok, *other;

	accepted(inst, hs(claims()), "acme", "user", "alice", NULL,
		 "a valid HS256 token gives its tenant, role and subject");
	tok = hs(claims());
	refused(inst, flip(tok, strrchr(tok, '.') - tok + 1), SBX_E_UNAUTHORIZED,
		"signature does not verify with key 'hs256_secret_file'",
		"an HS256 token with a changed signature is refused");
	/* Payload of an admin token, signature of a user token. */
	tok = hs(claims());
	other = hs(with(claims(), "role", json_string("admin")));
	{
		char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
		char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
		char *forged = malloc(strlen(tok) + strlen(other));

		sprintf(forged, "%.*s%.*s%s", (int)(d1 - tok), tok, (int)(o2 - o1), o1, d2);
		refused(inst, forged, SBX_E_UNAUTHORIZED, "signature does not verify",
			"a token whose payload was swapped for another is refused");
	}
	free(tok);
	free(other);
	tok = sign_json(header("HS256", NULL), claims(), SIG_HS, NULL, secret, sizeof secret - 1);
	refused(inst, tok, SBX_E_UNAUTHORIZED, "signature does not verify",
		"a token signed with another secret is refused");

	refused(inst,
		hs(with(with(claims(), "iat", json_integer(now - 600)), "exp",
			json_integer(now - 120))),
		SBX_E_UNAUTHORIZED, "token expired at ",
		"a token expired beyond the leeway is refused");
	tok = hs(with(claims(), "exp", json_integer(now - 120)));
	{
		char want[96];

		snprintf(want, sizeof want, "token expired at %s (leeway 60 s)", iso(now - 120));
		refused(inst, tok, SBX_E_UNAUTHORIZED, want,
			"the expiry message gives the time in UTC and the leeway");
	}
	accepted(
	    inst,
	    hs(with(with(claims(), "iat", json_integer(now - 600)), "exp", json_integer(now - 20))),
	    "acme", "user", "alice", NULL, "a token expired within the leeway is accepted");
	refused(inst, hs(with(claims(), "exp", NULL)), SBX_E_UNAUTHORIZED, "no 'exp' claim",
		"a token without exp is refused by default");
	refused(inst, hs(with(claims(), "exp", json_string("tomorrow"))), SBX_E_UNAUTHORIZED,
		"'exp' must be a NumericDate", "a non-numeric exp is refused");
	refused(inst, hs(with(claims(), "nbf", json_integer(now + 300))), SBX_E_UNAUTHORIZED,
		"token is not valid before ", "a token not yet valid is refused");
	accepted(inst, hs(with(claims(), "nbf", json_integer(now + 20))), "acme", "user", "alice",
		 NULL, "a token valid within the leeway is accepted");
	refused(inst, hs(with(claims(), "iat", json_integer(now + 3600))), SBX_E_UNAUTHORIZED,
		"issued in the future", "a token issued in the future is refused");

	refused(inst, hs(with(claims(), "iss", json_string("https://evil.example.test"))),
		SBX_E_UNAUTHORIZED,
		"token issuer 'https://evil.example.test' is not the accepted issuer",
		"a token of another issuer is refused");
	refused(inst, hs(with(claims(), "iss", NULL)), SBX_E_UNAUTHORIZED, "no 'iss' claim",
		"a token without iss is refused when an issuer is configured");
	refused(inst, hs(with(claims(), "aud", json_string("other-api"))), SBX_E_UNAUTHORIZED,
		"audience ('aud') does not include 'sbxd'",
		"a token for another audience (string) is refused");
	refused(inst, hs(with(claims(), "aud", json_pack("[s,s]", "a", "b"))), SBX_E_UNAUTHORIZED,
		"does not include 'sbxd'", "a token for other audiences (array) is refused");
	refused(inst, hs(with(claims(), "aud", NULL)), SBX_E_UNAUTHORIZED, "no 'aud' claim",
		"a token without aud is refused when an audience is configured");
	accepted(inst, hs(with(claims(), "aud", json_pack("[s,s]", "other-api", AUD))), "acme",
		 "user", "alice", NULL, "a token whose aud array includes ours is accepted");

	refused(inst, hs(with(claims(), "tenant", NULL)), SBX_E_UNAUTHORIZED,
		"token has no 'tenant' claim", "a token without a tenant is refused");
	refused(inst, hs(with(claims(), "tenant", json_string("../etc"))), SBX_E_UNAUTHORIZED,
		"must be a tenant name", "a tenant with a '/' is refused");
	refused(inst, hs(with(claims(), "sub", NULL)), SBX_E_UNAUTHORIZED,
		"token has no 'sub' claim", "a token without a subject is refused");
	refused(inst, hs(with(claims(), "role", json_string("superuser"))), SBX_E_FORBIDDEN,
		"role 'superuser' in claim 'role' is not one of admin, user, read-only",
		"an unknown role is forbidden (403), not unauthorized");
	refused(inst, hs(with(claims(), "role", NULL)), SBX_E_FORBIDDEN, "has no 'role' claim",
		"a token without a role is forbidden");
	accepted(inst, hs(with(claims(), "role", json_string("read-only"))), "acme", "read-only",
		 "alice", NULL, "role read-only is taken as is");
	accepted(inst, hs(with(claims(), "role", json_string("admin"))), "acme", "admin", "alice",
		 NULL, "role admin is taken as is");

	refused(inst,
		sign_json(json_pack("{s:s}", "alg", "none"), claims(), SIG_NONE, NULL, NULL, 0),
		SBX_E_UNAUTHORIZED, "'none'", "alg none (an unsigned token) is refused");
	refused(inst,
		sign_json(json_pack("{s:s}", "alg", "None"), claims(), SIG_HS, NULL, secret,
			  sizeof secret),
		SBX_E_UNAUTHORIZED, "'none'", "alg None with a signature is refused too");
	refused(inst,
		sign_json(header("HS512", NULL), claims(), SIG_HS, NULL, secret, sizeof secret),
		SBX_E_UNAUTHORIZED, "algorithm 'HS512' is not accepted (configured: HS256)",
		"an algorithm that is not configured is refused, naming the configured ones");
	refused(inst,
		sign_json(json_pack("{s:s, s:[s]}", "alg", "HS256", "crit", "exp"), claims(),
			  SIG_HS, NULL, secret, sizeof secret),
		SBX_E_UNAUTHORIZED, "crit", "a header with critical extensions is refused");
	{
		/* {"alg":"HS256","alg":"none"}: two parsers could disagree on it. */
		const char *hj = "{\"alg\":\"HS256\",\"alg\":\"none\"}";
		char *h = b64url(hj, strlen(hj));
		char *good = hs(claims()), *t = malloc(strlen(good) + strlen(h) + 1);

		sprintf(t, "%s%s", h, strchr(good, '.'));
		refused(inst, t, SBX_E_UNAUTHORIZED, "header is not",
			"a header with a duplicate member is refused");
		free(h);
		free(good);
	}
	{
		json_t *c = claims();
		char *pad = malloc(9001), *t;
		json_t *p = NULL;
		sbx_err err;
		int rc;

		memset(pad, 'x', 9000);
		pad[9000] = '\0';
		json_object_set_new(c, "pad", json_string(pad));
		t = hs(c);
		rc = auth_tok(inst, t, &p, &err);
		ok(rc == -SBX_E_UNAUTHORIZED && strstr(err.message, "at most 8192") && !p &&
		       no_token_in(err.message, t),
		   "a token longer than 8 KiB is refused (%zu bytes: %s)", strlen(t), err.message);
		free(t);
		free(pad);
	}
}

static void test_public_keys(void *rs_inst, void *es_inst, void *jwks_inst, void *both)
{
	size_t n;
	char *pem = pem_of(rsa, &n), *tok;

	accepted(rs_inst, rs(rsa, NULL, claims()), "acme", "user", "alice", NULL,
		 "a valid RS256 token verifies with public_key_file (RSA PEM)");
	refused(rs_inst, rs(rsa2, NULL, claims()), SBX_E_UNAUTHORIZED,
		"signature does not verify with key 'public_key_file'",
		"an RS256 token signed by another RSA key is refused");
	tok = rs(rsa, NULL, claims());
	refused(rs_inst, flip(tok, strrchr(tok, '.') - tok + 5), SBX_E_UNAUTHORIZED,
		"signature does not verify", "an RS256 token with a changed signature is refused");
	refused(rs_inst, es(ec, NULL, claims()), SBX_E_UNAUTHORIZED, "no ES256 key is configured",
		"an ES256 token meets no RSA key");
	accepted(es_inst, es(ec, NULL, claims()), "acme", "user", "alice", NULL,
		 "a valid ES256 token verifies with public_key_file (EC P-256 PEM)");
	refused(es_inst, es(ec2, NULL, claims()), SBX_E_UNAUTHORIZED,
		"signature does not verify with key 'public_key_file'",
		"an ES256 token signed by another EC key is refused");
	tok = es(ec, NULL, claims());
	refused(es_inst, flip(tok, strrchr(tok, '.') - tok + 3), SBX_E_UNAUTHORIZED,
		"signature does not verify", "an ES256 token with a changed R is refused");
	{
		/* The same signature in DER form (what EVP returns) is not JWS. */
		char *input_end, *t;
		unsigned char der[128];
		size_t derlen = sizeof der;
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		char *good = es(ec, NULL, claims()), *sig;

		input_end = strrchr(good, '.');
		if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, ec) != 1 ||
		    EVP_DigestSign(ctx, der, &derlen, (unsigned char *)good,
				   (size_t)(input_end - good)) != 1)
			abort();
		EVP_MD_CTX_free(ctx);
		sig = b64url(der, derlen);
		t = malloc(strlen(good) + strlen(sig) + 2);
		sprintf(t, "%.*s.%s", (int)(input_end - good), good, sig);
		refused(es_inst, t, SBX_E_UNAUTHORIZED, "signature does not verify",
			"an ES256 signature in DER form instead of R||S is refused");
		free(sig);
		free(good);
	}

	/* Algorithm confusion: HMAC keyed with the RSA public key's PEM bytes. */
	tok = sign_json(header("HS256", NULL), claims(), SIG_HS, NULL, (unsigned char *)pem, n);
	refused(rs_inst, tok, SBX_E_UNAUTHORIZED,
		"algorithm 'HS256' is not accepted (configured: RS256, ES256)",
		"HS256 signed with the RSA public key is refused where HS256 is off");
	tok = sign_json(header("HS256", NULL), claims(), SIG_HS, NULL, (unsigned char *)pem, n);
	refused(both, tok, SBX_E_UNAUTHORIZED,
		"signature does not verify with key 'hs256_secret_file'",
		"HS256 signed with the RSA public key is refused where HS256 and RS256 are on");
	tok = sign_json(header("HS256", NULL), claims(), SIG_HS, NULL, (unsigned char *)pem, n - 1);
	refused(both, tok, SBX_E_UNAUTHORIZED, "signature does not verify",
		"HS256 signed with the PEM minus its newline is refused too");
	accepted(both, hs(claims()), "acme", "user", "alice", NULL,
		 "HS256 with the real secret is accepted on that instance");
	accepted(both, rs(rsa, NULL, claims()), "acme", "user", "alice", NULL,
		 "RS256 is accepted on that instance");
	free(pem);

	accepted(jwks_inst, es(ec2, "ec-b", claims()), "acme", "user", "alice", "ec-b",
		 "kid 'ec-b' selects the second EC key of the JWKS");
	accepted(jwks_inst, es(ec, "ec-a", claims()), "acme", "user", "alice", "ec-a",
		 "kid 'ec-a' selects the first EC key of the JWKS");
	refused(jwks_inst, es(ec2, "ec-a", claims()), SBX_E_UNAUTHORIZED,
		"signature does not verify with key 'ec-a'",
		"a token whose kid names another key than its signer is refused");
	refused(jwks_inst, es(ec, "ec-zz", claims()), SBX_E_UNAUTHORIZED,
		"no ES256 key has kid 'ec-zz'", "an unknown kid is refused, naming it");
	accepted(jwks_inst, es(ec2, NULL, claims()), "acme", "user", "alice", "ec-b",
		 "without a kid every key of the algorithm's type is tried");
	accepted(jwks_inst, rs(rsa2, "rsa-c", claims()), "acme", "user", "alice", "rsa-c",
		 "an RS256 token verifies with the JWKS RSA key");
	refused(jwks_inst, es(ec, "rsa-c", claims()), SBX_E_UNAUTHORIZED, "no ES256 key has kid",
		"an ES256 token naming an RSA key's kid is refused");
	refused(jwks_inst, rs(rsa, NULL, claims()), SBX_E_UNAUTHORIZED,
		"signature does not verify with key 'rsa-c'",
		"an RS256 token of a key outside the JWKS is refused");
	refused(jwks_inst, rs(rsa2, "es256-only", claims()), SBX_E_UNAUTHORIZED,
		"no RS256 key has kid",
		"a JWK with \"alg\": \"ES256\" is never used for another algorithm");
}

static void test_roles(void)
{
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "hs256_secret_file",
				"secret.bin", "tenant_claim", "org", "role_claim", "groups",
				"subject_claim", "email", "role_map", "sbx-admins", "admin",
				"developers", "user", "viewers", "read-only");
	void *inst = make("roles", cfg);
	json_t *c;

	c = json_pack("{s:s, s:s, s:[s,s,s], s:I}", "email", "bob@example.test", "org",
		      "example-org", "groups", "staff", "viewers", "sbx-admins", "exp",
		      now_s() + 60);
	accepted(inst, hs(c), "example-org", "admin", "bob@example.test", NULL,
		 "role_map maps the most privileged known value of an array claim");
	c = json_pack("{s:s, s:s, s:s, s:I}", "email", "bob@example.test", "org", "example-org",
		      "groups", "viewers", "exp", now_s() + 60);
	accepted(inst, hs(c), "example-org", "read-only", "bob@example.test", NULL,
		 "role_map maps a string claim; tenant_claim and subject_claim are honoured");
	c = json_pack("{s:s, s:s, s:s, s:I}", "email", "bob@example.test", "org", "example-org",
		      "groups", "admin", "exp", now_s() + 60);
	refused(inst, hs(c), SBX_E_FORBIDDEN, "not in this server's role_map",
		"with a role_map, a value outside it is forbidden even if it is a role name");
	c = json_pack("{s:s, s:s, s:[s], s:I}", "email", "bob@example.test", "org", "example-org",
		      "groups", "staff", "exp", now_s() + 60);
	refused(inst, hs(c), SBX_E_FORBIDDEN, "no value of claim 'groups'",
		"an array claim without a mapped value is forbidden");
	c = json_pack("{s:s, s:s, s:s, s:s, s:I}", "email", "bob@example.test", "tenant", "acme",
		      "role", "user", "groups", "viewers", "exp", now_s() + 60);
	refused(inst, hs(c), SBX_E_UNAUTHORIZED, "token has no 'org' claim",
		"tenant_claim replaces 'tenant'");
	ap->life.destroy(inst);

	inst = make("noexp",
		    json_pack("{s:s, s:b}", "hs256_secret_file", "secret.bin", "require_exp", 0));
	accepted(inst, hs(with(claims(), "exp", NULL)), "acme", "user", "alice", NULL,
		 "require_exp = false accepts a token without exp");
	refused(inst, hs(with(claims(), "exp", json_integer(now_s() - 3600))), SBX_E_UNAUTHORIZED,
		"token expired", "require_exp = false still checks an exp that is present");
	ap->life.destroy(inst);
}

static void test_rotation(void)
{
	void *inst;

	write_pem("rot.pem", rsa);
	inst = make("rot", json_pack("{s:s}", "public_key_file", "rot.pem"));
	accepted(inst, rs(rsa, NULL, claims()), "acme", "user", "alice", NULL,
		 "rotation: the first key is accepted");
	refused(inst, rs(rsa2, NULL, claims()), SBX_E_UNAUTHORIZED, "does not verify",
		"rotation: the next key is not accepted yet");
	write_pem("rot.pem", rsa2);
	usleep(1100 * 1000);
	accepted(inst, rs(rsa2, NULL, claims()), "acme", "user", "alice", NULL,
		 "rotation: after the file changed, the new key is accepted without a restart");
	refused(inst, rs(rsa, NULL, claims()), SBX_E_UNAUTHORIZED, "does not verify",
		"rotation: the old key is no longer accepted");
	write_file("rot.pem", "not a key\n", 10, 0644);
	usleep(1100 * 1000);
	accepted(inst, rs(rsa2, NULL, claims()), "acme", "user", "alice", NULL,
		 "rotation: a broken key file keeps the previous keys in use");
	ap->life.destroy(inst);

	/* The secret file rotates the same way. */
	{
		unsigned char next[40];

		RAND_bytes(next, sizeof next);
		write_file("rot.secret", secret, sizeof secret, 0600);
		inst = make("rot-hs", json_pack("{s:s}", "hs256_secret_file", "rot.secret"));
		accepted(inst, hs(claims()), "acme", "user", "alice", NULL,
			 "secret rotation: the first secret is accepted");
		write_file("rot.secret", next, sizeof next, 0600);
		usleep(1100 * 1000);
		refused(inst, hs(claims()), SBX_E_UNAUTHORIZED, "does not verify",
			"secret rotation: the old secret is refused after the file changed");
		accepted(
		    inst,
		    sign_json(header("HS256", NULL), claims(), SIG_HS, NULL, next, sizeof next),
		    "acme", "user", "alice", NULL, "secret rotation: the new secret is accepted");
		ap->life.destroy(inst);
	}
}

/* public_key_file may hold a certificate: its public key is used. */
static void test_certificate(void)
{
	X509 *cert = X509_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *path;
	long len;
	void *inst;

	if (!cert || !b || X509_set_version(cert, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(cert), 3600) || X509_set_pubkey(cert, ec) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
				       (const unsigned char *)"idp", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(cert, X509_get_subject_name(cert)) != 1 ||
	    X509_sign(cert, ec, EVP_sha256()) <= 0 || PEM_write_bio_X509(b, cert) != 1)
		abort();
	len = BIO_get_mem_data(b, &data);
	write_file("cert.pem", data, (size_t)len, 0644);
	path = path_of("cert.pem");
	inst = make("cert", json_pack("{s:s}", "public_key_file", path));
	accepted(inst, es(ec, NULL, claims()), "acme", "user", "alice", NULL,
		 "a certificate in public_key_file verifies with its public key");
	refused(inst, es(ec2, NULL, claims()), SBX_E_UNAUTHORIZED, "does not verify",
		"a certificate's key refuses another signer");
	ap->life.destroy(inst);
	free(path);
	BIO_free(b);
	X509_free(cert);
}

struct worker {
	void *inst;
	const char *tok;
	int good;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 200; i++) {
		json_t *p = NULL;
		sbx_err err;

		if (auth_tok(w->inst, w->tok, &p, &err) == 0 && p)
			w->good++;
		json_decref(p);
	}
	return NULL;
}

static void test_threads(void *jwks_inst)
{
	char *tok = es(ec2, "ec-b", claims());
	struct worker w[4];
	pthread_t t[4];
	int good = 0;

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.inst = jwks_inst, .tok = tok};
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		good += w[i].good;
	}
	ok(good == 800, "4 threads verify 800 tokens concurrently (%d accepted)", good);
	free(tok);
}

static void test_config(void)
{
	unsigned char short_secret[16];
	EVP_PKEY *p384 = EVP_EC_gen("P-384"), *rsa1024 = EVP_RSA_gen(1024);
	size_t n;
	char *pem = pem_of(rsa, &n);

	RAND_bytes(short_secret, sizeof short_secret);
	write_file("short.bin", short_secret, sizeof short_secret, 0600);
	write_file("pem-as-secret.bin", pem, n, 0600);
	write_pem("p384.pem", p384);
	write_pem("rsa1024.pem", rsa1024);
	write_json("enc-only.json", json_pack("{s:[{s:s, s:s, s:s, s:s}]}", "keys", "kty", "RSA",
					      "use", "enc", "n", "AQAB", "e", "AQAB"));
	write_json("bad-point.json",
		   json_pack("{s:[{s:s, s:s, s:s, s:s}]}", "keys", "kty", "EC", "crv", "P-256", "x",
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE", "y",
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"));
	free(pem);

	bad_config(json_pack("{s:s, s:s}", "public_key_file", "rsa.pem", "issuer_url", ISS),
		   "unknown config key 'issuer_url'",
		   "an unknown config key is refused, naming it");
	bad_config(json_pack("{s:s}", "hs256_secret_file", "short.bin"), "at least 32",
		   "an HS256 secret shorter than 32 bytes is refused");
	bad_config(json_pack("{s:s}", "hs256_secret_file", "pem-as-secret.bin"),
		   "holds a PEM key, not a shared secret",
		   "a PEM public key given as the HS256 secret is refused");
	bad_config(json_pack("{s:s}", "issuer", ISS), "no key source",
		   "a config without any key source is refused");
	bad_config(json_pack("{s:s, s:[s]}", "public_key_file", "rsa.pem", "algorithms", "none"),
		   "'none'", "algorithm none cannot be configured");
	bad_config(json_pack("{s:s, s:[s]}", "public_key_file", "rsa.pem", "algorithms", "HS512"),
		   "algorithms[0] is not one of", "an unsupported algorithm cannot be configured");
	bad_config(json_pack("{s:s, s:[s]}", "public_key_file", "rsa.pem", "algorithms", "HS256"),
		   "HS256 needs hs256_secret_file", "HS256 without a secret cannot be configured");
	bad_config(json_pack("{s:s, s:s}", "public_key_file", "rsa.pem", "leeway_s", "60"),
		   "'leeway_s' must be an integer", "a mistyped value is refused, naming its key");
	bad_config(json_pack("{s:s, s:i}", "public_key_file", "rsa.pem", "leeway_s", 86400),
		   "leeway_s must be 0..3600", "a leeway beyond an hour is refused");
	bad_config(
	    json_pack("{s:s, s:{s:s}}", "public_key_file", "rsa.pem", "role_map", "ops", "root"),
	    "role_map['ops']", "a role_map value that is not a role is refused");
	bad_config(json_pack("{s:s}", "public_key_file", "missing.pem"), "missing.pem",
		   "a missing key file is refused, naming it");
	bad_config(json_pack("{s:s}", "public_key_file", "p384.pem"), "needs P-256",
		   "an EC key on another curve is refused");
	bad_config(json_pack("{s:s}", "public_key_file", "rsa1024.pem"), "at least 2048",
		   "an RSA key shorter than 2048 bits is refused");
	bad_config(json_pack("{s:s}", "public_key_file", "secret.bin"), "no PEM public key",
		   "a public_key_file that is not PEM is refused");
	bad_config(json_pack("{s:s}", "jwks_file", "enc-only.json"), "has no RSA or EC P-256",
		   "a JWKS without a signing key is refused");
	bad_config(json_pack("{s:s}", "jwks_file", "bad-point.json"), "not a valid EC public key",
		   "a JWKS EC key off the curve is refused");
	bad_config(json_pack("{s:s}", "jwks_file", "rsa.pem"), "is not JSON",
		   "a JWKS file that is not JSON is refused");
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa1024);
}

int main(int argc, char **argv)
{
	const char *modpath = argc > 1 ? argv[1] : getenv("SBX_AUTH_MODULE");
	char defmod[4096], errbuf[512];
	struct fakecore_module mod;
	void *hs_inst, *rs_inst, *es_inst, *jwks_inst, *both;
	json_t *jwks;

	fakecore_api();
	if (!modpath) {
		const char *tb = getenv("top_builddir");

		snprintf(defmod, sizeof defmod, "%s/plugins/auth/jwt/auth_jwt.la", tb ? tb : ".");
		modpath = defmod;
	}
	if (fakecore_module_open(modpath, SBX_KIND_AUTH, sizeof(struct sbx_auth_plugin), &mod,
				 errbuf, sizeof errbuf) != 0) {
		printf("Bail out! %s\n", errbuf);
		return 1;
	}
	ap = (const struct sbx_auth_plugin *)mod.hdr;
	snprintf(dir, sizeof dir, "%s", fakecore_data_dir());

	rsa = EVP_RSA_gen(2048);
	rsa2 = EVP_RSA_gen(2048);
	ec = EVP_EC_gen("P-256");
	ec2 = EVP_EC_gen("P-256");
	if (!rsa || !rsa2 || !ec || !ec2 || RAND_bytes(secret, sizeof secret) != 1) {
		printf("Bail out! key generation failed\n");
		return 1;
	}
	write_file("secret.bin", secret, sizeof secret, 0600);
	write_pem("rsa.pem", rsa);
	write_pem("ec.pem", ec);
	jwks = json_pack("{s:[o,o,o,o]}", "keys", jwk_of(ec, "ec-a"), jwk_of(ec2, "ec-b"),
			 jwk_of(rsa2, "rsa-c"), jwk_of(rsa2, "es256-only"));
	/* A JWK pinned to another algorithm than its key type allows. */
	json_object_set_new(json_array_get(json_object_get(jwks, "keys"), 3), "alg",
			    json_string("ES256"));
	json_array_append_new(
	    json_object_get(jwks, "keys"),
	    json_pack("{s:s, s:s, s:s}", "kty", "oct", "k", "c2VjcmV0", "kid", "symmetric"));
	write_json("jwks.json", jwks);

	/* A relative path is under the data directory; the others are absolute. */
	hs_inst = make("hs", json_pack("{s:s, s:s, s:s, s:i}", "hs256_secret_file", "secret.bin",
				       "issuer", ISS, "audience", AUD, "leeway_s", 60));
	{
		char *r = path_of("rsa.pem"), *e = path_of("ec.pem"), *j = path_of("jwks.json");
		char *s = path_of("secret.bin");

		rs_inst = make("rs", json_pack("{s:s}", "public_key_file", r));
		es_inst = make("es", json_pack("{s:s}", "public_key_file", e));
		jwks_inst = make("jwks", json_pack("{s:s, s:s}", "jwks_file", j, "issuer", ISS));
		both =
		    make("both", json_pack("{s:s, s:s, s:[s,s]}", "hs256_secret_file", s,
					   "public_key_file", r, "algorithms", "HS256", "RS256"));
		free(r);
		free(e);
		free(j);
		free(s);
	}
	test_defer(hs_inst);
	test_hs256(hs_inst);
	test_public_keys(rs_inst, es_inst, jwks_inst, both);
	test_roles();
	test_certificate();
	test_threads(jwks_inst);
	test_config();
	test_rotation();

	ap->life.destroy(hs_inst);
	ap->life.destroy(rs_inst);
	ap->life.destroy(es_inst);
	ap->life.destroy(jwks_inst);
	ap->life.destroy(both);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(rsa2);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ec2);
	fakecore_module_close(&mod);
	fakecore_cleanup();
	return tap_done();
}
