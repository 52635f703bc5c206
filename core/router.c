/*
 * Router: a static table of (method, pattern, handler, minimum role). Patterns are split
 * on '/', "{x}" captures one segment and "{x*}" the rest of the path. Both path styles of
 * the original service are listed explicitly so that the table is the API's index.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sandbox/auth.h>

#include "api.h"
#include "log.h"
#include "quotas.h"
#include "router.h"

enum role { R_NONE = 0, R_READ = 1, R_USER = 2, R_ADMIN = 3 };

struct route {
	const char *method;
	const char *pattern;
	void (*fn)(struct req *r);
	enum role role;
};

#define V1 "/api/v1"
static const struct route routes[] = {
    {"GET", V1 "/health", api_health, R_NONE},
    {"GET", "/health", api_health, R_NONE},
    {"GET", V1 "/health/detailed", api_health_detailed, R_READ},
    {"GET", V1 "/nodes", api_nodes, R_READ},
    {"GET", "/metrics", api_metrics, R_READ},
    {"GET", V1 "/metrics", api_metrics, R_READ},
    {"GET", "/openapi.json", api_openapi, R_NONE},
    {"GET", V1 "/openapi.json", api_openapi, R_NONE},
    {"GET", "/docs", api_docs, R_NONE},

    {"POST", V1 "/sessions", api_session_create, R_USER},
    {"GET", V1 "/sessions", api_session_list, R_READ},
    {"GET", V1 "/sessions/{id}", api_session_get, R_READ},
    {"POST", V1 "/sessions/{id}/terminate", api_session_terminate, R_USER},
    {"DELETE", V1 "/sessions/{id}", api_session_delete, R_USER},

    {"GET", V1 "/sessions/{id}/workspace-archive", api_session_archive, R_READ},
    {"POST", V1 "/sessions/{id}/execute", api_execute, R_USER},
    {"POST", V1 "/executions/sessions/{id}/execute", api_execute, R_USER},
    {"POST", V1 "/sessions/{id}/execute-sync", api_execute_sync, R_USER},
    {"POST", V1 "/executions/sessions/{id}/execute-sync", api_execute_sync, R_USER},
    {"GET", V1 "/sessions/{id}/executions", api_execution_list, R_READ},
    {"GET", V1 "/executions/sessions/{id}/executions", api_execution_list, R_READ},
    {"GET", V1 "/executions/{id}", api_execution_get, R_READ},
    {"GET", V1 "/executions/{id}/status", api_execution_get, R_READ},
    {"GET", V1 "/executions/{id}/result", api_execution_get, R_READ},
    {"GET", V1 "/executions/{id}/stream", api_execution_stream, R_READ},

    {"POST", V1 "/templates", api_template_create, R_USER},
    {"GET", V1 "/templates", api_template_list, R_READ},
    {"GET", V1 "/templates/{id}", api_template_get, R_READ},
    {"PUT", V1 "/templates/{id}", api_template_update, R_USER},
    {"DELETE", V1 "/templates/{id}", api_template_delete, R_USER},

    {"POST", V1 "/keys", api_keys_create, R_ADMIN},
    {"GET", V1 "/keys", api_keys_list, R_ADMIN},
    {"GET", V1 "/keys/{id}", api_keys_get, R_ADMIN},
    {"DELETE", V1 "/keys/{id}", api_keys_revoke, R_ADMIN},

    {"GET", V1 "/sessions/{id}/files", api_files_list, R_READ},
    {"POST", V1 "/sessions/{id}/files/upload", api_files_upload, R_USER},
    {"GET", V1 "/sessions/{id}/files/{path*}", api_files_download, R_READ},
    {"DELETE", V1 "/sessions/{id}/files/{path*}", api_files_delete, R_USER},
    {NULL, NULL, NULL, R_NONE},
};

/* Match path against pattern; on success fills r->param. Returns 1 on match. */
static int match(const char *pattern, const char *path, struct req *r)
{
	const char *p = pattern, *s = path;
	char *caps[3] = {NULL, NULL, NULL};
	int nc = 0;

	while (*p && *s) {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			int rest = pe && pe > p && pe[-1] == '*';
			const char *se = rest ? s + strlen(s) : strchr(s, '/');
			if (!se)
				se = s + strlen(s);
			if (se == s || nc >= 3)
				goto no;
			caps[nc++] = strndup(s, (size_t)(se - s));
			p = pe + 1;
			s = se;
			continue;
		}
		if (*p != *s)
			goto no;
		p++;
		s++;
	}
	if (*p || *s)
		goto no;
	for (int i = 0; i < 3; i++) {
		free(r->param[i]);
		r->param[i] = caps[i];
	}
	return 1;
no:
	for (int i = 0; i < nc; i++)
		free(caps[i]);
	return 0;
}

static enum role role_of(const json_t *principal)
{
	const char *role = json_string_value(json_object_get(principal, "role"));
	if (!role)
		return R_NONE;
	if (strcmp(role, "admin") == 0)
		return R_ADMIN;
	if (strcmp(role, "user") == 0)
		return R_USER;
	if (strcmp(role, "read-only") == 0)
		return R_READ;
	return R_NONE;
}

