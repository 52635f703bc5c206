/*
 * auth/jwt: bearer JSON Web Tokens (RFC 7519) signed with HS256, RS256 or ES256. Owns the
 * module descriptor, the strict config, and authenticate: token shape, header, key
 * choice, claims (exp, nbf, iat, iss, aud) and the mapping of claims to a principal.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include <sandbox/auth.h>
#include <sandbox/core.h>

#include "plugins/auth/jwt/jwt.h"

#define TOKEN_MAX      8192
#define LEEWAY_MAX     3600
#define CLAIM_NAME_MAX 128
#define TENANT_MAX     128
#define SUBJECT_MAX    256
#define TIME_MAX       253402300799.0 /* 9999-12-31T23:59:59Z */
#define ECHO_MAX       64             /* characters of a token's string echoed in messages */

struct jwt {
	const struct sbx_core_api *core;
	char *name;
	unsigned algs; /* enum jwt_alg bits */
	char *issuer;
	char *audience;
	long long leeway_s;
	int require_exp;
	char *tenant_claim;
	char *role_claim;
	char *subject_claim;
	json_t *role_map; /* NULL, or claim value -> "admin"|"user"|"read-only" */
	int lock_ready;
	struct jwt_keystore ks;
};

static const struct {
	const char *name;
	int alg;
	int key_type;
} algs[] = {
    {"HS256", ALG_HS256, KT_HMAC},
    {"RS256", ALG_RS256, KT_RSA},
    {"ES256", ALG_ES256, KT_EC},
};
#define NALGS (sizeof algs / sizeof algs[0])

/* Canonical roles, least to most privileged. */
static const char *const roles[] = {"read-only", "user", "admin"};
#define NROLES (sizeof roles / sizeof roles[0])

static int role_rank(const char *s)
{
	for (size_t i = 0; s && i < NROLES; i++)
		if (strcmp(s, roles[i]) == 0)
			return (int)i;
	return -1;
}

/* A token's string, fit to echo in a message or a log: printable ASCII without quotes,
 * at most ECHO_MAX characters. */
static const char *echo(const char *s, char buf[ECHO_MAX + 4])
{
	size_t i;

	for (i = 0; s[i] && i < ECHO_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] =
		    c < 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == '\\' ? '?' : (char)c;
	}
	strcpy(buf + i, s[i] ? "..." : "");
	return buf;
}

static void algs_list(unsigned bits, char *buf, size_t cap)
{
	buf[0] = '\0';
	for (size_t i = 0; i < NALGS; i++)
		if (bits & (unsigned)algs[i].alg)
			snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? ", " : "",
				 algs[i].name);
}

static void iso_time(double t, char buf[32])
{
	time_t tt = (time_t)floor(t);
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "%.0f", t);
}

/* ---- token structure ------------------------------------------------------------- */

/* Three base64url segments, header and payload non-empty (the signature may be empty:
 * an unsigned token is still a JWT, one we refuse). */
static int jwt_shape(const char *t, size_t len, size_t *d1, size_t *d2)
{
	const char *p = memchr(t, '.', len), *q;

	if (!p)
		return 0;
	q = memchr(p + 1, '.', len - (size_t)(p - t) - 1);
	if (!q || memchr(q + 1, '.', len - (size_t)(q - t) - 1))
		return 0;
	*d1 = (size_t)(p - t);
	*d2 = (size_t)(q - t);
	return *d1 > 0 && *d2 > *d1 + 1 && jws_is_b64url(t, *d1) &&
	       jws_is_b64url(p + 1, *d2 - *d1 - 1) && jws_is_b64url(q + 1, len - *d2 - 1);
}

/* A JSON object from a base64url segment; duplicate names are refused so that no two
 * parsers can read one token differently. */
