/*
 * Execution handlers: validate, store the pending record, hand it to the runner, and for
 * execute-sync wait on the execution itself.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "execs.h"
#include "leases.h"
#include "model.h"
#include "quotas.h"
#include "router.h"
#include "services.h"
#include "sessions.h"

#define DB(srv)   ((srv)->db->d.db)
#define DBI(srv)  ((srv)->db->inst)
#define MAX_CODE  (1 << 20)
#define MAX_EVENT (1 << 20)

static const char *norm_language(const char *l)
{
	if (!l)
		return NULL;
	if (!strcmp(l, "python") || !strcmp(l, "python3") || !strcmp(l, "py"))
		return "python";
	if (!strcmp(l, "javascript") || !strcmp(l, "js") || !strcmp(l, "node") ||
	    !strcmp(l, "nodejs"))
		return "javascript";
	if (!strcmp(l, "shell") || !strcmp(l, "bash") || !strcmp(l, "sh"))
		return "shell";
	return NULL;
}

/* Validate, insert and submit. Returns the stored record, or NULL after replying. */
static json_t *submit(struct req *r)
{
	struct server *srv = r->srv;
	json_t *body = NULL, *sess = NULL, *rec = NULL, *env = NULL, *v;
	const char *code, *lang, *status;
	json_int_t timeout = 30;
	struct quota_cfg quota;
	char id[72], msg[256];
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = sessions_get(srv, router_tenant(r), router_is_admin(r), r->param[0], &sess, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.SessionNotFound");
		return NULL;
	}
	if (!(body = api_body_object(r)))
		goto fail;
	v = json_object_get(body, "code");
	code = json_string_value(v);
	if (!code || json_string_length(v) == 0 || json_string_length(v) > MAX_CODE) {
		http_reply_error(r, 422, NULL, NULL, "code is required: a string of 1..%d bytes",
				 MAX_CODE);
		goto fail;
	}
	v = json_object_get(body, "language");
	lang = norm_language(json_string_value(v));
	if (!lang) {
		http_reply_error(r, 422, NULL, NULL,
				 "language is required: one of python, javascript, shell");
		goto fail;
	}
	v = json_object_get(body, "timeout");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 3600) {
			http_reply_error(r, 422, NULL, NULL,
					 "timeout must be an integer number of seconds in 1..3600");
			goto fail;
		}
		timeout = json_integer_value(v);
	}
	v = json_object_get(body, "event");
	if (v && !json_is_null(v) && !json_is_object(v)) {
		http_reply_error(r, 422, NULL, NULL, "event must be a JSON object");
		goto fail;
	}
	if (v && !json_is_null(v)) {
		char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		size_t n = dump ? strlen(dump) : 0;
		free(dump);
		if (n > MAX_EVENT) {
			http_reply_error(r, 422, NULL, NULL, "event is larger than %d bytes",
					 MAX_EVENT);
			goto fail;
		}
	}
	env = model_merge_env(json_object_get(sess, "env_vars"), json_object_get(body, "env_vars"),
			      "env_vars", msg, sizeof msg);
	if (!env) {
		http_reply_error(r, 422, NULL, NULL, "%s", msg);
		goto fail;
	}
	status = json_string_value(json_object_get(sess, "status"));
	if (!status || strcmp(status, "running") != 0) {
		http_reply_error(r, 409, "Sandbox.Conflict", "Create a new session.",
				 "session '%s' is %s; executions need a running session",
				 r->param[0], status ? status : "unknown");
		goto fail;
	}
	services_new_id("exec-", id, sizeof id);
	rec = json_pack("{s:s, s:O, s:O, s:s, s:O, s:s, s:I, s:O, s:I, s:I, s:n, s:n}", "id", id,
			"session_id", json_object_get(sess, "id"), "tenant",
			json_object_get(sess, "tenant"), "status", "pending", "code",
			json_object_get(body, "code"), "language", lang, "timeout", timeout,
			"event", json_object_get(body, "event") ?: json_null(), "created_at",
			(json_int_t)services_now_ms(), "updated_at", (json_int_t)services_now_ms(),
			"started_at", "completed_at");
	leases_stamp(srv, rec);
	quotas_for(srv, r->principal, &quota);
	rc = execs_submit(srv, sess, rec, env, quota.max_running_executions, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.SessionNotFound");
		json_decref(rec);
		rec = NULL;
		goto fail;
	}
	json_decref(body);
	json_decref(sess);
	json_decref(env);
	return rec;
fail:
	json_decref(body);
	json_decref(sess);
	json_decref(env);
	return NULL;
}

void api_execute(struct req *r)
{
	json_t *rec = submit(r);
	if (!rec)
		return;
	http_reply_json(r, 201,
			json_pack("{s:O, s:O, s:s, s:o}", "execution_id",
				  json_object_get(rec, "id"), "session_id",
				  json_object_get(rec, "session_id"), "status", "pending",
				  "created_at", services_iso(json_object_get(rec, "created_at"))));
	json_decref(rec);
}

