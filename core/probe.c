/*
 * Health probe (probe.h). The probe lease is per runtime node ("probe:<runtime>/<node>"):
 * a replica judges only sessions on nodes its own runtime instances report — replicas on
 * different hosts with the linux runtime each watch their own host, replicas sharing a
 * Docker engine or a Kubernetes cluster share one lease for it. An executor that does not
 * answer /health is given one more interval before its session is failed: a sandbox under
 * heavy load may miss one answer, and a session lost by mistake costs the client its
 * workspace.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "exec_client.h"
#include "leases.h"
#include "log.h"
#include "loops.h"
#include "metrics.h"
#include "probe.h"
#include "services.h"
#include "sessions.h"

#define DB(srv)  ((srv)->db->d.db)
#define DBI(srv) ((srv)->db->inst)

#define PROBE_TIMEOUT_MS 3000L
#define STRIKES          2

struct probe {
	json_t *strikes; /* session id → consecutive failed /health checks (probe thread) */
	json_t *held;    /* lease name → true: per-node probe leases held (probe thread) */
};

/* Takes the probe lease of every node this replica's runtimes report; returns the set of
 * node keys (sessions_node_keys) it may judge (new reference). */
static json_t *take_nodes(struct server *srv, struct probe *p)
{
	json_t *mine = json_object(), *keys = sessions_node_keys(srv), *now = json_object(), *v;
	const char *k;
	void *tmp;
	char name[300];

	json_object_foreach (keys, k, v) {
		const char *nl = strchr(k, '\n');
		snprintf(name, sizeof name, "probe:%.*s/%s", nl ? (int)(nl - k) : 0, k,
			 nl ? nl + 1 : k);
		if (leases_try(srv, name)) {
			json_object_set_new(mine, k, json_true());
			json_object_set_new(now, name, json_true());
		}
	}
	json_object_foreach_safe (p->held, tmp, k, v) /* nodes gone, or lost to another */
		if (!json_object_get(now, k))
			json_object_del(p->held, k);
	json_object_update(p->held, now);
	json_decref(now);
	json_decref(keys);
	leases_note(srv, LEASE_PROBE, json_object_size(mine) > 0);
	return mine;
}

static void check(struct server *srv, struct probe *p, const json_t *rec, json_t *seen)
{
	const char *id = json_string_value(json_object_get(rec, "id"));
	const json_t *h = json_object_get(rec, "handle");
	struct plugin *rt =
	    server_runtime(srv, json_string_value(json_object_get(rec, "runtime_instance")));
	json_t *status = NULL;
	char reason[SBX_ERR_MSG_MAX + 64];
	sbx_err err;
	int n;

	if (!id || !rt || !json_is_object(h))
		return; /* state sync deals with those */
	sbx_err_clear(&err);
	if (rt->d.runtime->sandbox_status(rt->inst, h, &status, &err) < 0) {
		LOG_D("probe: session=%s status unknown: %s", id, err.message);
		return; /* engine unreachable: no verdict on the sandbox */
	}
	if (strcmp(json_string_value(json_object_get(status, "state")) ?: "", "running") != 0) {
		snprintf(reason, sizeof reason, "the health probe found the sandbox stopped: %s",
			 json_string_value(json_object_get(status, "reason"))
			     ?: json_string_value(json_object_get(status, "state")) ?: "unknown");
		json_decref(status);
		metrics_counter_add(srv->metrics, "sbxd_probe_failures_total", NULL, 1);
		sessions_sandbox_lost(srv, rec, reason);
		return;
	}
	json_decref(status);
	if (exec_client_health(json_object_get(h, "executor"), PROBE_TIMEOUT_MS, &err) == 0) {
		json_object_del(p->strikes, id);
		return;
	}
	n = (int)json_integer_value(json_object_get(p->strikes, id)) + 1;
	json_object_set_new(seen, id, json_true());
	if (n < STRIKES) {
		json_object_set_new(p->strikes, id, json_integer(n));
		LOG_W("probe: session=%s executor did not answer /health (%s); checking again", id,
		      err.message);
		return;
	}
	json_object_del(p->strikes, id);
	snprintf(reason, sizeof reason, "the sandbox's executor stopped answering: %s",
		 err.message);
	metrics_counter_add(srv->metrics, "sbxd_probe_failures_total", NULL, 1);
	sessions_sandbox_lost(srv, rec, reason);
}

static void probe_pass(struct server *srv, void *arg)
{
	struct probe *p = arg;
	json_t *q, *page = NULL, *it, *seen = json_object(), *mine;
	size_t i, total, offset = 0;
	const char *k;
	json_t *v;
	void *tmp;
	sbx_err err;

	if (srv->stopping) {
		json_decref(seen);
		return;
	}
	mine = take_nodes(srv, p);
	if (json_object_size(mine) == 0) {
		json_object_clear(p->strikes);
		json_decref(seen);
		json_decref(mine);
		return;
	}
	do {
		q = json_pack("{s:s, s:i, s:I}", "status", "running", "limit", 1000, "offset",
			      (json_int_t)offset);
		if (DB(srv)->session_list(DBI(srv), q, &page, &err) < 0) {
			json_decref(q);
			break;
		}
		json_decref(q);
		total = (size_t)json_integer_value(json_object_get(page, "total"));
		json_array_foreach (json_object_get(page, "items"), i, it)
			if (!srv->stopping && sessions_on_nodes(srv, mine, it))
				check(srv, p, it, seen);
		offset += json_array_size(json_object_get(page, "items"));
		json_decref(page);
		page = NULL;
	} while (offset < total && !srv->stopping);
	/* strikes of sessions that answered or ended are forgotten */
	json_object_foreach_safe (p->strikes, tmp, k, v)
		if (!json_object_get(seen, k))
			json_object_del(p->strikes, k);
	json_decref(seen);
	json_decref(mine);
}

int probe_start(struct server *srv)
{
	struct probe *p = calloc(1, sizeof *p);

	if (!p || !(p->strikes = json_object()) || !(p->held = json_object())) {
		if (p)
			json_decref(p->strikes);
		free(p);
		return -1;
	}
	srv->probe = p;
	leases_note(srv, LEASE_PROBE, 0); /* the series exists from the start */
	srv->probe_loop = loop_start(srv, "probe", srv->cfg.probe_interval_ms, 0, probe_pass, p);
	return srv->probe_loop ? 0 : -1;
}

void probe_stop(struct server *srv)
{
	loop_stop(srv->probe_loop);
	srv->probe_loop = NULL;
	if (srv->probe) {
		const char *k;
		json_t *v;
		json_object_foreach (srv->probe->held, k, v)
			leases_drop(srv, k);
		json_decref(srv->probe->held);
		json_decref(srv->probe->strikes);
		free(srv->probe);
		srv->probe = NULL;
	}
}