static json_t *segment_json(const char *s, size_t len)
{
	unsigned char *raw = NULL;
	size_t n = 0;
	json_t *v = NULL;

	if (jws_b64url_decode(s, len, &raw, &n) == 0)
		v = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (v && !json_is_object(v)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

/*
 * Checks the header and the signature. On success *kid_used is the kid of the key that
 * verified it (malloc'ed) or NULL for keys without one.
 */
static int check_signature(struct jwt *j, const char *tok, size_t d1, size_t d2, size_t len,
			   char **kid_used, sbx_err *err)
{
	char e1[ECHO_MAX + 4], e2[ECHO_MAX + 4], list[64];
	const char *alg_name, *kid = NULL;
	json_t *hdr, *kidv;
	unsigned char *sig = NULL;
	size_t siglen = 0, a, tried = 0, of_type = 0;
	struct jwt_keyset *set = NULL;
	const struct jwt_key *last = NULL;
	int ret, r = 0;

	hdr = segment_json(tok, d1);
	if (!hdr)
		return sbx_err_set(err, SBX_E_UNAUTHORIZED,
				   "bearer token header is not a base64url-encoded JSON object");
	alg_name = json_string_value(json_object_get(hdr, "alg"));
	if (!alg_name) {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED, "bearer token header has no 'alg'");
		goto out;
	}
	if (strcasecmp(alg_name, "none") == 0) {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED,
				  "algorithm 'none' (an unsigned token) is never accepted");
		goto out;
	}
	for (a = 0; a < NALGS; a++)
		if (strcmp(alg_name, algs[a].name) == 0 && (j->algs & (unsigned)algs[a].alg))
			break;
	if (a == NALGS) {
		algs_list(j->algs, list, sizeof list);
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED,
				  "algorithm '%s' is not accepted (configured: %s)",
				  echo(alg_name, e1), list);
		goto out;
	}
	if (json_object_get(hdr, "crit")) {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED,
				  "bearer token header names critical extensions ('crit'), which "
				  "this server does not support");
		goto out;
	}
	kidv = json_object_get(hdr, "kid");
	if (kidv && !json_is_string(kidv)) {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED,
				  "bearer token header 'kid' must be a string");
		goto out;
	}
	kid = json_string_value(kidv);
	if (jws_b64url_decode(tok + d2 + 1, len - d2 - 1, &sig, &siglen) < 0) {
		ret =
		    sbx_err_set(err, SBX_E_UNAUTHORIZED, "bearer token signature is not base64url");
		goto out;
	}

	/* An algorithm only ever meets keys of its own type (no HS256 with an RSA key's
	 * bytes); a JWK that names an algorithm is used for that one alone; a kid selects
	 * among the keys that have one. */
	set = keys_acquire(&j->ks);
	for (size_t i = 0; i < set->n && r == 0; i++) {
		const struct jwt_key *k = &set->keys[i];

		if (k->type != algs[a].key_type || (k->alg && strcmp(k->alg, alg_name) != 0))
			continue;
		of_type++;
		if (kid && k->kid && strcmp(k->kid, kid) != 0)
			continue;
		tried++;
		last = k;
		r = jws_verify(k, algs[a].alg, (const unsigned char *)tok, d2, sig, siglen);
	}
	if (r < 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "signature verification failed in OpenSSL");
	} else if (r == 1) {
		*kid_used = last->kid ? strdup(last->kid) : NULL;
		ret =
		    last->kid && !*kid_used ? sbx_err_set(err, SBX_E_INTERNAL, "out of memory") : 0;
	} else if (tried == 0 && of_type > 0) {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED,
				  "no %s key has kid '%s' (%zu %s keys are configured)", alg_name,
				  echo(kid, e2), of_type, alg_name);
	} else if (tried == 0) {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED, "no %s key is configured", alg_name);
	} else if (tried == 1) {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED,
				  "signature does not verify with key '%s'", echo(last->label, e2));
	} else {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED,
				  "signature does not verify with any of the %zu %s keys", tried,
				  alg_name);
	}
	keys_release(&j->ks, set);
out:
	free(sig);
	json_decref(hdr);
	return ret;
}

/* ---- claims ---------------------------------------------------------------------- */

/* A NumericDate claim: *present is 0 when absent; a non-number is an error. */
static int claim_time(const json_t *claims, const char *name, double *v, int *present, sbx_err *err)
{
	const json_t *c = json_object_get(claims, name);

	*present = c != NULL;
	if (!c)
		return 0;
	*v = json_number_value(c);
	if (!json_is_number(c) || !isfinite(*v) || *v < 0 || *v > TIME_MAX)
		return sbx_err_set(err, SBX_E_UNAUTHORIZED,
				   "token claim '%s' must be a NumericDate (seconds since 1970)",
				   name);
	return 0;
}