static int float_param(struct req *r, const char *name, double def, double lo, double hi,
		       double *out)
{
	const char *s = http_query(r, name);
	char *end;
	double v;

	if (!s) {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
		http_reply_error(r, 422, NULL, NULL, "%s must be a number in %g..%g (got '%.40s')",
				 name, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

void api_execute_sync(struct req *r)
{
	double poll, sync_timeout;
	json_t *rec, *cur = NULL;
	sbx_err err;

	if (float_param(r, "poll_interval", 0.5, 0.1, 10, &poll) < 0 ||
	    float_param(r, "sync_timeout", 300, 10, 3600, &sync_timeout) < 0)
		return;
	if (!(rec = submit(r)))
		return;
	if (execs_wait(r->srv, json_string_value(json_object_get(rec, "id")), r,
		       r->t0 + (int64_t)(sync_timeout * 1000)) == 0) {
		/* already finished */
		if (DB(r->srv)->execution_get(DBI(r->srv),
					      json_string_value(json_object_get(rec, "id")), &cur,
					      &err) == 0)
			http_reply_json(r, 200, model_execution_view(r->srv, cur));
		else
			http_reply_sbx(r, -SBX_E_INTERNAL, &err, NULL);
		json_decref(cur);
	}
	json_decref(rec);
}

static int get_visible_execution(struct req *r, const char *id, json_t **rec)
{
	sbx_err err;
	int rc;

	*rec = NULL;
	sbx_err_clear(&err);
	if (!model_valid_id(id)) {
		http_reply_error(r, 404, "Sandbox.ExecutionNotFound", NULL,
				 "execution '%.64s' not found", id);
		return -1;
	}
	rc = DB(r->srv)->execution_get(DBI(r->srv), id, rec, &err);
	if (rc == 0 && !router_is_admin(r) &&
	    strcmp(json_string_value(json_object_get(*rec, "tenant")) ?: "", router_tenant(r)) !=
		0) {
		json_decref(*rec);
		*rec = NULL;
		rc = -SBX_E_NOTFOUND;
	}
	if (rc < 0) {
		if (-rc == SBX_E_NOTFOUND)
			http_reply_error(r, 404, "Sandbox.ExecutionNotFound", NULL,
					 "execution '%s' not found", id);
		else
			http_reply_sbx(r, rc, &err, NULL);
		return -1;
	}
	return 0;
}

void api_execution_get(struct req *r)
{
	json_t *rec;
	if (get_visible_execution(r, r->param[0], &rec) < 0)
		return;
	http_reply_json(r, 200, model_execution_view(r->srv, rec));
	json_decref(rec);
}

void api_execution_list(struct req *r)
{
	json_t *sess = NULL, *q, *page = NULL;
	int limit, offset, rc;
	sbx_err err;

	sbx_err_clear(&err);
	rc = sessions_get(r->srv, router_tenant(r), router_is_admin(r), r->param[0], &sess, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.SessionNotFound");
		return;
	}
	json_decref(sess);
	if (api_paging(r, 50, 200, &limit, &offset) < 0)
		return;
	q = json_pack("{s:s, s:i, s:i}", "session_id", r->param[0], "limit", limit, "offset",
		      offset);
	rc = DB(r->srv)->execution_list(DBI(r->srv), q, &page, &err);
	json_decref(q);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, NULL);
		return;
	}
	http_reply_json(r, 200, api_page(page, limit, offset, model_execution_view, r->srv));
	json_decref(page);
}

/* Append one SSE event to a growing buffer (both freed/owned by the caller). */
static void sse_append(char **out, size_t *len, const char *type, json_t *data /* stolen */)
{
	size_t n;
	char *e = execs_sse_event(type, data, &n), *nb;

	json_decref(data);
	if (!e)
		return;
	nb = realloc(*out, *len + n);
	if (nb) {
		memcpy(nb + *len, e, n);
		*out = nb;
		*len += n;
	}
	free(e);
}

/* Live output as Server-Sent Events (start, stdout, stderr, result). A finished execution
 * is replayed from its record, so a late subscriber gets the same events, once. */
void api_execution_stream(struct req *r)
{
	static const char *const streams[] = {"stdout", "stderr"};
	struct MHD_Response *resp;
	const char *st;
	json_t *rec;
	char *out = NULL;
	size_t len = 0;

	if (get_visible_execution(r, r->param[0], &rec) < 0)
		return;
	if (execs_stream(r->srv, r->param[0], r)) {
		json_decref(rec);
		return;
	}
	/* not running (any more): replay from the stored record */
	for (size_t i = 0; i < 2; i++) {
		const char *text = json_string_value(json_object_get(rec, streams[i]));
		if (text && *text)
			sse_append(&out, &len, streams[i],
				   json_pack("{s:s, s:s}", "type", streams[i], "data", text));
	}
	st = json_string_value(json_object_get(rec, "status"));
	sse_append(&out, &len,
		   st && (!strcmp(st, "pending") || !strcmp(st, "running")) ? "status" : "result",
		   model_execution_view(r->srv, rec));
	json_decref(rec);
	resp = MHD_create_response_from_buffer(
	    len, out ? out : (void *)"", out ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	http_reply_response(r, 200, resp);
}
