/*
 * Start-up state sync. Runs on the main thread before the API opens, so nothing races it.
 */
#include "config.h"

#include <string.h>

#include "execs.h"
#include "log.h"
#include "recovery.h"
#include "services.h"
#include "sessions.h"

#define DB(srv)  ((srv)->db->d.db)
#define DBI(srv) ((srv)->db->inst)

static void fail_session(struct server *srv, const char *id, const char *status, const char *reason)
{
	int64_t now = services_now_ms();
	json_t *c = json_pack("{s:s, s:s, s:I, s:I}", "status", "failed", "failure_reason", reason,
			      "updated_at", (json_int_t)now, "completed_at", (json_int_t)now);
	sbx_err err;
	if (DB(srv)->session_update(DBI(srv), id, c, status, NULL, &err) == 0)
		LOG_W("recovery: session=%s failed: %s", id, reason);
	json_decref(c);
}

void recovery_run(struct server *srv)
{
	json_t *q, *page = NULL, *it, *live_ids = json_object();
	size_t i;
	sbx_err err;
	int adopted = 0, orphans = 0;

	q = json_pack("{s:[s,s], s:i, s:i}", "statuses", "running", "creating", "limit", 1000,
		      "offset", 0);
	if (DB(srv)->session_list(DBI(srv), q, &page, &err) < 0) {
		LOG_E("recovery: cannot list sessions: %s", err.message);
		goto out;
	}
	json_array_foreach (json_object_get(page, "items"), i, it) {
		const char *id = json_string_value(json_object_get(it, "id"));
		const char *st = json_string_value(json_object_get(it, "status"));
		const json_t *h = json_object_get(it, "handle");
		struct plugin *rt =
		    server_runtime(srv, json_string_value(json_object_get(it, "runtime_instance")));
		json_t *status = NULL;
		const char *state;

		if (strcmp(st, "creating") == 0) {
			if (rt && json_is_object(h))
				rt->d.runtime->sandbox_destroy(rt->inst, h, &err);
			fail_session(srv, id, st,
				     "sbxd stopped while the sandbox was being created");
			continue;
		}
		if (!rt) {
			fail_session(srv, id, st, "its runtime instance is no longer configured");
			continue;
		}
		sbx_err_clear(&err);
		if (rt->d.runtime->sandbox_status(rt->inst, h, &status, &err) < 0) {
			fail_session(srv, id, st,
				     "its sandbox could not be checked after a restart");
			continue;
		}
		state = json_string_value(json_object_get(status, "state"));
		if (state && strcmp(state, "running") == 0) {
			json_object_set_new(
			    live_ids, json_string_value(json_object_get(h, "sandbox_id")) ?: id,
			    json_true());
			adopted++;
		} else {
			char reason[256];
			snprintf(reason, sizeof reason, "its sandbox is gone after a restart (%s)",
				 json_string_value(json_object_get(status, "reason")) ?: state ?: "unknown");
			rt->d.runtime->sandbox_destroy(rt->inst, h, &err);
			fail_session(srv, id, st, reason);
		}
		json_decref(status);
	}
	/* Orphans: sandboxes a runtime has that no live session owns. */
	for (size_t r = 0; r < srv->n_runtimes; r++) {
		struct plugin *rt = srv->runtimes[r];
		json_t *handles = NULL, *h;
		size_t j;
		if (rt->d.runtime->sandbox_list(rt->inst, &handles, &err) < 0) {
			LOG_W("recovery: runtime '%s' cannot list its sandboxes: %s",
			      rt->spec->name, err.message);
			continue;
		}
		json_array_foreach (handles, j, h) {
			const char *sid = json_string_value(json_object_get(h, "sandbox_id"));
			if (sid && json_object_get(live_ids, sid))
				continue;
			sbx_err_clear(&err);
			if (rt->d.runtime->sandbox_destroy(rt->inst, h, &err) < 0)
				LOG_W("recovery: cannot destroy orphan sandbox %s: %s",
				      sid ? sid : "?", err.message);
			else
				orphans++;
		}
		json_decref(handles);
	}
	LOG_I("recovery: %d sandbox(es) re-adopted, %d orphan(s) destroyed", adopted, orphans);
out:
	json_decref(q);
	json_decref(page);
	json_decref(live_ids);
	execs_recover(srv);
}