static int check_times(struct jwt *j, const json_t *claims, sbx_err *err)
{
	double now = (double)j->core->now_ms() / 1000.0, leeway = (double)j->leeway_s;
	double exp = 0, nbf = 0, iat = 0;
	int has_exp, has_nbf, has_iat, ret;
	char when[32];

	if ((ret = claim_time(claims, "exp", &exp, &has_exp, err)) < 0 ||
	    (ret = claim_time(claims, "nbf", &nbf, &has_nbf, err)) < 0 ||
	    (ret = claim_time(claims, "iat", &iat, &has_iat, err)) < 0)
		return ret;
	if (!has_exp && j->require_exp)
		return sbx_err_set(err, SBX_E_UNAUTHORIZED,
				   "token has no 'exp' claim; tokens must expire");
	if (has_exp && now >= exp + leeway) {
		iso_time(exp, when);
		return sbx_err_set(err, SBX_E_UNAUTHORIZED, "token expired at %s (leeway %lld s)",
				   when, j->leeway_s);
	}
	if (has_nbf && now + leeway < nbf) {
		iso_time(nbf, when);
		return sbx_err_set(err, SBX_E_UNAUTHORIZED,
				   "token is not valid before %s (leeway %lld s)", when,
				   j->leeway_s);
	}
	if (has_iat && iat > now + leeway) {
		iso_time(iat, when);
		return sbx_err_set(err, SBX_E_UNAUTHORIZED,
				   "token was issued in the future, at %s (leeway %lld s); check "
				   "the issuer's clock",
				   when, j->leeway_s);
	}
	if (has_iat && has_exp && exp < iat)
		return sbx_err_set(err, SBX_E_UNAUTHORIZED,
				   "token expires ('exp') before it was issued ('iat')");
	return 0;
}

static int check_iss_aud(struct jwt *j, const json_t *claims, sbx_err *err)
{
	char e1[ECHO_MAX + 4], e2[ECHO_MAX + 4];
	const json_t *aud, *v;
	const char *iss;
	size_t i;
	int match = 0;

	if (j->issuer) {
		iss = json_string_value(json_object_get(claims, "iss"));
		if (!iss)
			return sbx_err_set(err, SBX_E_UNAUTHORIZED,
					   "token has no 'iss' claim (the accepted issuer is '%s')",
					   echo(j->issuer, e1));
		if (strcmp(iss, j->issuer) != 0)
			return sbx_err_set(err, SBX_E_UNAUTHORIZED,
					   "token issuer '%s' is not the accepted issuer '%s'",
					   echo(iss, e1), echo(j->issuer, e2));
	}
	if (j->audience) {
		aud = json_object_get(claims, "aud");
		if (!aud)
			return sbx_err_set(err, SBX_E_UNAUTHORIZED,
					   "token has no 'aud' claim (it must include '%s')",
					   echo(j->audience, e1));
		if (json_is_string(aud))
			match = strcmp(json_string_value(aud), j->audience) == 0;
		json_array_foreach (aud, i, v) {
			if (json_is_string(v) && strcmp(json_string_value(v), j->audience) == 0)
				match = 1;
		}
		if (!match)
			return sbx_err_set(err, SBX_E_UNAUTHORIZED,
					   "token audience ('aud') does not include '%s'",
					   echo(j->audience, e1));
	}
	return 0;
}

static int tenant_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > TENANT_MAX)
		return 0;
	for (; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
		      (*t >= '0' && *t <= '9') || strchr("._:@-", *t)))
			return 0;
	return 1;
}

static int printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* The canonical role of one claim value, or -1. */
static int map_role(struct jwt *j, const json_t *v)
{
	if (!json_is_string(v))
		return -1;
	if (j->role_map)
		return role_rank(
		    json_string_value(json_object_get(j->role_map, json_string_value(v))));
	return role_rank(json_string_value(v));
}

/* A string claim gives one role; an array of strings gives its most privileged known
 * role (unknown members are ignored). */
