/*
 * /api/v1/keys (admin role): create, list, get and revoke API keys through the auth
 * plugin that owns them.
 */
#include "config.h"

#include <string.h>

#include "api.h"
#include "router.h"

/* The first auth instance that manages keys, or NULL after replying 501. */
static struct plugin *manager(struct req *r)
{
	for (size_t i = 0; i < r->srv->n_auths; i++)
		if (SBX_HAS_MEMBER(r->srv->auths[i]->d.auth, struct sbx_auth_plugin, manage))
			return r->srv->auths[i];
	http_reply_error(r, 501, "Sandbox.NotImplemented",
			 "Configure { kind = \"auth\"; module = \"apikey\"; } in plugins.",
			 "no configured auth plugin manages API keys");
	return NULL;
}

static void run_op(struct req *r, json_t *op /* stolen */, unsigned ok_status)
{
	struct plugin *m = manager(r);
	json_t *res = NULL;
	sbx_err err;
	int rc;

	if (!m) {
		json_decref(op);
		return;
	}
	sbx_err_clear(&err);
	rc = m->d.auth->manage(m->inst, op, &res, &err);
	json_decref(op);
	if (rc < 0)
		http_reply_sbx(r, rc, &err, "Sandbox.KeyNotFound");
	else
		http_reply_json(r, ok_status, res);
}

void api_keys_create(struct req *r)
{
	json_t *body = api_body_object(r);
	if (!body)
		return;
	json_object_set_new(body, "op", json_string("create"));
	run_op(r, body, 201);
}

void api_keys_list(struct req *r)
{
	json_t *op = json_pack("{s:s}", "op", "list");
	const char *t = http_query(r, "tenant");
	if (t)
		json_object_set_new(op, "tenant", json_string(t));
	run_op(r, op, 200);
}

void api_keys_get(struct req *r)
{
	run_op(r, json_pack("{s:s, s:s}", "op", "get", "id", r->param[0]), 200);
}

void api_keys_revoke(struct req *r)
{
	run_op(r, json_pack("{s:s, s:s}", "op", "revoke", "id", r->param[0]), 200);
}
