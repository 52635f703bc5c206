/*
 * State sync (recovery.h). Which process owns what is decided with leases_owner_alive():
 * a record stamped by this run is ours; one stamped by a previous run of this replica, or
 * by a replica whose lease lapsed, is recovered here; everything else belongs to a live
 * replica and is left alone. Orphans are judged per sandbox from its handle: sandboxes of
 * live sessions and warm-pool sandboxes of live replicas are kept.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "execs.h"
#include "leases.h"
#include "log.h"
#include "loops.h"
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

static void mark(json_t *live, const char *kind, const char *id)
{
	char k[160];
	if (!id)
		return;
	snprintf(k, sizeof k, "%s:%s", kind, id);
	json_object_set_new(live, k, json_true());
}

static int marked(const json_t *live, const char *kind, const char *id)
{
	char k[160];
	if (!id)
		return 0;
	snprintf(k, sizeof k, "%s:%s", kind, id);
	return json_object_get(live, k) != NULL;
}

/* Live sessions, every page: live maps "sandbox:<id>" → 1 for sessions whose sandbox runs
 * and "session:<id>" → 1 for sessions a live process is creating (its sandbox may exist
 * before the session record has a handle). */
static int sync_sessions(struct server *srv, int startup, json_t *live, json_t *cache, int *adopted)
{
	json_t *visible = startup ? sessions_node_keys(srv) : NULL;
	json_t *q, *page = NULL, *it;
	size_t i, total, offset = 0;
	sbx_err err;

	do {
		q = json_pack("{s:[s,s], s:i, s:I}", "statuses", "running", "creating", "limit",
			      1000, "offset", (json_int_t)offset);
		if (DB(srv)->session_list(DBI(srv), q, &page, &err) < 0) {
			LOG_E("recovery: cannot list sessions: %s", err.message);
			json_decref(q);
			json_decref(visible);
			return -1;
		}
		json_decref(q);
		total = (size_t)json_integer_value(json_object_get(page, "total"));
		json_array_foreach (json_object_get(page, "items"), i, it) {
			const char *id = json_string_value(json_object_get(it, "id"));
			const char *st = json_string_value(json_object_get(it, "status"));
			const json_t *h = json_object_get(it, "handle");
			const char *sid = json_string_value(json_object_get(h, "sandbox_id"));
			struct plugin *rt = server_runtime(
			    srv, json_string_value(json_object_get(it, "runtime_instance")));
			json_t *status = NULL;
			const char *state;

			if (strcmp(st, "creating") == 0) {
				if (leases_owner_alive(srv, it, cache)) {
					mark(live, "session", id);
					continue;
				}
				if (rt && json_is_object(h))
					rt->d.runtime->sandbox_destroy(rt->inst, h, &err);
				fail_session(srv, id, st,
					     "sbxd stopped while the sandbox was being created");
				continue;
			}
			if (!rt) {
				fail_session(srv, id, st,
					     "its runtime instance is no longer configured");
				continue;
			}
			/* the probe watches running sandboxes between restarts, and a session on
			 * another replica's node is that replica's to judge */
			if (!startup || !sessions_on_nodes(srv, visible, it)) {
				mark(live, "sandbox", sid);
				continue;
			}
			sbx_err_clear(&err);
			if (rt->d.runtime->sandbox_status(rt->inst, h, &status, &err) < 0) {
				/* cannot tell (engine down): keep it, the probe decides later */
				LOG_W("recovery: session=%s sandbox not checked: %s", id,
				      err.message);
				mark(live, "sandbox", sid);
				continue;
			}
			state = json_string_value(json_object_get(status, "state"));
			if (state && strcmp(state, "running") == 0) {
				mark(live, "sandbox", sid);
				(*adopted)++;
			} else {
				char reason[256];
				snprintf(reason, sizeof reason,
					 "its sandbox is gone after a restart (%s)",
					 json_string_value(json_object_get(status, "reason"))
					     ?: state ?: "unknown");
				rt->d.runtime->sandbox_destroy(rt->inst, h, &err);
				fail_session(srv, id, st, reason);
			}
			json_decref(status);
		}
		offset += json_array_size(json_object_get(page, "items"));
		json_decref(page);
		page = NULL;
	} while (offset < total);
	json_decref(visible);
	return 0;
}

/* Is a sandbox that no live session owns a warm-pool sandbox of a live process? */
static int pooled_by_live(struct server *srv, const json_t *h, json_t *cache)
{
	const char *owner = json_string_value(json_object_get(h, "pool_owner"));
	const char *at;
	char replica[128], boot[40];
	json_t *stamp;
	int alive;

	if (!owner || !(at = strchr(owner, '@')) || (size_t)(at - owner) >= sizeof boot)
		return 0;
	snprintf(boot, sizeof boot, "%.*s", (int)(at - owner), owner);
	snprintf(replica, sizeof replica, "%s", at + 1);
	if (strcmp(replica, srv->replica_id) == 0 && strcmp(boot, srv->instance_id) == 0)
		return 1; /* ours: the pool destroys what it no longer wants */
	stamp = json_pack("{s:s, s:s}", "replica", replica, "boot", boot);
	alive = leases_owner_alive(srv, stamp, cache);
	json_decref(stamp);
	return alive;
}