static int check_role(struct jwt *j, const json_t *claims, const char **role, sbx_err *err)
{
	const json_t *c = json_object_get(claims, j->role_claim), *v;
	char e1[ECHO_MAX + 4];
	int best = -1;
	size_t i;

	if (!c)
		return sbx_err_set(err, SBX_E_FORBIDDEN,
				   "token has no '%s' claim, so it grants no role (admin, user or "
				   "read-only)",
				   j->role_claim);
	best = map_role(j, c);
	json_array_foreach (c, i, v) {
		int r = map_role(j, v);

		if (r > best)
			best = r;
	}
	if (best >= 0) {
		*role = roles[best];
		return 0;
	}
	if (json_is_string(c))
		return sbx_err_set(err, SBX_E_FORBIDDEN, "role '%s' in claim '%s' is %s",
				   echo(json_string_value(c), e1), j->role_claim,
				   j->role_map ? "not in this server's role_map"
					       : "not one of admin, user, read-only");
	return sbx_err_set(err, SBX_E_FORBIDDEN, "no value of claim '%s' is %s", j->role_claim,
			   j->role_map ? "in this server's role_map"
				       : "one of admin, user, read-only");
}

static int check_claims(struct jwt *j, const json_t *claims, const char *kid, json_t **principal,
			sbx_err *err)
{
	const char *tenant, *subject, *role = NULL;
	const json_t *c;
	json_t *p;
	int ret;

	if ((ret = check_times(j, claims, err)) < 0 || (ret = check_iss_aud(j, claims, err)) < 0)
		return ret;
	c = json_object_get(claims, j->tenant_claim);
	if (!c || json_is_null(c))
		return sbx_err_set(err, SBX_E_UNAUTHORIZED, "token has no '%s' claim",
				   j->tenant_claim);
	tenant = json_string_value(c);
	if (!tenant || !tenant_ok(tenant))
		return sbx_err_set(err, SBX_E_UNAUTHORIZED,
				   "token claim '%s' must be a tenant name of 1..%d characters "
				   "A-Z a-z 0-9 . _ : @ -",
				   j->tenant_claim, TENANT_MAX);
	c = json_object_get(claims, j->subject_claim);
	if (!c)
		return sbx_err_set(err, SBX_E_UNAUTHORIZED, "token has no '%s' claim",
				   j->subject_claim);
	subject = json_string_value(c);
	if (!subject || !printable(subject, SUBJECT_MAX))
		return sbx_err_set(err, SBX_E_UNAUTHORIZED,
				   "token claim '%s' must be a string of 1..%d printable "
				   "characters",
				   j->subject_claim, SUBJECT_MAX);
	if ((ret = check_role(j, claims, &role, err)) < 0)
		return ret;
	p = json_pack("{s:s, s:s, s:s}", "tenant", tenant, "role", role, "subject", subject);
	if (p && kid)
		json_object_set_new(p, "key_id", json_string(kid));
	if (!p)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	*principal = p;
	return 0;
}

/* ---- authenticate ---------------------------------------------------------------- */

static void count(struct jwt *j, const char *result)
{
	json_t *labels;

	if (!j->core->counter_add)
		return;
	labels = json_pack("{s:s, s:s}", "instance", j->name, "result", result);
	j->core->counter_add("sbx_auth_jwt_tokens_total", labels, 1);
	json_decref(labels);
}

/*
 * auth.h: DEFER without an "Authorization: Bearer" header holding three base64url
 * segments; otherwise the token is ours and is accepted (0, *principal) or refused
 * (SBX_E_UNAUTHORIZED, or SBX_E_FORBIDDEN when it is valid but grants no known role).
 * Messages never include the token. Any worker thread.
 */
