/*
 * auth/apikey: API keys "sbx_<id>_<secret>" kept only as SHA-256 hashes in a JSON file
 * (store.c) that the daemon and the `sbxd keys` CLI share. Owns the plugin descriptor,
 * its config, authenticate (O(1) lookup by id, constant-time hash comparison) and manage.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "plugins/auth/apikey/apikey.h"

#define CHECK_INTERVAL_MS 250   /* authenticate stats the keys file at most this often */
#define LOCK_TIMEOUT_MS   10000 /* manage waits this long for another writer */
#define MAX_KEYS_DEFAULT  10000
#define MAX_KEYS_LIMIT    1000000
#define EXPIRES_MAX       253402300800000LL /* year 10000 */
#define ELLIPSIS          "\xe2\x80\xa6"

/* ---- token helpers ---------------------------------------------------------------- */

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int b64url_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* 32 bytes -> 43 base64url characters without padding. out holds SECRET_LEN + 1. */
static int secret_encode(const unsigned char *in, char *out)
{
	char b64[4 * ((SECRET_BYTES + 2) / 3) + 1];
	int n = EVP_EncodeBlock((unsigned char *)b64, in, SECRET_BYTES);

	if (n < SECRET_LEN)
		return -1;
	for (int i = 0; i < SECRET_LEN; i++)
		out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	out[SECRET_LEN] = '\0';
	OPENSSL_cleanse(b64, sizeof b64);
	return 0;
}

/* "sha256:<hex>" of the whole token; out holds HASH_LEN + 1. */
static int token_hash(const char *token, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -1;
	memcpy(out, HASH_PREFIX, 7);
	hex_encode(md, mdlen, out + 7);
	OPENSSL_cleanse(md, sizeof md);
	return 0;
}

/* A token of the documented shape? Copies its id into id[ID_LEN + 1]. */
static int token_parse(const char *t, size_t len, char *id)
{
	if (len != TOKEN_LEN || strncmp(t, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0 ||
	    t[TOKEN_PREFIX_LEN + ID_LEN] != '_')
		return -1;
	memcpy(id, t + TOKEN_PREFIX_LEN, ID_LEN);
	id[ID_LEN] = '\0';
	if (store_check_id(id))
		return -1;
	for (size_t i = TOKEN_PREFIX_LEN + ID_LEN + 1; i < len; i++)
		if (!b64url_char((unsigned char)t[i]))
			return -1;
	return 0;
}

/* ---- the in-memory table ------------------------------------------------------------ */

static void swap_table(struct apikey *k, json_t *t, const struct file_id *id)
{
	json_t *old;

	pthread_rwlock_wrlock(&k->lock);
	old = k->table;
	k->table = t;
	k->seen = *id;
	k->loaded = 1;
	pthread_rwlock_unlock(&k->lock);
	json_decref(old);
}

/*
 * Re-reads the keys file when its identity differs from the version in memory (or
 * nothing is loaded yet). Caller holds update_lock. A file that fails to parse leaves
 * the table as it was and is remembered in `bad`, so that authenticate does not re-read
 * (and re-log) it until it changes again; manage reports it every time.
 */
static int refresh(struct apikey *k, int quiet_if_bad, sbx_err *err)
{
	struct file_id now, id;
	json_t *t = NULL;
	int same, ret;

	ret = store_stat(k, &now);
	if (ret < 0)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "cannot stat keys file '%s': %s",
				   k->path, strerror(-ret));
	pthread_rwlock_rdlock(&k->lock);
	same = k->loaded && store_same(&now, &k->seen);
	pthread_rwlock_unlock(&k->lock);
	if (same || (quiet_if_bad && k->loaded && store_same(&now, &k->bad)))
		return 0;
	ret = store_read(k, &t, &id, err);
	if (ret < 0) {
		if (!store_same(&now, &k->bad))
			k->core->log(k->name, SBX_LOG_WARN,
				     "event=apikey_file_invalid path=%s note=keeping the keys "
				     "loaded before: %s",
				     k->path, err ? err->message : "");
		k->bad = now;
		return ret;
	}
	swap_table(k, t, &id);
	k->bad.exists = -1;
	return 0;
}