const char *router_tenant(struct req *r)
{
	const char *t = json_string_value(json_object_get(r->principal, "tenant"));
	return t ? t : "default";
}

int router_is_admin(struct req *r)
{
	return role_of(r->principal) == R_ADMIN;
}

/* Ask each auth instance in order; the first that does not defer decides. */
static int authenticate(struct req *r)
{
	struct server *srv = r->srv;
	json_t *areq;
	int rc = SBX_DEFER;
	sbx_err err;

	if (srv->n_auths == 0) {
		r->principal = json_pack("{s:s, s:s, s:s}", "tenant", "default", "role", "admin",
					 "subject", "anonymous");
		return 0;
	}
	areq = json_pack("{s:s, s:s, s:s, s:O}", "method", r->method, "path", r->path,
			 "remote_addr", r->remote, "headers", r->headers);
	for (size_t i = 0; i < srv->n_auths && rc == SBX_DEFER; i++) {
		struct plugin *p = srv->auths[i];
		json_t *principal = NULL;
		sbx_err_clear(&err);
		rc = p->d.auth->authenticate(p->inst, areq, &principal, &err);
		if (rc == 0)
			r->principal = principal;
	}
	json_decref(areq);
	if (rc == 0 && r->principal)
		return 0;
	if (rc == -SBX_E_FORBIDDEN) { /* a valid credential that grants no usable role */
		http_reply_error(r, 403, "Sandbox.Forbidden", NULL, "%s", err.message);
		return -1;
	}
	if (rc == -SBX_E_UNAVAILABLE) { /* the credential store is down: not the client's fault */
		http_reply_sbx(r, rc, &err, NULL);
		return -1;
	}
	http_reply_error(r, 401, NULL, NULL, "%s",
			 rc < 0 && err.message[0]
			     ? err.message
			     : "this request carries no credential the server accepts");
	if (r->resp)
		MHD_add_response_header(r->resp, "WWW-Authenticate", "Bearer realm=\"sbxd\"");
	return -1;
}

void router_dispatch(struct req *r)
{
	const struct route *rt;
	int path_matched = 0;

	for (rt = routes; rt->method; rt++) {
		if (!match(rt->pattern, r->path, r))
			continue;
		path_matched = 1;
		if (strcmp(rt->method, r->method) != 0)
			continue;
		r->route = rt->pattern;
		if (rt->role != R_NONE) {
			struct quota_cfg q;
			double wait;
			if (authenticate(r) < 0)
				return;
			quotas_for(r->srv, r->principal, &q);
			if (quotas_take_request(r->srv, router_tenant(r), &q, &wait) < 0) {
				char ra[32];
				http_reply_error(
				    r, 429, "Sandbox.TooManyRequests", NULL,
				    "tenant '%s' is over its request rate (%g/s, burst "
				    "%lld)",
				    router_tenant(r), q.requests_per_second, (long long)q.burst);
				snprintf(ra, sizeof ra, "%d", (int)ceil(wait));
				if (r->resp)
					MHD_add_response_header(r->resp, "Retry-After", ra);
				return;
			}
			if (role_of(r->principal) < rt->role) {
				http_reply_error(
				    r, 403, NULL, NULL, "the role '%s' may not %s %s",
				    json_string_value(json_object_get(r->principal, "role")),
				    r->method, rt->pattern);
				return;
			}
		}
		rt->fn(r);
		return;
	}
	if (path_matched && strcmp(r->method, "OPTIONS") == 0 && http_cors_allowed(r)) {
		/* CORS preflight: answered without credentials, as browsers send it */
		struct MHD_Response *resp =
		    MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(resp, "Access-Control-Allow-Methods",
					"GET, POST, PUT, DELETE, OPTIONS");
		MHD_add_response_header(resp, "Access-Control-Allow-Headers",
					"Authorization, Content-Type, X-API-Key, X-Request-ID");
		MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
		r->route = "preflight";
		http_reply_response(r, 204, resp);
		return;
	}
	if (path_matched)
		http_reply_error(r, 405, "Sandbox.MethodNotAllowed",
				 "See /openapi.json for the methods.", "%s is not allowed on %s",
				 r->method, r->path);
	else
		http_reply_error(r, 404, "Sandbox.NotFound",
				 "See /openapi.json for the API's paths.",
				 "no such endpoint: %s %s", r->method, r->path);
}

json_t *router_openapi(void)
{
	json_t *paths = json_object();
	for (const struct route *rt = routes; rt->method; rt++) {
		char m[16];
		size_t i;
		json_t *item = json_object_get(paths, rt->pattern);
		if (!item) {
			item = json_object();
			json_object_set_new(paths, rt->pattern, item);
		}
		for (i = 0; rt->method[i] && i < sizeof m - 1; i++)
			m[i] = (char)(rt->method[i] | 0x20);
		m[i] = '\0';
		json_object_set_new(
		    item, m,
		    json_pack("{s:s, s:{s:{s:s}}}", "operationId", rt->pattern, "responses",
			      "default", "description",
			      "JSON; errors as {error_code, description, solution}"));
	}
	return json_pack("{s:s, s:{s:s, s:s}, s:o}", "openapi", "3.0.3", "info", "title",
			 "sbxd Sandbox Control Plane", "version", PACKAGE_VERSION, "paths", paths);
}