static int authenticate(void *inst, const json_t *request, json_t **principal, sbx_err *err)
{
	struct jwt *j = inst;
	const char *hv, *tok;
	size_t len, d1 = 0, d2 = 0;
	char *kid = NULL;
	json_t *claims = NULL, *p = NULL;
	int ret;

	hv = json_string_value(
	    json_object_get(json_object_get(request, "headers"), "authorization"));
	if (!hv || strncasecmp(hv, "Bearer", 6) != 0 || (hv[6] != ' ' && hv[6] != '\t'))
		return SBX_DEFER;
	for (tok = hv + 6; *tok == ' ' || *tok == '\t'; tok++)
		;
	len = strlen(tok);
	while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
		len--;
	if (!jwt_shape(tok, len, &d1, &d2))
		return SBX_DEFER;
	if (len > TOKEN_MAX) {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED,
				  "bearer token is %zu bytes; at most %d are accepted", len,
				  TOKEN_MAX);
		goto out;
	}
	ret = check_signature(j, tok, d1, d2, len, &kid, err);
	if (ret < 0)
		goto out;
	/* Claims are read only from a token whose signature verified. */
	claims = segment_json(tok + d1 + 1, d2 - d1 - 1);
	if (!claims) {
		ret = sbx_err_set(err, SBX_E_UNAUTHORIZED,
				  "bearer token payload is not a base64url-encoded JSON object");
		goto out;
	}
	ret = check_claims(j, claims, kid, &p, err);
out:
	if (ret == 0) {
		*principal = p;
		count(j, "accepted");
		j->core->log(j->name, SBX_LOG_DEBUG,
			     "event=jwt_accepted tenant=%s role=%s key_id=%s",
			     json_string_value(json_object_get(p, "tenant")),
			     json_string_value(json_object_get(p, "role")), kid ? kid : "-");
	} else {
		count(j, ret == -SBX_E_FORBIDDEN ? "forbidden" : "rejected");
		j->core->log(j->name, SBX_LOG_INFO, "event=jwt_rejected code=%d reason=\"%s\"",
			     -ret, err ? err->message : "");
	}
	json_decref(claims);
	free(kid);
	return ret;
}

/* ---- lifecycle ------------------------------------------------------------------- */

static void destroy(void *inst)
{
	struct jwt *j = inst;

	if (!j)
		return;
	keys_fini(&j->ks);
	if (j->lock_ready)
		pthread_mutex_destroy(&j->ks.lock);
	json_decref(j->role_map);
	free(j->issuer);
	free(j->audience);
	free(j->tenant_claim);
	free(j->role_claim);
	free(j->subject_claim);
	free(j->name);
	free(j);
}

/* Config keys and their JSON types ('s' string, 'i' integer, 'b' boolean, 'a' array,
 * 'o' object), checked before unpacking so that a type error names its key. */
static const struct {
	const char *key;
	char type;
} conf_keys[] = {
    {"algorithms", 'a'},      {"hs256_secret_file", 's'},
    {"public_key_file", 's'}, {"jwks_file", 's'},
    {"issuer", 's'},          {"audience", 's'},
    {"leeway_s", 'i'},        {"require_exp", 'b'},
    {"tenant_claim", 's'},    {"role_claim", 's'},
    {"subject_claim", 's'},   {"role_map", 'o'},
};

static int conf_types(const json_t *config, const char *name, sbx_err *err)
{
	const char *key;
	const json_t *v;

	if (!json_is_object(config))
		return sbx_err_set(err, SBX_E_INVALID, "auth '%s' (jwt): config must be a group",
				   name);
	json_object_foreach ((json_t *)config, key, v) {
		const char *what;
		size_t i;
		int ok;

		for (i = 0; i < sizeof conf_keys / sizeof conf_keys[0]; i++)
			if (strcmp(key, conf_keys[i].key) == 0)
				break;
		if (i == sizeof conf_keys / sizeof conf_keys[0])
			return sbx_err_set(
			    err, SBX_E_INVALID,
			    "auth '%s' (jwt): unknown config key '%s' (known: algorithms, "
			    "hs256_secret_file, public_key_file, jwks_file, issuer, audience, "
			    "leeway_s, require_exp, tenant_claim, role_claim, subject_claim, "
			    "role_map)",
			    name, key);
		switch (conf_keys[i].type) {
		case 's':
			ok = json_is_string(v) && json_string_value(v)[0] != '\0';
			what = "a non-empty string";
			break;
		case 'i':
			ok = json_is_integer(v);
			what = "an integer";
			break;
		case 'b':
			ok = json_is_boolean(v);
			what = "a boolean (true or false)";
			break;
		case 'a':
			ok = json_is_array(v);
			what = "a list of strings";
			break;
		default:
			ok = json_is_object(v);
			what = "a group of \"claim value\" = \"role\" settings";
		}
		if (!ok)
			return sbx_err_set(err, SBX_E_INVALID, "auth '%s' (jwt): '%s' must be %s",
					   name, key, what);
	}
	return 0;
}

