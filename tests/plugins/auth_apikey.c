/*
 * Tests of the auth module `apikey` (auth.h) through the built module file: token shape
 * and hashed storage, Bearer and X-API-Key, refusals that never echo the token, DEFER,
 * list/get/revoke, two instances sharing one keys file (daemon and CLI), concurrent
 * creates, field validation, the bootstrap admin key, strict config and quotas. TAP.
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

#include <openssl/evp.h>

#include <sandbox/auth.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

static const struct sbx_auth_plugin *ap;
static const struct sbx_core_api *core;

/* ---- helpers ----------------------------------------------------------------------- */

static char *path_in_data(const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", fakecore_data_dir(), name) < 0)
		abort();
	return p;
}

/* An instance on keys file `file` (under the data dir) with extra config, started. */
static void *open_inst(const char *file, const char *extra_key, const char *extra_val)
{
	char *path = path_in_data(file);
	json_t *cfg = json_pack("{s:s}", "keys_file", path);
	void *inst = NULL;
	sbx_err err = {0};

	if (extra_key)
		json_object_set_new(cfg, extra_key, json_string(extra_val));
	if (ap->life.create(core, "apikey-test", cfg, &inst, &err) != 0 ||
	    ap->life.start(inst, &err) != 0) {
		diag("instance on %s: %s", path, err.message);
		if (inst)
			ap->life.destroy(inst);
		inst = NULL;
	}
	json_decref(cfg);
	free(path);
	return inst;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			cap = (cap + 4096) * 2;
			buf = realloc(buf, cap);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static int file_mode(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static json_t *request_with(const char *header, const char *value)
{
	json_t *h = json_object();

	if (header)
		json_object_set_new(h, header, json_string(value));
	return json_pack("{s:s, s:s, s:s, s:o}", "method", "GET", "path", "/api/v1/sessions",
			 "remote_addr", "127.0.0.1", "headers", h);
}

/* authenticate with one header; *principal set on 0, err filled otherwise. */
static int auth_with(void *inst, const char *header, const char *value, json_t **principal,
		     sbx_err *err)
{
	json_t *req = request_with(header, value);
	int rc;

	*principal = NULL;
	sbx_err_clear(err);
	rc = ap->authenticate(inst, req, principal, err);
	json_decref(req);
	return rc;
}

static int auth_bearer(void *inst, const char *token, json_t **principal, sbx_err *err)
{
	char value[256];

	snprintf(value, sizeof value, "Bearer %s", token);
	return auth_with(inst, "authorization", value, principal, err);
}

/* manage(op) where op is given as JSON text. */
static int manage_json(void *inst, const char *text, json_t **result, sbx_err *err)
{
	json_t *op = json_loads(text, 0, NULL);
	int rc;

	if (!op)
		abort();
	*result = NULL;
	sbx_err_clear(err);
	rc = ap->manage(inst, op, result, err);
	json_decref(op);
	return rc;
}

static int create_key(void *inst, const char *tenant, const char *role, char *token, size_t toklen,
		      json_t **result)
{
	json_t *op = json_pack("{s:s, s:s, s:s}", "op", "create", "tenant", tenant, "role", role);
	json_t *res = NULL;
	sbx_err err = {0};
	int rc = ap->manage(inst, op, &res, &err);

	json_decref(op);
	if (rc == 0)
		snprintf(token, toklen, "%s", json_string_value(json_object_get(res, "key")));
	else
		diag("create: %s", err.message);
	if (result)
		*result = res;
	else
		json_decref(res);
	return rc;
}

static int is_b64url(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* sbx_<16 lowercase hex>_<43 base64url> */
static int token_shape_ok(const char *t)
{
	if (strlen(t) != 64 || strncmp(t, "sbx_", 4) != 0 || t[20] != '_')
		return 0;
	for (int i = 4; i < 20; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return 0;
	for (int i = 21; i < 64; i++)
		if (!is_b64url((unsigned char)t[i]))
			return 0;
	return 1;
}

static void sha256_hex(const char *s, char *out)
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Authenticates through inst until it succeeds (want 0) or is refused (want <0), at most
 * 3 s: the module stats the file at most every 250 ms on this path. */
static int auth_eventually(void *inst, const char *token, int want, json_t **principal)
{
	sbx_err err;
	int rc = 0;

	for (int i = 0; i < 60; i++) {
		json_decref(*principal);
		rc = auth_bearer(inst, token, principal, &err);
		if ((want == 0 && rc == 0) || (want < 0 && rc == want))
			break;
		sleep_ms(50);
	}
	return rc;
}

/* Captures what the module logs (the fake core logs to stderr) into a file. */
struct capture {
	int saved;
	char *path;
};

static void capture_begin(struct capture *c, const char *name)
{
	int fd;

	c->path = path_in_data(name);
	fflush(stderr);
	c->saved = dup(2);
	fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
}

static char *capture_end(struct capture *c)
{
	char *text;

	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	text = slurp(c->path);
	free(c->path);
	return text ? text : strdup("");
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_create_and_storage(void)
{
	void *inst = open_inst("create.json", NULL, NULL);
	char token[128] = "", hash[65], sha[80], *path = path_in_data("create.json"), *text;
	json_t *res = NULL;

	ok(inst != NULL, "an instance starts on a keys file that does not exist yet");
	if (!inst)
		return;
	ok(create_key(inst, "acme", "user", token, sizeof token, &res) == 0,
	   "create answers with a new key");
	ok(token_shape_ok(token), "the key is sbx_<16 lowercase hex>_<43 base64url chars>");
	ok(strncmp(token + 4, json_string_value(json_object_get(res, "id")), 16) == 0 &&
	       strlen(json_string_value(json_object_get(res, "id"))) == 16,
	   "the token's id part is the key id");
	ok(json_is_string(json_object_get(res, "tenant")) &&
	       strcmp(json_string_value(json_object_get(res, "tenant")), "acme") == 0 &&
	       strcmp(json_string_value(json_object_get(res, "role")), "user") == 0 &&
	       json_is_integer(json_object_get(res, "created_at")) &&
	       json_is_null(json_object_get(res, "expires_at")) &&
	       json_object_get(res, "name") != NULL && !json_object_get(res, "hash"),
	   "create returns tenant, role, name, created_at, expires_at and no hash");
	text = slurp(path);
	ok(text != NULL, "the keys file exists after create");
	sha256_hex(token, hash);
	snprintf(sha, sizeof sha, "sha256:%s", hash);
	ok(text && !strstr(text, token + 21), "the keys file does not contain the secret");
	ok(text && !strstr(text, token), "the keys file does not contain the token");
	ok(text && strstr(text, sha), "the keys file holds sha256:<hex> of the whole token");
	ok(text && strstr(text, "\"version\": 1"), "the keys file is version 1");
	ok(file_mode(path) == 0600, "the keys file has mode 0600 (got %o)", file_mode(path));
	free(text);
	free(path);
	json_decref(res);
	ap->life.destroy(inst);
}

static void test_authenticate(void)
{
	void *inst = open_inst("auth.json", NULL, NULL);
	char token[128] = "", wrong[128], value[160];
	json_t *p = NULL;
	sbx_err err;
	int rc;

	if (!ok(inst && create_key(inst, "team-1", "read-only", token, sizeof token, NULL) == 0,
		"a key for the authenticate tests"))
		return;
	rc = auth_bearer(inst, token, &p, &err);
	ok(rc == 0, "Authorization: Bearer <key> authenticates (%d %s)", rc, err.message);
	ok(p && strcmp(json_string_value(json_object_get(p, "tenant")), "team-1") == 0 &&
	       strcmp(json_string_value(json_object_get(p, "role")), "read-only") == 0,
	   "the principal carries the key's tenant and role");
	snprintf(value, sizeof value, "key:%.16s", token + 4);
	ok(p && strcmp(json_string_value(json_object_get(p, "subject")), value) == 0 &&
	       strncmp(json_string_value(json_object_get(p, "key_id")), token + 4, 16) == 0 &&
	       strlen(json_string_value(json_object_get(p, "key_id"))) == 16,
	   "subject is key:<id> and key_id is the id");
	ok(p && !json_object_get(p, "quotas"), "a key without overrides has no quotas");
	json_decref(p);

	rc = auth_with(inst, "x-api-key", token, &p, &err);
	ok(rc == 0 && p && strcmp(json_string_value(json_object_get(p, "tenant")), "team-1") == 0,
	   "X-API-Key: <key> authenticates with the same principal");
	json_decref(p);
	snprintf(value, sizeof value, "bearer  %s ", token);
	ok(auth_with(inst, "authorization", value, &p, &err) == 0,
	   "the Bearer scheme is case-insensitive and blanks around the key are ignored");
	json_decref(p);

	/* A token that differs only in its last character: same id, hash differs. */
	snprintf(wrong, sizeof wrong, "%s", token);
	wrong[63] = wrong[63] == 'A' ? 'B' : 'A';
	rc = auth_bearer(inst, wrong, &p, &err);
	ok(rc == -SBX_E_UNAUTHORIZED && !p, "a key differing in the last character is refused");
	ok(!strstr(err.message, wrong + 21) && !strstr(err.message, token + 21),
	   "the refusal does not contain the secret (%s)", err.message);
	snprintf(value, sizeof value, "%.21s\xe2\x80\xa6", token);
	ok(strstr(err.message, value) != NULL, "the refusal shows sbx_<id>_\xe2\x80\xa6 (%s)",
	   err.message);
	snprintf(wrong, sizeof wrong, "%s", token);
	wrong[21] = wrong[21] == 'A' ? 'B' : 'A';
	ok(auth_bearer(inst, wrong, &p, &err) == -SBX_E_UNAUTHORIZED,
	   "a key differing in the first secret character is refused");

	/* Unknown: well-formed, random id. */
	rc = auth_bearer(inst, "sbx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			 &p, &err);
	ok(rc == -SBX_E_UNAUTHORIZED && !strstr(err.message, "AAAAAAAAAA"),
	   "an unknown key is UNAUTHORIZED without the secret in the message (%s)", err.message);

	/* Garbled shapes. */
	{
		static const char *const garbled[] = {
		    "sbx_",
		    "sbx_short",
		    "sbx_0123456789ABCDEF_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		    "sbx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!",
		    "sbx_0123456789abcdef-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		    "sbx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		    "sbx_garbled-token-text",
		};
		int all = 1;

		for (size_t i = 0; i < sizeof garbled / sizeof garbled[0]; i++) {
			rc = auth_bearer(inst, garbled[i], &p, &err);
			if (rc != -SBX_E_UNAUTHORIZED || p ||
			    (garbled[i][4] && strstr(err.message, garbled[i] + 4))) {
				diag("garbled '%s': rc %d message '%s'", garbled[i], rc,
				     err.message);
				all = 0;
			}
			rc = auth_with(inst, "x-api-key", garbled[i], &p, &err);
			if (rc != -SBX_E_UNAUTHORIZED || p)
				all = 0;
		}
		ok(all, "garbled sbx_ keys are UNAUTHORIZED and the message holds none of them");
	}

	/* Not ours: DEFER. */
	ok(auth_with(inst, NULL, NULL, &p, &err) == SBX_DEFER && !p,
	   "a request without credentials is deferred");
	ok(auth_with(inst, "authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", &p, &err) ==
	       SBX_DEFER,
	   "a non-sbx bearer token (a JWT) is deferred");
	ok(auth_with(inst, "authorization", "Basic dXNlcjpwYXNz", &p, &err) == SBX_DEFER,
	   "Basic credentials are deferred");
	ok(auth_with(inst, "x-api-key", "other-key", &p, &err) == SBX_DEFER,
	   "an X-API-Key without sbx_ is deferred");
	ok(auth_with(inst, "authorization", token, &p, &err) == SBX_DEFER,
	   "an Authorization header without the Bearer scheme is deferred");
	ap->life.destroy(inst);
}

static void test_expired(void)
{
	void *inst = open_inst("expire.json", NULL, NULL);
	char op[256], token[128] = "";
	json_t *res = NULL, *p = NULL;
	sbx_err err;
	int rc;

	if (!inst)
		return;
	snprintf(op, sizeof op,
		 "{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"expires_at\":%lld}",
		 (long long)core->now_ms() + 700);
	rc = manage_json(inst, op, &res, &err);
	ok(rc == 0 && json_is_integer(json_object_get(res, "expires_at")),
	   "create with expires_at in the future");
	if (rc == 0)
		snprintf(token, sizeof token, "%s", json_string_value(json_object_get(res, "key")));
	json_decref(res);
	rc = auth_bearer(inst, token, &p, &err);
	ok(rc == 0, "the key authenticates before it expires");
	json_decref(p);
	sleep_ms(800);
	rc = auth_bearer(inst, token, &p, &err);
	ok(rc == -SBX_E_UNAUTHORIZED && strstr(err.message, "expired") &&
	       !strstr(err.message, token + 21),
	   "after expires_at it is UNAUTHORIZED, 'expired', without the secret (%s)", err.message);
	ap->life.destroy(inst);
}

static void test_list_get_revoke(void)
{
	void *inst = open_inst("manage.json", NULL, NULL);
	char t1[128] = "", t2[128] = "", t3[128] = "", op[256], *dump;
	json_t *res = NULL, *p = NULL, *first = NULL;
	sbx_err err;
	int rc;

	if (!inst || create_key(inst, "alpha", "user", t1, sizeof t1, NULL) != 0 ||
	    create_key(inst, "alpha", "admin", t2, sizeof t2, NULL) != 0 ||
	    create_key(inst, "beta", "user", t3, sizeof t3, NULL) != 0) {
		ok(0, "three keys for the manage tests");
		return;
	}
	rc = manage_json(inst, "{\"op\":\"list\"}", &res, &err);
	ok(rc == 0 && json_array_size(json_object_get(res, "keys")) == 3,
	   "list shows all three keys");
	dump = json_dumps(res, 0);
	ok(dump && !strstr(dump, "sha256") && !strstr(dump, "\"hash\"") && !strstr(dump, t1 + 21) &&
	       !strstr(dump, t2 + 21) && !strstr(dump, t3 + 21) && !strstr(dump, "\"key\""),
	   "list shows no hash, no secret and no token");
	first = json_array_get(json_object_get(res, "keys"), 0);
	ok(first && json_object_get(first, "id") && json_object_get(first, "tenant") &&
	       json_object_get(first, "role") && json_object_get(first, "name") &&
	       json_object_get(first, "created_at") && json_object_get(first, "expires_at") &&
	       json_is_false(json_object_get(first, "revoked")) &&
	       json_is_null(json_object_get(first, "revoked_at")),
	   "list entries carry id, tenant, role, name, created_at, expires_at, revoked, "
	   "revoked_at");
	free(dump);
	json_decref(res);
	rc = manage_json(inst, "{\"op\":\"list\",\"tenant\":\"beta\"}", &res, &err);
	ok(rc == 0 && json_array_size(json_object_get(res, "keys")) == 1 &&
	       strncmp(json_string_value(
			   json_object_get(json_array_get(json_object_get(res, "keys"), 0), "id")),
		       t3 + 4, 16) == 0,
	   "list with a tenant shows only that tenant's keys");
	json_decref(res);

	snprintf(op, sizeof op, "{\"op\":\"get\",\"id\":\"%.16s\"}", t2 + 4);
	rc = manage_json(inst, op, &res, &err);
	dump = json_dumps(res, 0);
	ok(rc == 0 && strcmp(json_string_value(json_object_get(res, "role")), "admin") == 0 &&
	       dump && !strstr(dump, "sha256") && !strstr(dump, t2 + 21),
	   "get shows one key's public fields and no hash or secret");
	free(dump);
	json_decref(res);
	ok(manage_json(inst, "{\"op\":\"get\",\"id\":\"00000000000000ff\"}", &res, &err) ==
	       -SBX_E_NOTFOUND,
	   "get of an unknown id is NOTFOUND");
	snprintf(op, sizeof op, "{\"op\":\"get\",\"id\":\"%s\"}", t2);
	rc = manage_json(inst, op, &res, &err);
	ok(rc == -SBX_E_INVALID && !strstr(err.message, t2 + 21),
	   "get with a whole token as id is INVALID and does not echo it (%s)", err.message);

	snprintf(op, sizeof op, "{\"op\":\"revoke\",\"id\":\"%.16s\"}", t1 + 4);
	rc = manage_json(inst, op, &res, &err);
	ok(rc == 0 && json_is_true(json_object_get(res, "revoked")) &&
	       json_is_integer(json_object_get(res, "revoked_at")) &&
	       strncmp(json_string_value(json_object_get(res, "id")), t1 + 4, 16) == 0,
	   "revoke answers id, revoked true and revoked_at");
	first = json_incref(json_object_get(res, "revoked_at"));
	json_decref(res);
	sleep_ms(5);
	rc = manage_json(inst, op, &res, &err);
	ok(rc == 0 && json_is_true(json_object_get(res, "revoked")) &&
	       json_equal(first, json_object_get(res, "revoked_at")),
	   "revoking again is 0 and keeps the first revoked_at");
	json_decref(first);
	json_decref(res);
	ok(manage_json(inst, "{\"op\":\"revoke\",\"id\":\"00000000000000ff\"}", &res, &err) ==
	       -SBX_E_NOTFOUND,
	   "revoke of an unknown id is NOTFOUND");
	rc = auth_bearer(inst, t1, &p, &err);
	ok(rc == -SBX_E_UNAUTHORIZED && strstr(err.message, "revoked") &&
	       strstr(err.message, t1) == NULL && !strstr(err.message, t1 + 21),
	   "a revoked key is UNAUTHORIZED, 'revoked', message without the token (%s)", err.message);
	snprintf(op, sizeof op, "sbx_%.16s_", t1 + 4);
	ok(strstr(err.message, op) != NULL, "the revoked message names the key id");
	ok(auth_bearer(inst, t2, &p, &err) == 0, "the other keys still authenticate");
	json_decref(p);
	snprintf(op, sizeof op, "{\"op\":\"get\",\"id\":\"%.16s\"}", t1 + 4);
	rc = manage_json(inst, op, &res, &err);
	ok(rc == 0 && json_is_true(json_object_get(res, "revoked")),
	   "get shows the key as revoked");
	json_decref(res);
	ok(manage_json(inst, "{\"op\":\"rotate\"}", &res, &err) == -SBX_E_INVALID &&
	       strstr(err.message, "op"),
	   "an unknown op is INVALID naming 'op'");
	ap->life.destroy(inst);
}

static void test_validation(void)
{
	void *inst = open_inst("valid.json", NULL, NULL);
	static const struct {
		const char *op, *field;
	} cases[] = {
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"root\"}", "'role'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\"}", "'role'"},
	    {"{\"op\":\"create\",\"tenant\":\"a b\",\"role\":\"user\"}", "'tenant'"},
	    {"{\"op\":\"create\",\"tenant\":\"\",\"role\":\"user\"}", "'tenant'"},
	    {"{\"op\":\"create\",\"role\":\"user\"}", "'tenant'"},
	    {"{\"op\":\"create\",\"tenant\":"
	     "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\","
	     "\"role\":\"user\"}",
	     "'tenant'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"expires_at\":\"tomorrow\"}",
	     "'expires_at'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"expires_at\":1000}",
	     "'expires_at'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"expires_at\":1.5e15}",
	     "'expires_at'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"name\":7}", "'name'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"quotas\":[]}", "'quotas'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"quotas\":{\"max_gpus\":1}}",
	     "'quotas.max_gpus'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"quotas\":{\"burst\":-1}}",
	     "'quotas.burst'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"quotas\":{\"max_cpu\":\"2\"}"
	     "}",
	     "'quotas.max_cpu'"},
	    {"{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"colour\":\"red\"}",
	     "'colour'"},
	    {"{\"op\":\"list\",\"tenant\":\"no/slash\"}", "'tenant'"},
	    {"{\"op\":\"revoke\",\"id\":\"XYZ\"}", "'id'"},
	};
	char longname[300], op[512];
	json_t *res = NULL;
	sbx_err err;

	if (!inst)
		return;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = manage_json(inst, cases[i].op, &res, &err);

		ok(rc == -SBX_E_INVALID && !res && strstr(err.message, cases[i].field),
		   "%s is INVALID naming %s (%s)", cases[i].op, cases[i].field, err.message);
		json_decref(res);
	}
	memset(longname, 'n', 201);
	longname[201] = '\0';
	snprintf(op, sizeof op,
		 "{\"op\":\"create\",\"tenant\":\"t\",\"role\":\"user\",\"name\":\"%s\"}",
		 longname);
	ok(manage_json(inst, op, &res, &err) == -SBX_E_INVALID && strstr(err.message, "'name'"),
	   "a name of 201 bytes is INVALID naming 'name'");
	longname[200] = '\0';
	snprintf(op, sizeof op,
		 "{\"op\":\"create\",\"tenant\":\"A-z_0.9\",\"role\":\"read-only\",\"name\":\"%s\","
		 "\"expires_at\":null}",
		 longname);
	ok(manage_json(inst, op, &res, &err) == 0 &&
	       strlen(json_string_value(json_object_get(res, "name"))) == 200,
	   "a name of 200 bytes, tenant of [A-Za-z0-9_.-] and expires_at null are accepted");
	json_decref(res);
	ok(manage_json(inst, "{\"op\":\"list\"}", &res, &err) == 0 &&
	       json_array_size(json_object_get(res, "keys")) == 1,
	   "no refused create left a key behind");
	json_decref(res);
	ap->life.destroy(inst);
}

static void test_quotas(void)
{
	void *inst = open_inst("quotas.json", NULL, NULL);
	json_t *res = NULL, *p = NULL, *want;
	char token[128] = "", op[128];
	sbx_err err;
	int rc;

	if (!inst)
		return;
	rc = manage_json(inst,
			 "{\"op\":\"create\",\"tenant\":\"q\",\"role\":\"user\",\"name\":\"ci\","
			 "\"quotas\":{\"max_sessions\":3,\"max_cpu\":1.5,\"max_memory_mb\":512,"
			 "\"requests_per_second\":10,\"burst\":20,\"max_running_executions\":0}}",
			 &res, &err);
	want = json_loads("{\"max_sessions\":3,\"max_cpu\":1.5,\"max_memory_mb\":512,"
			  "\"requests_per_second\":10,\"burst\":20,\"max_running_executions\":0}",
			  0, NULL);
	ok(rc == 0 && json_equal(json_object_get(res, "quotas"), want),
	   "create stores quotas as given and returns them");
	if (rc == 0)
		snprintf(token, sizeof token, "%s", json_string_value(json_object_get(res, "key")));
	json_decref(res);
	rc = auth_bearer(inst, token, &p, &err);
	ok(rc == 0 && json_equal(json_object_get(p, "quotas"), want),
	   "the principal carries the key's quotas");
	json_decref(p);
	snprintf(op, sizeof op, "{\"op\":\"get\",\"id\":\"%.16s\"}", token + 4);
	ok(manage_json(inst, op, &res, &err) == 0 &&
	       json_equal(json_object_get(res, "quotas"), want),
	   "get shows the quotas");
	json_decref(res);
	json_decref(want);
	ap->life.destroy(inst);
}

static void test_two_instances(void)
{
	void *a = open_inst("shared.json", NULL, NULL), *b = open_inst("shared.json", NULL, NULL);
	char token[128] = "", op[128];
	json_t *p = NULL, *res = NULL;
	sbx_err err;
	int rc;

	if (!ok(a && b, "two instances (daemon and CLI) on one keys file"))
		goto out;
	rc = auth_bearer(a, "sbx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &p,
			 &err);
	ok(rc == -SBX_E_UNAUTHORIZED, "A has loaded the (empty) file");
	ok(create_key(b, "shared", "user", token, sizeof token, NULL) == 0,
	   "B (the CLI) creates a key");
	rc = auth_eventually(a, token, 0, &p);
	ok(rc == 0 && p && strcmp(json_string_value(json_object_get(p, "tenant")), "shared") == 0,
	   "A (the daemon) authenticates the key B created once the file changed");
	json_decref(p);
	p = NULL;
	snprintf(op, sizeof op, "{\"op\":\"revoke\",\"id\":\"%.16s\"}", token + 4);
	ok(manage_json(b, op, &res, &err) == 0, "B revokes it");
	json_decref(res);
	rc = auth_eventually(a, token, -SBX_E_UNAUTHORIZED, &p);
	ok(rc == -SBX_E_UNAUTHORIZED, "A refuses it after the revocation reached the file");
	snprintf(op, sizeof op, "{\"op\":\"get\",\"id\":\"%.16s\"}", token + 4);
	ok(manage_json(a, op, &res, &err) == 0 && json_is_true(json_object_get(res, "revoked")),
	   "manage on A reads B's change at once");
	json_decref(res);
out:
	if (a)
		ap->life.destroy(a);
	if (b)
		ap->life.destroy(b);
}

#define PER_THREAD 50

struct creator {
	void *inst;
	char tag[8];
	int failed;
	char tokens[PER_THREAD][80];
};

static void *creator_main(void *arg)
{
	struct creator *c = arg;

	for (int i = 0; i < PER_THREAD; i++)
		if (create_key(c->inst, c->tag, "user", c->tokens[i], sizeof c->tokens[i], NULL))
			c->failed++;
	return NULL;
}

static void test_concurrent_creates(void)
{
	void *a = open_inst("race.json", NULL, NULL), *b = open_inst("race.json", NULL, NULL);
	struct creator *c = calloc(2, sizeof *c);
	pthread_t th[2];
	json_t *res = NULL, *p = NULL;
	sbx_err err;
	size_t n;
	int authed = 0, rc;

	if (!a || !b || !c) {
		ok(0, "two instances for concurrent creates");
		goto out;
	}
	c[0].inst = a;
	c[1].inst = b;
	snprintf(c[0].tag, sizeof c[0].tag, "ta");
	snprintf(c[1].tag, sizeof c[1].tag, "tb");
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, creator_main, &c[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ok(c[0].failed == 0 && c[1].failed == 0, "2 threads x 50 creates through 2 instances "
						 "all succeed");
	rc = manage_json(a, "{\"op\":\"list\"}", &res, &err);
	n = json_array_size(json_object_get(res, "keys"));
	ok(rc == 0 && n == 2 * PER_THREAD, "the file holds 100 keys: no update was lost (%zu)", n);
	json_decref(res);
	ok(manage_json(b, "{\"op\":\"list\",\"tenant\":\"ta\"}", &res, &err) == 0 &&
	       json_array_size(json_object_get(res, "keys")) == PER_THREAD,
	   "50 of them belong to the first thread's tenant");
	json_decref(res);
	for (int t = 0; t < 2; t++)
		for (int i = 0; i < PER_THREAD; i++) {
			if (auth_eventually(a, c[t].tokens[i], 0, &p) == 0)
				authed++;
			json_decref(p);
			p = NULL;
		}
	ok(authed == 2 * PER_THREAD, "every one of the 100 keys authenticates through A (%d)",
	   authed);
out:
	free(c);
	if (a)
		ap->life.destroy(a);
	if (b)
		ap->life.destroy(b);
}

/* authenticate from several threads of one instance while keys are created. */
struct reader {
	void *inst;
	const char *token;
	int failures;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	json_t *p;
	sbx_err err;

	for (int i = 0; i < 2000; i++) {
		if (auth_bearer(r->inst, r->token, &p, &err) != 0)
			r->failures++;
		json_decref(p);
	}
	return NULL;
}

static void test_concurrent_authenticate(void)
{
	void *a = open_inst("readers.json", NULL, NULL), *b = open_inst("readers.json", NULL, NULL);
	char token[128] = "", other[128];
	struct reader r[4];
	pthread_t th[4];
	int fails = 0, created = 0;

	if (!a || !b || create_key(a, "r", "user", token, sizeof token, NULL) != 0) {
		ok(0, "an instance and a key for concurrent authentication");
		goto out;
	}
	for (int i = 0; i < 4; i++) {
		r[i] = (struct reader){.inst = a, .token = token};
		pthread_create(&th[i], NULL, reader_main, &r[i]);
	}
	for (int i = 0; i < 20; i++) {
		created += create_key(i % 2 ? a : b, "r", "user", other, sizeof other, NULL) == 0;
		sleep_ms(10);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		fails += r[i].failures;
	}
	ok(fails == 0 && created == 20,
	   "4 threads x 2000 authentications succeed while 20 keys are created (%d failed)", fails);
out:
	if (a)
		ap->life.destroy(a);
	if (b)
		ap->life.destroy(b);
}

static void test_bootstrap(void)
{
	char *boot = path_in_data("boot/admin.key"), *text, *log, *text2, *keys;
	struct capture cap;
	struct stat st1, st2;
	json_t *p = NULL, *res = NULL;
	void *inst, *again;
	sbx_err err;
	char token[128] = "";

	capture_begin(&cap, "boot.log");
	inst = open_inst("boot/keys.json", "bootstrap_admin_key_file", boot);
	log = capture_end(&cap);
	ok(inst != NULL, "an instance with bootstrap_admin_key_file starts");
	if (!inst)
		goto out;
	text = slurp(boot);
	ok(text && strlen(text) == 65 && text[64] == '\n',
	   "the bootstrap file holds one token line");
	if (text)
		snprintf(token, sizeof token, "%.64s", text);
	ok(token_shape_ok(token), "the bootstrap token has the documented shape");
	ok(file_mode(boot) == 0600, "the bootstrap file has mode 0600 (got %o)", file_mode(boot));
	ok(auth_bearer(inst, token, &p, &err) == 0 &&
	       strcmp(json_string_value(json_object_get(p, "role")), "admin") == 0,
	   "the bootstrap key authenticates as admin");
	json_decref(p);
	ok(token[0] && !strstr(log, token + 21) && strstr(log, boot) &&
	       strncmp(strstr(log, "key_id=") ? strstr(log, "key_id=") + 7 : "", token + 4, 16) ==
		   0,
	   "the log names the key id and the file, never the secret");
	stat(boot, &st1);
	sleep_ms(20);
	again = open_inst("boot/keys.json", "bootstrap_admin_key_file", boot);
	text2 = slurp(boot);
	stat(boot, &st2);
	ok(again && text && text2 && strcmp(text, text2) == 0 && st1.st_ino == st2.st_ino &&
	       st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec,
	   "a second start with an admin key present leaves the bootstrap file alone");
	ok(again && manage_json(again, "{\"op\":\"list\"}", &res, &err) == 0 &&
	       json_array_size(json_object_get(res, "keys")) == 1,
	   "exactly one admin key was created");
	json_decref(res);
	keys = path_in_data("boot/keys.json");
	free(text2);
	text2 = slurp(keys);
	ok(text2 && !strstr(text2, token + 21), "the keys file does not hold the bootstrap secret");
	free(keys);
	free(text2);
	free(text);
	if (again)
		ap->life.destroy(again);
	ap->life.destroy(inst);
out:
	free(log);
	free(boot);
}

static void test_mode_warning(void)
{
	void *inst = open_inst("mode.json", NULL, NULL);
	char *path = path_in_data("mode.json"), *log, token[128];
	struct capture cap;

	if (!inst || create_key(inst, "m", "user", token, sizeof token, NULL) != 0) {
		ok(0, "a keys file for the mode test");
		goto out;
	}
	chmod(path, 0644);
	capture_begin(&cap, "mode.log");
	create_key(inst, "m", "user", token, sizeof token, NULL);
	log = capture_end(&cap);
	ok(strstr(log, "mode=0644") && strstr(log, "wider than 0600"),
	   "create warns about a keys file with mode 0644");
	ok(file_mode(path) == 0600, "and the rewritten file has mode 0600");
	free(log);
out:
	if (inst)
		ap->life.destroy(inst);
	free(path);
}

static void test_hand_edits(void)
{
	void *inst = open_inst("edit.json", NULL, NULL);
	char *path = path_in_data("edit.json"), *saved = NULL, token[128] = "";
	json_t *p = NULL, *res = NULL;
	sbx_err err;
	FILE *f;

	if (!inst || create_key(inst, "e", "user", token, sizeof token, NULL) != 0) {
		ok(0, "a key for the hand-edit tests");
		goto out;
	}
	saved = slurp(path);
	/* A broken edit (new inode, like an editor's save): the loaded keys stay in force. */
	unlink(path);
	f = fopen(path, "w");
	fputs("{\"version\":1,\"keys\":[", f);
	fclose(f);
	sleep_ms(300);
	ok(auth_bearer(inst, token, &p, &err) == 0,
	   "a keys file broken by hand keeps the keys loaded before in force");
	json_decref(p);
	ok(manage_json(inst, "{\"op\":\"list\"}", &res, &err) == -SBX_E_INVALID &&
	       strstr(err.message, path),
	   "manage reports the broken file (%s)", err.message);
	/* Removing the file removes every key. */
	unlink(path);
	p = NULL;
	ok(auth_eventually(inst, token, -SBX_E_UNAUTHORIZED, &p) == -SBX_E_UNAUTHORIZED,
	   "after the keys file is deleted its keys are refused");
	/* Putting it back restores them. */
	f = fopen(path, "w");
	fputs(saved ? saved : "", f);
	fclose(f);
	ok(auth_eventually(inst, token, 0, &p) == 0, "restoring the file restores the key");
	json_decref(p);
out:
	free(saved);
	free(path);
	if (inst)
		ap->life.destroy(inst);
}

static void test_bad_file(void)
{
	char *path = path_in_data("bad.json");
	FILE *f = fopen(path, "w");
	json_t *cfg = json_pack("{s:s}", "keys_file", path), *res = NULL;
	void *inst = NULL;
	sbx_err err = {0};
	int rc;

	fputs("{\"version\":1,\"keys\":[{\"id\":\"0123456789abcdef\",\"hash\":\"md5:x\"}]}", f);
	fclose(f);
	rc = ap->life.create(core, "bad", cfg, &inst, &err);
	ok(rc == 0, "create does not read the keys file");
	rc = ap->life.start(inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, path) && strstr(err.message, "hash"),
	   "start refuses a keys file with a bad record, naming file and field (%s)", err.message);
	rc = manage_json(inst, "{\"op\":\"list\"}", &res, &err);
	ok(rc == -SBX_E_INVALID, "manage refuses to work on it too");
	if (inst)
		ap->life.destroy(inst);
	json_decref(cfg);
	free(path);
}

static void test_config(void)
{
	json_t *cfg;
	void *inst = NULL;
	sbx_err err = {0};
	char token[128], *def;
	int rc;

	cfg = json_pack("{s:s, s:i}", "keys_file", "x.json", "max_keyz", 3);
	rc = ap->life.create(core, "cfg", cfg, &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "max_keyz") && !inst,
	   "an unknown config key is INVALID naming it (%s)", err.message);
	json_decref(cfg);
	cfg = json_pack("{s:s}", "max_keys", "ten");
	rc = ap->life.create(core, "cfg", cfg, &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "max_keys"),
	   "a max_keys that is not an integer is INVALID naming it");
	json_decref(cfg);
	cfg = json_pack("{s:i}", "keys_file", 1);
	rc = ap->life.create(core, "cfg", cfg, &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "keys_file"),
	   "a keys_file that is not a string is INVALID naming it");
	json_decref(cfg);

	cfg = json_object();
	rc = ap->life.create(core, "cfg", cfg, &inst, &err);
	ok(rc == 0 && ap->life.start(inst, &err) == 0, "an empty config is accepted");
	if (rc == 0 && create_key(inst, "d", "user", token, sizeof token, NULL) == 0) {
		def = path_in_data("apikeys.json");
		ok(access(def, F_OK) == 0, "the default keys file is <data_dir>/apikeys.json");
		free(def);
	} else
		ok(0, "the default keys file is <data_dir>/apikeys.json");
	if (inst)
		ap->life.destroy(inst);
	inst = NULL;
	json_decref(cfg);

	cfg = json_pack("{s:s, s:i}", "keys_file", "limited.json", "max_keys", 2);
	rc = ap->life.create(core, "cfg", cfg, &inst, &err);
	if (rc == 0 && ap->life.start(inst, &err) == 0) {
		json_t *res = NULL;
		char op[128];

		create_key(inst, "l", "user", token, sizeof token, NULL);
		create_key(inst, "l", "user", token, sizeof token, NULL);
		rc = manage_json(inst, "{\"op\":\"create\",\"tenant\":\"l\",\"role\":\"user\"}",
				 &res, &err);
		ok(rc == -SBX_E_LIMIT && strstr(err.message, "max_keys"),
		   "a third key beyond max_keys = 2 is LIMIT naming max_keys");
		snprintf(op, sizeof op, "{\"op\":\"revoke\",\"id\":\"%.16s\"}", token + 4);
		json_decref(res);
		manage_json(inst, op, &res, &err);
		json_decref(res);
		rc = manage_json(inst, "{\"op\":\"create\",\"tenant\":\"l\",\"role\":\"user\"}",
				 &res, &err);
		ok(rc == 0, "after a revoke there is room again (revoked keys do not count)");
		json_decref(res);
	} else
		ok(0, "an instance with max_keys = 2 (%s)", err.message);
	if (inst)
		ap->life.destroy(inst);
	json_decref(cfg);
}

int main(int argc, char **argv)
{
	const char *modpath = argc > 1 ? argv[1] : getenv("SBX_AUTH_MODULE");
	char defmod[4096], errbuf[512];
	struct fakecore_module mod;

	core = fakecore_api();
	if (!modpath) {
		const char *tb = getenv("top_builddir");

		snprintf(defmod, sizeof defmod, "%s/plugins/auth/apikey/auth_apikey.la",
			 tb ? tb : ".");
		modpath = defmod;
	}
	if (fakecore_module_open(modpath, SBX_KIND_AUTH, sizeof(struct sbx_auth_plugin), &mod,
				 errbuf, sizeof errbuf) != 0) {
		printf("Bail out! %s\n", errbuf);
		return 1;
	}
	ap = (const struct sbx_auth_plugin *)mod.hdr;
	ok(ap->manage != NULL && ap->life.start != NULL, "the module offers manage and start");
	test_create_and_storage();
	test_authenticate();
	test_expired();
	test_list_get_revoke();
	test_validation();
	test_quotas();
	test_two_instances();
	test_concurrent_creates();
	test_concurrent_authenticate();
	test_bootstrap();
	test_mode_warning();
	test_hand_edits();
	test_bad_file();
	test_config();
	fakecore_module_close(&mod);
	fakecore_cleanup();
	return tap_done();
}
