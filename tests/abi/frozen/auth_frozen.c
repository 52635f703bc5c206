/*
 * A complete auth module built only against the frozen ABI 1.0 headers
 * (tests/abi/frozen-1.0): one static bearer token maps to one tenant and role. Every later
 * 1.x sbxd must load and call it unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include <sandbox/auth.h>
#include <sandbox/core.h>

struct frozen_auth {
	char *token;
	char *tenant;
	char *role;
};

static void destroy(void *inst)
{
	struct frozen_auth *a = inst;

	if (!a)
		return;
	if (a->token) {
		/* volatile: keep the compiler from dropping the wipe of a secret. */
		volatile char *t = a->token;
		while (*t)
			*t++ = '\0';
	}
	free(a->token);
	free(a->tenant);
	free(a->role);
	free(a);
}

static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	struct frozen_auth *a;
	json_error_t jerr;
	const char *token = NULL, *tenant = "default", *role = "admin";

	(void)core;
	(void)instance_name;
	if (!config || json_unpack_ex((json_t *)config, &jerr, JSON_STRICT, "{s:s, s?s, s?s}",
				      "token", &token, "tenant", &tenant, "role", &role) != 0)
		return sbx_err_set(err, SBX_E_INVALID, "config: %s",
				   config ? jerr.text : "'token' is required");
	if (strlen(token) < 16)
		return sbx_err_set(err, SBX_E_INVALID,
				   "config: token must be at least 16 characters");
	if (strcmp(role, "admin") != 0 && strcmp(role, "user") != 0 &&
	    strcmp(role, "read-only") != 0)
		return sbx_err_set(err, SBX_E_INVALID,
				   "config: role must be admin, user or read-only, got '%s'", role);
	a = calloc(1, sizeof *a);
	if (!a)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	a->token = strdup(token);
	a->tenant = strdup(tenant);
	a->role = strdup(role);
	if (!a->token || !a->tenant || !a->role) {
		destroy(a);
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	*inst = a;
	return SBX_OK;
}

/* Compares in time independent of where the strings differ. */
static int token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char d = (unsigned char)(la != lb);

	for (i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return d == 0;
}

static int authenticate(void *inst, const json_t *request, json_t **principal, sbx_err *err)
{
	struct frozen_auth *a = inst;
	const char *h = json_string_value(
	    json_object_get(json_object_get(request, "headers"), "authorization"));

	if (!h || strncmp(h, "Bearer ", 7) != 0)
		return SBX_DEFER;
	if (!token_equal(h + 7, a->token))
		return sbx_err_set(err, SBX_E_UNAUTHORIZED, "invalid bearer token");
	*principal = json_pack("{s:s, s:s, s:s}", "tenant", a->tenant, "role", a->role, "subject",
			       "frozen-token");
	if (!*principal)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	return SBX_OK;
}

static const struct sbx_auth_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_AUTH, struct sbx_auth_plugin, "frozen", "1.0.0",
			     "ABI fixture: auth built against the frozen 1.0 headers"),
    .life = {.create = create, .destroy = destroy},
    .authenticate = authenticate,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);
SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