static void warn_mode(struct apikey *k, const struct file_id *id, const char *note)
{
	if (id->exists && (id->mode & 077))
		k->core->log(k->name, SBX_LOG_WARN,
			     "event=apikey_file_mode path=%s mode=%04o note=wider than 0600%s",
			     k->path, (unsigned)(id->mode & 07777), note);
}

/* ---- authenticate -------------------------------------------------------------------- */

/* The sbx_ credential of the request, or NULL: "authorization: Bearer sbx_..." first,
 * then "x-api-key: sbx_...". *len excludes trailing blanks. */
static const char *credential(const json_t *request, size_t *len)
{
	const json_t *h = json_object_get(request, "headers");
	const char *a = json_string_value(json_object_get(h, "authorization"));
	const char *x = json_string_value(json_object_get(h, "x-api-key"));
	const char *t = NULL;

	if (a && strncasecmp(a, "bearer", 6) == 0 && (a[6] == ' ' || a[6] == '\t')) {
		a += 6;
		while (*a == ' ' || *a == '\t')
			a++;
		if (strncmp(a, TOKEN_PREFIX, TOKEN_PREFIX_LEN) == 0)
			t = a;
	}
	if (!t && x) {
		while (*x == ' ' || *x == '\t')
			x++;
		if (strncmp(x, TOKEN_PREFIX, TOKEN_PREFIX_LEN) == 0)
			t = x;
	}
	if (!t)
		return NULL;
	*len = strlen(t);
	while (*len > 0 && (t[*len - 1] == ' ' || t[*len - 1] == '\t'))
		(*len)--;
	return t;
}

/* At most one stat per CHECK_INTERVAL_MS, by whichever thread gets there first; a
 * thread finding manage or another reload busy uses the table as it is. */
static void maybe_refresh(struct apikey *k)
{
	int64_t now = k->core->monotonic_ms();
	sbx_err err = {0};
	int loaded;

	pthread_rwlock_rdlock(&k->lock);
	loaded = k->loaded;
	pthread_rwlock_unlock(&k->lock);
	if (loaded && now < __atomic_load_n(&k->next_check, __ATOMIC_RELAXED))
		return;
	if (loaded ? pthread_mutex_trylock(&k->update_lock) != 0
		   : pthread_mutex_lock(&k->update_lock) != 0)
		return;
	__atomic_store_n(&k->next_check, now + CHECK_INTERVAL_MS, __ATOMIC_RELAXED);
	refresh(k, 1, &err);
	pthread_mutex_unlock(&k->update_lock);
}

static int authenticate(void *inst, const json_t *request, json_t **principal, sbx_err *err)
{
	struct apikey *k = inst;
	char id[ID_LEN + 1], hash[HASH_LEN + 1];
	const char *token, *why = NULL, *reason = NULL, *stored;
	json_t *rec, *q, *p = NULL, *exp;
	size_t len = 0;
	int ret = 0, loaded;

	token = credential(request, &len);
	if (!token)
		return SBX_DEFER;
	if (token_parse(token, len, id) < 0)
		return sbx_err_set(err, SBX_E_UNAUTHORIZED,
				   "malformed API key: expected sbx_, a 16-character id, '_' and "
				   "a 43-character secret");
	if (token_hash(token, len, hash) < 0)
		return sbx_err_set(err, SBX_E_INTERNAL, "SHA-256 is not available");
	maybe_refresh(k);

	pthread_rwlock_rdlock(&k->lock);
	loaded = k->loaded;
	rec = loaded ? json_object_get(k->table, id) : NULL;
	stored = json_string_value(json_object_get(rec, "hash"));
	/* The file's hashes are checked to be HASH_LEN long when loaded. */
	if (!stored || CRYPTO_memcmp(stored, hash, HASH_LEN) != 0) {
		why = "is not valid";
		reason = rec ? "wrong_secret" : "unknown_id";
	} else if (json_is_true(json_object_get(rec, "revoked"))) {
		why = "is revoked";
		reason = "revoked";
	} else if ((exp = json_object_get(rec, "expires_at")) && json_is_integer(exp) &&
		   k->core->now_ms() >= json_integer_value(exp)) {
		why = "has expired";
		reason = "expired";
	}
	if (!why) {
		p = json_pack("{s:s, s:s, s:s+, s:s}", "tenant",
			      json_string_value(json_object_get(rec, "tenant")), "role",
			      json_string_value(json_object_get(rec, "role")), "subject",
			      "key:", id, "key_id", id);
		q = json_object_get(rec, "quotas");
		if (p && json_object_size(q) > 0)
			json_object_set_new(p, "quotas", json_deep_copy(q));
	}
	pthread_rwlock_unlock(&k->lock);
	OPENSSL_cleanse(hash, sizeof hash);

	if (!loaded)
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE,
				  "API keys cannot be checked: keys file '%s' is unreadable",
				  k->path);
	else if (why) {
		k->core->log(k->name, SBX_LOG_DEBUG, "event=apikey_refused key_id=%s reason=%s", id,
			     reason);
		ret =
		    sbx_err_set(err, SBX_E_UNAUTHORIZED, "API key sbx_%s_" ELLIPSIS " %s", id, why);
	} else if (!p)
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	else
		*principal = p;
	return ret;
}

