/*
 * Health, metrics and API description endpoints.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "execs.h"
#include "leases.h"
#include "metrics.h"
#include "router.h"
#include "services.h"
#include "sessions.h"
#include "warm.h"

void api_health(struct req *r)
{
	http_reply_json(r, 200,
			json_pack("{s:s, s:s, s:f}", "status",
				  r->srv->stopping ? "stopping" : "healthy", "version",
				  PACKAGE_VERSION, "uptime",
				  (double)(services_now_ms() - r->srv->started_ms) / 1000.0));
}

/* A plugin's own health check, or "ok" when it has none beyond being loaded. */
static json_t *check_plugin(struct plugin *p)
{
	const struct sbx_plugin *d = p->d.any;
	int (*health)(void *, json_t **, sbx_err *) = NULL;
	json_t *detail = NULL, *o;
	sbx_err err;
	int64_t t0 = services_mono_ms();
	int rc = 0;

	switch (d->hdr.kind) {
	case SBX_KIND_RUNTIME:
		if (SBX_HAS_MEMBER(p->d.runtime, struct sbx_runtime_plugin, health))
			health = p->d.runtime->health;
		break;
	case SBX_KIND_STORAGE:
		if (SBX_HAS_MEMBER(p->d.storage, struct sbx_storage_plugin, health))
			health = p->d.storage->health;
		break;
	case SBX_KIND_DB:
		if (SBX_HAS_MEMBER(p->d.db, struct sbx_db_plugin, health))
			health = p->d.db->health;
		break;
	default:
		break;
	}
	sbx_err_clear(&err);
	if (health)
		rc = health(p->inst, &detail, &err);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f}", "name", p->spec->name, "kind",
		      conf_kind_name((int)d->hdr.kind), "module", d->hdr.name, "version",
		      d->hdr.version, "status", rc < 0 ? "unhealthy" : "healthy", "checked",
		      health ? "health check" : "loaded", "latency_ms",
		      (double)(services_mono_ms() - t0));
	if (rc < 0)
		json_object_set_new(o, "error", json_string(err.message));
	if (detail)
		json_object_set_new(o, "detail", detail);
	return o;
}

void api_health_detailed(struct req *r)
{
	struct server *srv = r->srv;
	json_t *plugins = json_array();
	int healthy = 1;

	for (size_t i = 0; i < srv->n_plugins; i++) {
		json_t *c = check_plugin(&srv->plugins[i]);
		if (strcmp(json_string_value(json_object_get(c, "status")), "healthy") != 0)
			healthy = 0;
		json_array_append_new(plugins, c);
	}
	http_reply_json(r, healthy ? 200 : 503,
			json_pack("{s:s, s:s, s:f, s:s, s:o, s:{s:i, s:i}, s:o, s:o, s:o}",
				  "status", healthy ? "healthy" : "unhealthy", "version",
				  PACKAGE_VERSION, "uptime",
				  (double)(services_now_ms() - srv->started_ms) / 1000.0,
				  "instance", srv->instance_id, "plugins", plugins, "executions",
				  "running", execs_running(srv), "max_running",
				  srv->cfg.max_running, "replica", leases_detail(srv), "nodes",
				  sessions_nodes(srv, NULL), "warm_pools", warm_detail(srv)));
}

void api_nodes(struct req *r)
{
	json_t *errors = json_array(), *nodes = sessions_nodes(r->srv, errors);

	http_reply_json(r, 200,
			json_pack("{s:o, s:I, s:o, s:o}", "items", nodes, "total",
				  (json_int_t)json_array_size(nodes), "errors", errors,
				  "warm_pools", warm_detail(r->srv)));
}

void api_metrics(struct req *r)
{
	char *text;
	metrics_gauge_set(r->srv->metrics, "sbxd_executions_running", NULL, execs_running(r->srv));
	metrics_gauge_set(r->srv->metrics, "sbxd_uptime_seconds", NULL,
			  (double)(services_now_ms() - r->srv->started_ms) / 1000.0);
	text = metrics_render(r->srv->metrics);
	http_reply_bytes(r, 200, "text/plain; version=0.0.4", text, text ? strlen(text) : 0);
}

void api_openapi(struct req *r)
{
	http_reply_json(r, 200, router_openapi());
}

void api_docs(struct req *r)
{
	static const char page[] =
	    "<!doctype html><html><head><meta charset=utf-8><title>sbxd API</title></head><body>"
	    "<h1>sbxd REST API v1</h1><p>The machine-readable description is at "
	    "<a href=\"/openapi.json\">/openapi.json</a>. Errors share one shape: "
	    "<code>{error_code, description, error_detail, solution, detail}</code>.</p>"
	    "<pre id=p></pre><script>fetch('/openapi.json').then(r=>r.json()).then(j=>{"
	    "document.getElementById('p').textContent=Object.entries(j.paths).map(([p,m])=>"
	    "Object.keys(m).map(x=>x.toUpperCase().padEnd(7)+p).join('\\n')).join('\\n')})</script>"
	    "</body></html>";
	http_reply_bytes(r, 200, "text/html; charset=utf-8", strdup(page), sizeof page - 1);
}
