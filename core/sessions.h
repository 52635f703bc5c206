/*
 * Session lifecycle: create (template defaults, validation, placement, sandbox), look-up
 * with tenant isolation, terminate, delete, activity tracking and the timeout reaper.
 */
#ifndef SBXD_SESSIONS_H
#define SBXD_SESSIONS_H

#include "server.h"

int sessions_start(struct server *srv);
void sessions_stop(struct server *srv);

/* body: the client's request object (borrowed). On success *rec is the stored record
 * (status running). Errors: SBX_E_INVALID (a field; 422), SBX_E_BADREQUEST (unknown
 * template; 400), SBX_E_CONFLICT (duplicate id), runtime errors. */
int sessions_create(struct server *srv, const json_t *principal, const json_t *body, json_t **rec,
		    sbx_err *err);
/* Look up a session visible to tenant (admin: any). SBX_E_NOTFOUND otherwise. */
int sessions_get(struct server *srv, const char *tenant, int admin, const char *id, json_t **rec,
		 sbx_err *err);
/* Move a live session to final_status ("terminated", "timeout", "failed"), destroying its
 * sandbox. Idempotent for sessions already final (returns the record unchanged). */
int sessions_finish(struct server *srv, const char *id, const char *final_status,
		    const char *reason, json_t **out, sbx_err *err);
int sessions_delete(struct server *srv, const char *id, sbx_err *err);
/* last_activity_at = now. Best effort. */
void sessions_touch(struct server *srv, const char *id);
/* The sandbox of running session rec (borrowed) is dead (reason says why): the session
 * fails, or when its template says on_sandbox_failure = "recreate" (and it has been
 * recreated fewer than 3 times) it gets a fresh sandbox — the workspace starts empty, and
 * "recoveries" / "last_recovery" on the session say so. Executions that were running in
 * the dead sandbox end as crashed. */
void sessions_sandbox_lost(struct server *srv, const json_t *rec, const char *reason);
/* Checks a running session's sandbox with its runtime (no executor call); when it is no
 * longer running, calls sessions_sandbox_lost. Returns 1 if it was found dead. */
int sessions_check_sandbox(struct server *srv, const char *id);
/* The node inventory of every runtime instance (runtime.h nodes(), each with "runtime"
 * and the warm pools' "templates_warm"); a runtime whose nodes() fails is left out and,
 * when errors is non-NULL, {runtime, error} is appended to it. New reference. */
json_t *sessions_nodes(struct server *srv, json_t *errors);
/* The nodes this replica's runtime instances report, as an object whose keys are
 * "<runtime instance>\n<node id>" (a runtime without nodes() counts as one node "").
 * Replicas judge (probe, state sync) only sessions on these. New reference. */
json_t *sessions_node_keys(struct server *srv);
/* Is session rec on one of keys' nodes? */
int sessions_on_nodes(struct server *srv, const json_t *keys, const json_t *rec);
int sessions_is_live(const json_t *rec);
/* A session's resources {cpu, memory_mb, disk_mb, max_processes} from a create body's flat
 * or nested fields, else the template's defaults (body may be an empty object). */
int sessions_resources(const json_t *body, const json_t *tmpl, json_t **out, sbx_err *err);

/* Template look-up with tenant visibility; SBX_E_NOTFOUND. */
int templates_get(struct server *srv, const char *tenant, int admin, const char *id, json_t **t,
		  sbx_err *err);
/* Validate a template body (create: full; update: partial). 0 or SBX_E_INVALID. */
int templates_validate(const json_t *body, int partial, sbx_err *err);
/* Insert the configured (or built-in) templates into an empty store. */
int templates_seed(struct server *srv, sbx_err *err);

#endif
