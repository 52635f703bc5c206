/*
 * /api/v1/templates handlers. An admin's templates are global (tenant null, usable by every
 * tenant) unless it names a "tenant"; a user's are private to its tenant. Only admins
 * change global templates; users change their tenant's own.
 */
#include "config.h"

#include <string.h>

#include "api.h"
#include "model.h"
#include "router.h"
#include "services.h"
#include "sessions.h"

#define DB(srv)  ((srv)->db->d.db)
#define DBI(srv) ((srv)->db->inst)

static json_t *pick_fields(const json_t *body, int with_id)
{
	json_t *o = json_object();
	for (int i = with_id ? 0 : 1; model_template_fields[i]; i++) {
		json_t *v = json_object_get(body, model_template_fields[i]);
		if (v)
			json_object_set(o, model_template_fields[i], v);
	}
	return o;
}

void api_template_create(struct req *r)
{
	json_t *body = api_body_object(r), *rec;
	int64_t now = services_now_ms();
	sbx_err err;
	int rc;

	if (!body)
		return;
	sbx_err_clear(&err);
	if (templates_validate(body, 0, &err) < 0) {
		http_reply_sbx(r, -SBX_E_INVALID, &err, NULL);
		json_decref(body);
		return;
	}
	rec = pick_fields(body, 1);
	{
		const json_t *t = json_object_get(body, "tenant");
		json_t *owner = json_null();
		if (!router_is_admin(r))
			owner = json_string(router_tenant(r));
		else if (t && !json_is_null(t)) {
			if (!model_valid_id(json_string_value(t))) {
				json_decref(rec);
				json_decref(body);
				http_reply_error(r, 422, NULL, NULL,
						 "tenant must be a tenant id or null");
				return;
			}
			owner = json_incref((json_t *)t);
		}
		json_object_set_new(rec, "tenant", owner);
	}
	json_decref(body);
	if (!json_object_get(rec, "default_env_vars"))
		json_object_set_new(rec, "default_env_vars", json_object());
	json_object_set_new(rec, "created_at", json_integer(now));
	json_object_set_new(rec, "updated_at", json_integer(now));
	rc = DB(r->srv)->template_insert(DBI(r->srv), rec, &err);
	if (rc < 0) {
		if (-rc == SBX_E_CONFLICT)
			sbx_err_set(&err, SBX_E_CONFLICT, "a template with id '%s' already exists",
				    json_string_value(json_object_get(rec, "id")));
		http_reply_sbx(r, rc, &err, NULL);
	} else
		http_reply_json(r, 201, model_template_view(r->srv, rec));
	json_decref(rec);
}

void api_template_list(struct req *r)
{
	json_t *q = json_object(), *items = NULL, *out, *it;
	size_t i;
	sbx_err err;

	if (!router_is_admin(r))
		json_object_set_new(q, "tenant", json_string(router_tenant(r)));
	sbx_err_clear(&err);
	if (DB(r->srv)->template_list(DBI(r->srv), q, &items, &err) < 0) {
		json_decref(q);
		http_reply_sbx(r, -SBX_E_UNAVAILABLE, &err, NULL);
		return;
	}
	json_decref(q);
	out = json_array();
	json_array_foreach (items, i, it)
		json_array_append_new(out, model_template_view(r->srv, it));
	json_decref(items);
	http_reply_json(r, 200, out);
}

void api_template_get(struct req *r)
{
	json_t *t = NULL;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = templates_get(r->srv, router_tenant(r), router_is_admin(r), r->param[0], &t, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.TemplateNotFound");
		return;
	}
	http_reply_json(r, 200, model_template_view(r->srv, t));
	json_decref(t);
}

/* May the caller change template t? Replies 403 and returns 0 when not. */
static int may_change(struct req *r, const json_t *t)
{
	const char *owner = json_string_value(json_object_get(t, "tenant"));

	if (router_is_admin(r) || (owner && strcmp(owner, router_tenant(r)) == 0))
		return 1;
	http_reply_error(r, 403, "Sandbox.Forbidden", "Ask an admin to change global templates.",
			 "template '%s' is global; only admins may change it",
			 json_string_value(json_object_get(t, "id")));
	return 0;
}

void api_template_update(struct req *r)
{
	json_t *t = NULL, *body = NULL, *changes = NULL, *out = NULL;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = templates_get(r->srv, router_tenant(r), router_is_admin(r), r->param[0], &t, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.TemplateNotFound");
		return;
	}
	if (!may_change(r, t))
		goto out;
	if (!(body = api_body_object(r)))
		goto out;
	if (json_object_get(body, "id") &&
	    !json_equal(json_object_get(body, "id"), json_object_get(t, "id"))) {
		http_reply_error(r, 422, NULL, NULL, "id cannot be changed");
		goto out;
	}
	if (templates_validate(body, 1, &err) < 0) {
		http_reply_sbx(r, -SBX_E_INVALID, &err, NULL);
		goto out;
	}
	changes = pick_fields(body, 0);
	json_object_set_new(changes, "updated_at", json_integer(services_now_ms()));
	rc = DB(r->srv)->template_update(DBI(r->srv), r->param[0], changes, &out, &err);
	if (rc < 0)
		http_reply_sbx(r, rc, &err, "Sandbox.TemplateNotFound");
	else
		http_reply_json(r, 200, model_template_view(r->srv, out));
out:
	json_decref(t);
	json_decref(body);
	json_decref(changes);
	json_decref(out);
}

void api_template_delete(struct req *r)
{
	json_t *t = NULL, *q, *page = NULL;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = templates_get(r->srv, router_tenant(r), router_is_admin(r), r->param[0], &t, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.TemplateNotFound");
		return;
	}
	if (!may_change(r, t)) {
		json_decref(t);
		return;
	}
	json_decref(t);
	q = json_pack("{s:s, s:[s,s], s:i, s:i}", "template_id", r->param[0], "statuses",
		      "creating", "running", "limit", 1, "offset", 0);
	rc = DB(r->srv)->session_list(DBI(r->srv), q, &page, &err);
	json_decref(q);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, NULL);
		return;
	}
	if (json_integer_value(json_object_get(page, "total")) > 0) {
		http_reply_error(r, 409, "Sandbox.Conflict",
				 "Terminate the sessions that use it first.",
				 "template '%s' is used by %lld live session(s)", r->param[0],
				 (long long)json_integer_value(json_object_get(page, "total")));
		json_decref(page);
		return;
	}
	json_decref(page);
	rc = DB(r->srv)->template_delete(DBI(r->srv), r->param[0], &err);
	if (rc < 0)
		http_reply_sbx(r, rc, &err, "Sandbox.TemplateNotFound");
	else
		http_reply_json(r, 204, NULL);
}