static int conf_algorithms(struct jwt *j, const json_t *list, int have_secret, int have_public,
			   sbx_err *err)
{
	const json_t *v;
	size_t i, a;

	if (!list) {
		j->algs = (have_secret ? ALG_HS256 : 0) | (have_public ? ALG_RS256 | ALG_ES256 : 0);
		return 0;
	}
	if (json_array_size(list) == 0)
		return sbx_err_set(err, SBX_E_INVALID, "auth '%s' (jwt): 'algorithms' is empty",
				   j->name);
	json_array_foreach (list, i, v) {
		const char *s = json_string_value(v);

		if (s && strcasecmp(s, "none") == 0)
			return sbx_err_set(err, SBX_E_INVALID,
					   "auth '%s' (jwt): algorithms: 'none' (unsigned tokens) "
					   "is never accepted",
					   j->name);
		for (a = 0; s && a < NALGS; a++)
			if (strcmp(s, algs[a].name) == 0)
				break;
		if (!s || a == NALGS)
			return sbx_err_set(err, SBX_E_INVALID,
					   "auth '%s' (jwt): algorithms[%zu] is not one of HS256, "
					   "RS256, ES256",
					   j->name, i);
		j->algs |= (unsigned)algs[a].alg;
	}
	if ((j->algs & ALG_HS256) && !have_secret)
		return sbx_err_set(err, SBX_E_INVALID,
				   "auth '%s' (jwt): algorithm HS256 needs hs256_secret_file",
				   j->name);
	if ((j->algs & (ALG_RS256 | ALG_ES256)) && !have_public)
		return sbx_err_set(
		    err, SBX_E_INVALID,
		    "auth '%s' (jwt): algorithms RS256 and ES256 need public_key_file "
		    "or jwks_file",
		    j->name);
	if (have_secret && !(j->algs & ALG_HS256))
		j->core->log(j->name, SBX_LOG_WARN,
			     "event=jwt_secret_unused note=hs256_secret_file is set but HS256 is "
			     "not in algorithms");
	return 0;
}

