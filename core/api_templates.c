/*
 * /api/v1/templates handlers. Creating and changing templates needs the admin role; the
 * templates it creates are global (tenant null) and usable by every tenant.
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
	json_decref(body);
	if (!json_object_get(rec, "default_env_vars"))
		json_object_set_new(rec, "default_env_vars", json_object());
	json_object_set_new(rec, "tenant",
			    router_is_admin(r) ? json_null() : json_string(router_tenant(r)));
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