/* ---- manage ------------------------------------------------------------------------- */

/* The fields anyone managing keys may see: never the hash. New reference. */
static json_t *public_of(const json_t *rec)
{
	static const char *const fields[] = {"id",      "tenant",     "role",
					     "name",    "created_at", "expires_at",
					     "revoked", "revoked_at", "quotas"};
	json_t *o = json_object();

	for (size_t i = 0; o && i < sizeof fields / sizeof fields[0]; i++) {
		json_t *v = json_object_get(rec, fields[i]);

		if (v)
			json_object_set_new(o, fields[i], json_deep_copy(v));
		else if (strcmp(fields[i], "quotas") != 0)
			json_object_set_new(o, fields[i], json_null());
	}
	return o;
}

/* Refuses members of op other than "op" and `allowed` (NULL-terminated). */
static int strict_fields(const json_t *op, const char *what, const char *const *allowed,
			 const char *expected, sbx_err *err)
{
	const char *key;
	json_t *v;

	json_object_foreach ((json_t *)op, key, v) {
		size_t i;

		if (strcmp(key, "op") == 0)
			continue;
		for (i = 0; allowed[i] && strcmp(allowed[i], key) != 0; i++)
			;
		if (!allowed[i])
			return sbx_err_set(err, SBX_E_INVALID,
					   "%s: unknown field '%s' (expected %s)", what, key,
					   expected);
	}
	return 0;
}

static long long active_keys(const json_t *table)
{
	const char *kid;
	json_t *r;
	long long n = 0;

	json_object_foreach ((json_t *)table, kid, r)
		if (!json_is_true(json_object_get(r, "revoked")))
			n++;
	return n;
}

/*
 * Adds a key to the table and the file. Caller holds update_lock and the file lock, and
 * has refreshed the table. With token_file, the token is written there (0600) before the
 * keys file, and removed again when the keys file cannot be written. *result (new
 * reference): the public fields plus "key".
 */