static int conf_role_map(struct jwt *j, const json_t *map, sbx_err *err)
{
	char e1[ECHO_MAX + 4];
	const char *key;
	const json_t *v;

	if (!map)
		return 0;
	if (json_object_size(map) == 0)
		return sbx_err_set(err, SBX_E_INVALID,
				   "auth '%s' (jwt): role_map is empty; remove it or map claim "
				   "values to admin, user or read-only",
				   j->name);
	json_object_foreach ((json_t *)map, key, v) {
		if (role_rank(json_string_value(v)) < 0)
			return sbx_err_set(err, SBX_E_INVALID,
					   "auth '%s' (jwt): role_map['%s'] must be \"admin\", "
					   "\"user\" or \"read-only\"",
					   j->name, echo(key, e1));
	}
	j->role_map = json_deep_copy(map);
	return j->role_map ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

/* Absolute paths stay; relative ones are under the daemon's data directory. */
static char *conf_path(const struct sbx_core_api *core, const char *p)
{
	const char *dd;
	size_t n;
	char *s;

	if (!p)
		return NULL;
	if (p[0] == '/')
		return strdup(p);
	dd = core->data_dir ? core->data_dir() : NULL;
	if (!dd)
		dd = ".";
	n = strlen(dd) + strlen(p) + 2;
	s = malloc(n);
	if (s)
		snprintf(s, n, "%s/%s", dd, p);
	return s;
}

static char *dup_or(const char *s, const char *dflt)
{
	return strdup(s ? s : dflt);
}

static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	const char *secret = NULL, *pem = NULL, *jwks = NULL, *issuer = NULL, *audience = NULL;
	const char *tenant_claim = NULL, *role_claim = NULL, *subject_claim = NULL;
	json_t *alg_list = NULL, *role_map = NULL, *empty = NULL;
	json_int_t leeway = 60;
	int require_exp = 1, ret = 0;
	json_error_t jerr;
	struct jwt *j;

	j = calloc(1, sizeof *j);
	if (!j)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	j->core = core;
	j->name = strdup(instance_name ? instance_name : "jwt");
	if (!j->name) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	if (!config)
		config = empty = json_object();
	ret = conf_types(config, j->name, err);
	if (ret < 0)
		goto out;
	if (json_unpack_ex((json_t *)config, &jerr, JSON_STRICT,
			   "{s?o, s?s, s?s, s?s, s?s, s?s, s?I, s?b, s?s, s?s, s?s, s?o}",
			   "algorithms", &alg_list, "hs256_secret_file", &secret, "public_key_file",
			   &pem, "jwks_file", &jwks, "issuer", &issuer, "audience", &audience,
			   "leeway_s", &leeway, "require_exp", &require_exp, "tenant_claim",
			   &tenant_claim, "role_claim", &role_claim, "subject_claim",
			   &subject_claim, "role_map", &role_map) != 0) {
		ret = sbx_err_set(err, SBX_E_INVALID, "auth '%s' (jwt): bad config: %s", j->name,
				  jerr.text);
		goto out;
	}
	if (!secret && !pem && !jwks) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "auth '%s' (jwt): no key source; set hs256_secret_file, "
				  "public_key_file or jwks_file",
				  j->name);
		goto out;
	}
	if (leeway < 0 || leeway > LEEWAY_MAX) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "auth '%s' (jwt): leeway_s must be 0..%d seconds, got %lld",
				  j->name, LEEWAY_MAX, (long long)leeway);
		goto out;
	}
	j->leeway_s = (long long)leeway;
	j->require_exp = require_exp;
	if ((tenant_claim && strlen(tenant_claim) > CLAIM_NAME_MAX) ||
	    (role_claim && strlen(role_claim) > CLAIM_NAME_MAX) ||
	    (subject_claim && strlen(subject_claim) > CLAIM_NAME_MAX)) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "auth '%s' (jwt): claim names are at most %d bytes", j->name,
				  CLAIM_NAME_MAX);
		goto out;
	}
	ret = conf_algorithms(j, alg_list, secret != NULL, pem || jwks, err);
	if (ret < 0)
		goto out;
	ret = conf_role_map(j, role_map, err);
	if (ret < 0)
		goto out;
	j->issuer = issuer ? strdup(issuer) : NULL;
	j->audience = audience ? strdup(audience) : NULL;
	j->tenant_claim = dup_or(tenant_claim, "tenant");
	j->role_claim = dup_or(role_claim, "role");
	j->subject_claim = dup_or(subject_claim, "sub");
	j->ks.core = core;
	j->ks.who = j->name;
	j->ks.src[JWT_SRC_SECRET].path = conf_path(core, secret);
	j->ks.src[JWT_SRC_PEM].path = conf_path(core, pem);
	j->ks.src[JWT_SRC_JWKS].path = conf_path(core, jwks);
	if ((issuer && !j->issuer) || (audience && !j->audience) || !j->tenant_claim ||
	    !j->role_claim || !j->subject_claim || (secret && !j->ks.src[JWT_SRC_SECRET].path) ||
	    (pem && !j->ks.src[JWT_SRC_PEM].path) || (jwks && !j->ks.src[JWT_SRC_JWKS].path)) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	if (pthread_mutex_init(&j->ks.lock, NULL) != 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "cannot create a mutex");
		goto out;
	}
	j->lock_ready = 1;
	ret = keys_load(&j->ks, err);
	if (ret < 0) {
		/* Prefix the file error with the instance, keeping the message. */
		char msg[SBX_ERR_MSG_MAX];

		snprintf(msg, sizeof msg, "%s", err ? err->message : "");
		ret = sbx_err_set(err, -ret, "auth '%s' (jwt): %s", j->name, msg);
		goto out;
	}
	*inst = j;
	j = NULL;
out:
	json_decref(empty);
	destroy(j);
	return ret;
}

static const struct sbx_auth_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_AUTH, struct sbx_auth_plugin, "jwt", "1.0.0",
			     "bearer JWTs signed with HS256, RS256 or ES256"),
    .life =
	{
	    .create = create,
	    .destroy = destroy,
	},
    .authenticate = authenticate,
    .manage = NULL, /* the issuer owns the credentials */
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
