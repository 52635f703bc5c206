/*
 * /api/v1/sessions handlers: thin adapters between HTTP and sessions.c.
 */
#include "config.h"

#include <string.h>

#include "api.h"
#include "model.h"
#include "router.h"
#include "sessions.h"

#define DB(srv)  ((srv)->db->d.db)
#define DBI(srv) ((srv)->db->inst)

void api_session_create(struct req *r)
{
	json_t *body = api_body_object(r), *rec = NULL;
	sbx_err err;
	int rc;

	if (!body)
		return;
	sbx_err_clear(&err);
	rc = sessions_create(r->srv, r->principal, body, &rec, &err);
	json_decref(body);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.TemplateNotFound");
		return;
	}
	http_reply_json(r, 201, model_session_view(r->srv, rec));
	json_decref(rec);
}

void api_session_list(struct req *r)
{
	static const char *const statuses[] = {"creating", "running",    "completed", "failed",
					       "timeout",  "terminated", NULL};
	const char *status = http_query(r, "status"), *tid = http_query(r, "template_id");
	json_t *q, *page = NULL;
	int limit, offset, ok = 0;
	sbx_err err;

	if (api_paging(r, 50, 200, &limit, &offset) < 0)
		return;
	if (status) {
		for (int i = 0; statuses[i]; i++)
			ok |= strcmp(status, statuses[i]) == 0;
		if (!ok) {
			http_reply_error(r, 422, NULL, NULL,
					 "status must be one of creating, running, completed, "
					 "failed, timeout, terminated");
			return;
		}
	}
	if (tid && !model_valid_id(tid)) {
		http_reply_error(r, 422, NULL, NULL, "template_id is not a valid id");
		return;
	}
	q = json_pack("{s:i, s:i}", "limit", limit, "offset", offset);
	if (status)
		json_object_set_new(q, "status", json_string(status));
	if (tid)
		json_object_set_new(q, "template_id", json_string(tid));
	if (!router_is_admin(r))
		json_object_set_new(q, "tenant", json_string(router_tenant(r)));
	sbx_err_clear(&err);
	if (DB(r->srv)->session_list(DBI(r->srv), q, &page, &err) < 0) {
		json_decref(q);
		http_reply_sbx(r, -SBX_E_UNAVAILABLE, &err, NULL);
		return;
	}
	json_decref(q);
	http_reply_json(r, 200, api_page(page, limit, offset, model_session_view, r->srv));
	json_decref(page);
}

void api_session_get(struct req *r)
{
	json_t *rec = NULL;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = sessions_get(r->srv, router_tenant(r), router_is_admin(r), r->param[0], &rec, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.SessionNotFound");
		return;
	}
	http_reply_json(r, 200, model_session_view(r->srv, rec));
	json_decref(rec);
}

void api_session_terminate(struct req *r)
{
	json_t *rec = NULL, *out = NULL;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = sessions_get(r->srv, router_tenant(r), router_is_admin(r), r->param[0], &rec, &err);
	if (rc == 0)
		rc = sessions_finish(r->srv, r->param[0], "terminated", NULL, &out, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.SessionNotFound");
		goto out;
	}
	http_reply_json(r, 200, model_session_view(r->srv, out));
out:
	json_decref(rec);
	json_decref(out);
}

void api_session_delete(struct req *r)
{
	json_t *rec = NULL;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = sessions_get(r->srv, router_tenant(r), router_is_admin(r), r->param[0], &rec, &err);
	if (rc == 0)
		rc = sessions_delete(r->srv, r->param[0], &err);
	json_decref(rec);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.SessionNotFound");
		return;
	}
	http_reply_json(r, 204, NULL);
}