static int add_key(struct apikey *k, const char *tenant, const char *role, const char *name,
		   json_int_t expires_at, int has_expiry, const json_t *quotas,
		   const char *token_file, json_t **result, sbx_err *err)
{
	unsigned char rnd[SECRET_BYTES];
	char id[ID_LEN + 1], secret[SECRET_LEN + 1], token[TOKEN_LEN + 2], hash[HASH_LEN + 1];
	json_t *rec = NULL, *t = NULL, *res = NULL;
	struct file_id fid;
	int ret = 0, token_written = 0;

	if (active_keys(k->table) >= k->max_keys) {
		ret = sbx_err_set(err, SBX_E_LIMIT,
				  "the keys file already holds max_keys (%lld) keys that are not "
				  "revoked; revoke unused keys or raise max_keys",
				  k->max_keys);
		goto out;
	}
	/* Ids are random; a clash with an existing key (p ~ n/2^64) just draws again. */
	for (int tries = 0;; tries++) {
		if (tries == 8 || k->core->random_bytes(rnd, ID_LEN / 2) < 0) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "no random bytes for a key id");
			goto out;
		}
		hex_encode(rnd, ID_LEN / 2, id);
		if (!json_object_get(k->table, id))
			break;
	}
	if (k->core->random_bytes(rnd, SECRET_BYTES) < 0 || secret_encode(rnd, secret) < 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "no random bytes for a key secret");
		goto out;
	}
	snprintf(token, sizeof token, TOKEN_PREFIX "%s_%s", id, secret);
	if (token_hash(token, TOKEN_LEN, hash) < 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "SHA-256 is not available");
		goto out;
	}
	rec = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I, s:o, s:b, s:n}", "id", id, "hash", hash,
			"tenant", tenant, "role", role, "name", name, "created_at",
			(json_int_t)k->core->now_ms(), "expires_at",
			has_expiry ? json_integer(expires_at) : json_null(), "revoked", 0,
			"revoked_at");
	if (rec && quotas)
		json_object_set_new(rec, "quotas", json_deep_copy(quotas));
	t = json_copy(k->table);
	res = rec ? public_of(rec) : NULL;
	if (!rec || !t || !res || json_object_set(t, id, rec) < 0 ||
	    json_object_del(res, "revoked") < 0 || json_object_del(res, "revoked_at") < 0 ||
	    json_object_set_new(res, "key", json_string(token)) < 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	if (token_file) {
		token[TOKEN_LEN] = '\n';
		ret = store_write_file(k, token_file, token, TOKEN_LEN + 1, err);
		token[TOKEN_LEN] = '\0';
		if (ret < 0)
			goto out;
		token_written = 1;
	}
	ret = store_write(k, t, &fid, err);
	if (ret < 0)
		goto out;
	token_written = 0;
	swap_table(k, t, &fid);
	t = NULL;
	k->core->log(k->name, SBX_LOG_INFO, "event=apikey_created key_id=%s tenant=%s role=%s", id,
		     tenant, role);
	*result = res;
	res = NULL;
out:
	if (token_written)
		unlink(token_file);
	OPENSSL_cleanse(rnd, sizeof rnd);
	OPENSSL_cleanse(secret, sizeof secret);
	OPENSSL_cleanse(token, sizeof token);
	json_decref(rec);
	json_decref(t);
	json_decref(res);
	return ret;
}

static int op_create(struct apikey *k, const json_t *op, json_t **result, sbx_err *err)
{
	static const char *const allowed[] = {"tenant", "role",   "expires_at",
					      "name",   "quotas", NULL};
	json_t *tj = json_object_get(op, "tenant"), *rj = json_object_get(op, "role");
	json_t *ej = json_object_get(op, "expires_at"), *nj = json_object_get(op, "name");
	json_t *qj = json_object_get(op, "quotas");
	const char *why, *bad = NULL;
	int ret, fd = -1;

	ret = strict_fields(op, "create", allowed, "tenant, role, expires_at, name, quotas", err);
	if (ret < 0)
		return ret;
	if ((why = store_check_tenant(json_string_value(tj))))
		return sbx_err_set(err, SBX_E_INVALID, "create: 'tenant' %s", why);
	if ((why = store_check_role(json_string_value(rj))))
		return sbx_err_set(err, SBX_E_INVALID, "create: 'role' %s", why);
	if (ej && !json_is_null(ej) &&
	    (!json_is_integer(ej) || json_integer_value(ej) <= k->core->now_ms() ||
	     json_integer_value(ej) >= EXPIRES_MAX))
		return sbx_err_set(err, SBX_E_INVALID,
				   "create: 'expires_at' must be null or an integer time in ms "
				   "since the epoch that lies in the future");
	if (nj && !json_is_null(nj) && (why = store_check_name(json_string_value(nj))))
		return sbx_err_set(err, SBX_E_INVALID, "create: 'name' %s", why);
	if (qj && (why = store_check_quotas(qj, &bad))) {
		if (bad)
			return sbx_err_set(err, SBX_E_INVALID, "create: 'quotas.%s' %s", bad, why);
		return sbx_err_set(err, SBX_E_INVALID, "create: 'quotas' %s", why);
	}

	fd = store_lock(k, LOCK_TIMEOUT_MS, err);
	if (fd < 0)
		return fd;
	ret = refresh(k, 0, err);
	if (ret == 0) {
		warn_mode(k, &k->seen, "; rewriting it with 0600");
		ret =
		    add_key(k, json_string_value(tj), json_string_value(rj), json_string_value(nj),
			    json_integer_value(ej), json_is_integer(ej), qj, NULL, result, err);
	}
	store_unlock(fd);
	return ret;
}