/* Every runtime's sandboxes, listed BEFORE the sessions are read: a session is stored
 * before its sandbox is built, so the owner of any sandbox listed here is already in the db
 * when the sessions are read — the other order would take a sandbox created between the
 * two reads for an orphan. *lists[r] is runtime r's array (NULL when it failed). */
static json_t **list_sandboxes(struct server *srv)
{
	json_t **lists = calloc(srv->n_runtimes + 1, sizeof *lists);
	sbx_err err;

	for (size_t r = 0; lists && r < srv->n_runtimes; r++) {
		struct plugin *rt = srv->runtimes[r];
		sbx_err_clear(&err);
		if (rt->d.runtime->sandbox_list(rt->inst, &lists[r], &err) < 0) {
			LOG_W("recovery: runtime '%s' cannot list its sandboxes: %s",
			      rt->spec->name, err.message);
			lists[r] = NULL;
		}
	}
	return lists;
}

static int destroy_orphans(struct server *srv, json_t **lists, const json_t *live, json_t *cache)
{
	int orphans = 0;
	sbx_err err;

	for (size_t r = 0; r < srv->n_runtimes; r++) {
		struct plugin *rt = srv->runtimes[r];
		json_t *h;
		size_t j;
		json_array_foreach (lists[r], j, h) {
			const char *sid = json_string_value(json_object_get(h, "sandbox_id"));
			if (marked(live, "sandbox", sid) ||
			    marked(live, "session",
				   json_string_value(json_object_get(h, "session_id"))) ||
			    pooled_by_live(srv, h, cache))
				continue;
			sbx_err_clear(&err);
			if (rt->d.runtime->sandbox_destroy(rt->inst, h, &err) < 0)
				LOG_W("recovery: cannot destroy orphan sandbox %s: %s",
				      sid ? sid : "?", err.message);
			else {
				LOG_I("recovery: orphan sandbox %s destroyed", sid ? sid : "?");
				orphans++;
			}
		}
	}
	return orphans;
}

static int sync_pass(struct server *srv, int startup)
{
	json_t *live = json_object(), *cache = json_object();
	json_t **lists = list_sandboxes(srv);
	int adopted = 0, orphans = 0;

	if (lists && sync_sessions(srv, startup, live, cache, &adopted) == 0)
		orphans = destroy_orphans(srv, lists, live, cache);
	for (size_t r = 0; lists && r < srv->n_runtimes; r++)
		json_decref(lists[r]);
	free(lists);
	json_decref(cache);
	if (startup || orphans)
		LOG_I("recovery: %d sandbox(es) re-adopted, %d orphan(s) destroyed", adopted,
		      orphans);
	json_decref(live);
	return execs_recover(srv);
}

void recovery_sync(struct server *srv)
{
	sync_pass(srv, 0);
}

/* Executions of a dead process still running in their sandbox: collect each result as soon
 * as it exists (they are bounded by their own timeout, at most an hour). */
static void settle(struct server *srv, int waiting)
{
	int64_t until = services_mono_ms() + 3700 * 1000LL;

	while (waiting > 0 && !srv->stopping && services_mono_ms() < until) {
		for (int i = 0; i < 5 && !srv->stopping; i++)
			usleep(100 * 1000);
		waiting = execs_recover(srv);
	}
}

static void sync_loop(struct server *srv, void *arg)
{
	int *startup_waiting = arg;

	if (*startup_waiting > 0) { /* left by the start-up pass: ours to finish */
		settle(srv, *startup_waiting);
		*startup_waiting = 0;
	}
	if (!srv->stopping && leases_held(srv, LEASE_STATE_SYNC))
		settle(srv, sync_pass(srv, 0));
}

int recovery_start(struct server *srv)
{
	/* At start-up the pass runs whatever the lease: it only takes over work whose owner
	 * is dead (this replica's previous run, or a replica whose lease lapsed). */
	srv->sync_waiting = sync_pass(srv, 1);
	srv->sync_loop = loop_start(srv, "state_sync", srv->cfg.sync_interval_ms,
				    srv->sync_waiting > 0 ? 0 : srv->cfg.sync_interval_ms,
				    sync_loop, &srv->sync_waiting);
	return srv->sync_loop ? 0 : -1;
}

void recovery_stop(struct server *srv)
{
	loop_stop(srv->sync_loop);
	srv->sync_loop = NULL;
}