static int op_list(struct apikey *k, const json_t *op, json_t **result, sbx_err *err)
{
	static const char *const allowed[] = {"tenant", NULL};
	const json_t *tj = json_object_get(op, "tenant");
	const char *tenant = NULL, *why, *kid;
	json_t *keys, *r;
	int ret;

	ret = strict_fields(op, "list", allowed, "tenant", err);
	if (ret < 0)
		return ret;
	if (tj && !json_is_null(tj)) {
		tenant = json_string_value(tj);
		if ((why = store_check_tenant(tenant)))
			return sbx_err_set(err, SBX_E_INVALID, "list: 'tenant' %s", why);
	}
	ret = refresh(k, 0, err);
	if (ret < 0)
		return ret;
	keys = json_array();
	pthread_rwlock_rdlock(&k->lock);
	json_object_foreach (k->table, kid, r) {
		if (!keys)
			break;
		if (tenant && strcmp(tenant, json_string_value(json_object_get(r, "tenant"))))
			continue;
		if (json_array_append_new(keys, public_of(r)) < 0) {
			json_decref(keys);
			keys = NULL;
		}
	}
	pthread_rwlock_unlock(&k->lock);
	*result = keys ? json_pack("{s:o}", "keys", keys) : NULL;
	return *result ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

/* The "id" of a get or revoke; never echoes a value that is not an id (it may be a
 * whole token pasted by mistake). */
static int op_id(const json_t *op, const char *what, const char **id, sbx_err *err)
{
	static const char *const allowed[] = {"id", NULL};
	int ret = strict_fields(op, what, allowed, "id", err);

	if (ret < 0)
		return ret;
	*id = json_string_value(json_object_get(op, "id"));
	if (store_check_id(*id))
		return sbx_err_set(err, SBX_E_INVALID,
				   "%s: 'id' must be a key id: 16 lowercase hexadecimal characters "
				   "(the part after sbx_ in a key)",
				   what);
	return 0;
}

static int op_get(struct apikey *k, const json_t *op, json_t **result, sbx_err *err)
{
	const char *id = NULL;
	json_t *r;
	int ret = op_id(op, "get", &id, err);

	if (ret == 0)
		ret = refresh(k, 0, err);
	if (ret < 0)
		return ret;
	pthread_rwlock_rdlock(&k->lock);
	r = json_object_get(k->table, id);
	*result = r ? public_of(r) : NULL;
	pthread_rwlock_unlock(&k->lock);
	if (!r)
		return sbx_err_set(err, SBX_E_NOTFOUND, "API key %s not found", id);
	return *result ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static int op_revoke(struct apikey *k, const json_t *op, json_t **result, sbx_err *err)
{
	const char *id = NULL;
	json_t *r, *copy = NULL, *t = NULL, *res = NULL;
	struct file_id fid;
	int ret, fd = -1;

	ret = op_id(op, "revoke", &id, err);
	if (ret < 0)
		return ret;
	fd = store_lock(k, LOCK_TIMEOUT_MS, err);
	if (fd < 0)
		return fd;
	ret = refresh(k, 0, err);
	if (ret < 0)
		goto out;
	r = json_object_get(k->table, id);
	if (!r) {
		ret = sbx_err_set(err, SBX_E_NOTFOUND, "API key %s not found", id);
		goto out;
	}
	if (!json_is_true(json_object_get(r, "revoked"))) {
		copy = json_deep_copy(r);
		t = json_copy(k->table);
		if (!copy || !t || json_object_set_new(copy, "revoked", json_true()) < 0 ||
		    json_object_set_new(copy, "revoked_at",
					json_integer((json_int_t)k->core->now_ms())) < 0 ||
		    json_object_set(t, id, copy) < 0) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
			goto out;
		}
		ret = store_write(k, t, &fid, err);
		if (ret < 0)
			goto out;
		swap_table(k, t, &fid);
		t = NULL;
		r = copy;
		k->core->log(k->name, SBX_LOG_INFO, "event=apikey_revoked key_id=%s", id);
	}
	res = json_pack("{s:s, s:b, s:O}", "id", id, "revoked", 1, "revoked_at",
			json_object_get(r, "revoked_at"));
	if (!res) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	*result = res;
out:
	store_unlock(fd);
	json_decref(copy);
	json_decref(t);
	return ret;
}

static int manage(void *inst, const json_t *op, json_t **result, sbx_err *err)
{
	struct apikey *k = inst;
	const char *name = json_string_value(json_object_get(op, "op"));
	json_t *res = NULL;
	int ret;

	if (!json_is_object(op) || !name)
		return sbx_err_set(err, SBX_E_INVALID,
				   "'op' must be one of create, list, revoke, get");
	pthread_mutex_lock(&k->update_lock);
	if (strcmp(name, "create") == 0)
		ret = op_create(k, op, &res, err);
	else if (strcmp(name, "list") == 0)
		ret = op_list(k, op, &res, err);
	else if (strcmp(name, "revoke") == 0)
		ret = op_revoke(k, op, &res, err);
	else if (strcmp(name, "get") == 0)
		ret = op_get(k, op, &res, err);
	else
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "'op' must be one of create, list, revoke, get");
	pthread_mutex_unlock(&k->update_lock);
	if (ret == 0)
		*result = res;
	else
		json_decref(res);
	return ret;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static int has_admin(const json_t *table, int64_t now)
{
	const char *kid;
	json_t *r, *exp;

	json_object_foreach ((json_t *)table, kid, r) {
		exp = json_object_get(r, "expires_at");
		if (strcmp(json_string_value(json_object_get(r, "role")), "admin") == 0 &&
		    !json_is_true(json_object_get(r, "revoked")) &&
		    !(json_is_integer(exp) && json_integer_value(exp) <= now))
			return 1;
	}
	return 0;
}

/* Loads the keys file and, with bootstrap_admin_key_file, makes sure a usable admin key
 * exists: otherwise one is created and its token written to that file only. */
static int start(void *inst, sbx_err *err)
{
	struct apikey *k = inst;
	json_t *res = NULL;
	int ret, fd = -1;

	pthread_mutex_lock(&k->update_lock);
	ret = refresh(k, 0, err);
	if (ret < 0)
		goto out;
	warn_mode(k, &k->seen, "; run: chmod 600 on it");
	if (!k->bootstrap || has_admin(k->table, k->core->now_ms()))
		goto out;
	fd = store_lock(k, LOCK_TIMEOUT_MS, err);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	/* Another process may have bootstrapped while we waited for the lock. */
	ret = refresh(k, 0, err);
	if (ret < 0 || has_admin(k->table, k->core->now_ms()))
		goto out;
	ret =
	    add_key(k, "default", "admin", "bootstrap admin", 0, 0, NULL, k->bootstrap, &res, err);
	if (ret == 0)
		k->core->log(k->name, SBX_LOG_WARN,
			     "event=apikey_bootstrap key_id=%s token_file=%s note=the keys file "
			     "had no admin key; the new admin key is in token_file (mode 0600)",
			     json_string_value(json_object_get(res, "id")), k->bootstrap);
out:
	store_unlock(fd);
	pthread_mutex_unlock(&k->update_lock);
	json_decref(res);
	return ret;
}

static void destroy(void *inst)
{
	struct apikey *k = inst;

	if (!k)
		return;
	pthread_rwlock_destroy(&k->lock);
	pthread_mutex_destroy(&k->update_lock);
	json_decref(k->table);
	free(k->name);
	free(k->path);
	free(k->lock_path);
	free(k->bootstrap);
	free(k);
}

/* *out: an absolute path, or `p` relative to the data directory (malloc'ed). */
static int resolve(const struct sbx_core_api *core, const char *what, const char *p, char **out,
		   sbx_err *err)
{
	const char *dd = core->data_dir ? core->data_dir() : NULL;

	*out = NULL;
	if (p[0] == '/')
		*out = strdup(p);
	else if (!dd || dd[0] != '/')
		return sbx_err_set(err, SBX_E_INVALID,
				   "config: '%s' is relative and the core has no data directory; "
				   "give an absolute path",
				   what);
	else if (asprintf(out, "%s/%s", dd, p) < 0)
		*out = NULL;
	return *out ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	struct apikey *k;
	const char *key, *keys_file = "apikeys.json", *boot = NULL;
	json_t *v;
	int ret = 0;

	k = calloc(1, sizeof *k);
	if (!k)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	k->core = core;
	k->max_keys = MAX_KEYS_DEFAULT;
	k->bad.exists = -1; /* matches no stat result */
	pthread_rwlock_init(&k->lock, NULL);
	pthread_mutex_init(&k->update_lock, NULL);
	k->name = strdup(instance_name ? instance_name : "apikey");
	if (config && !json_is_object(config)) {
		ret = sbx_err_set(err, SBX_E_INVALID, "config: must be a group");
		goto out;
	}
	/* Strict: every key is known and of its type, named in the message otherwise. */
	json_object_foreach ((json_t *)config, key, v) {
		if (strcmp(key, "keys_file") == 0 || strcmp(key, "bootstrap_admin_key_file") == 0) {
			if (!json_is_string(v) || !json_string_value(v)[0]) {
				ret = sbx_err_set(err, SBX_E_INVALID,
						  "config: '%s' must be a non-empty path", key);
				goto out;
			}
			if (key[0] == 'k')
				keys_file = json_string_value(v);
			else
				boot = json_string_value(v);
		} else if (strcmp(key, "max_keys") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > MAX_KEYS_LIMIT) {
				ret = sbx_err_set(err, SBX_E_INVALID,
						  "config: 'max_keys' must be an integer 1..%d",
						  MAX_KEYS_LIMIT);
				goto out;
			}
			k->max_keys = json_integer_value(v);
		} else {
			ret = sbx_err_set(err, SBX_E_INVALID,
					  "config: unknown key '%s' (expected keys_file, "
					  "bootstrap_admin_key_file, max_keys)",
					  key);
			goto out;
		}
	}
	ret = resolve(core, "keys_file", keys_file, &k->path, err);
	if (ret == 0 && boot)
		ret = resolve(core, "bootstrap_admin_key_file", boot, &k->bootstrap, err);
	if (ret < 0)
		goto out;
	if (asprintf(&k->lock_path, "%s.lock", k->path) < 0 || !k->name) {
		k->lock_path = NULL;
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	if (k->bootstrap &&
	    (strcmp(k->bootstrap, k->path) == 0 || strcmp(k->bootstrap, k->lock_path) == 0)) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "config: 'bootstrap_admin_key_file' must differ from 'keys_file' "
				  "and its .lock");
		goto out;
	}
	*inst = k;
	k = NULL;
out:
	destroy(k);
	return ret;
}

static const struct sbx_auth_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_AUTH, struct sbx_auth_plugin, "apikey", "1.0.0",
			     "hashed API keys with tenants, roles and quotas in a JSON file"),
    .life =
	{
	    .create = create,
	    .start = start,
	    .destroy = destroy,
	},
    .authenticate = authenticate,
    .manage = manage,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
