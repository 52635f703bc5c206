/*
 * Db modules keep the durable state of sessions, executions, templates and leases.
 * The interface is domain-level: records cross as JSON objects, never SQL.
 */
#ifndef SANDBOX_DB_H
#define SANDBOX_DB_H

#include <sandbox/core.h>
#include <sandbox/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * RECORDS. Timestamps are integers: milliseconds since the epoch (null when unset).
 * A module stores every member it is given and returns it unchanged (it may keep some
 * members in columns for indexing and the rest in a JSON document); members it does not
 * know are kept too. The members below are the ones a module must be able to filter on.
 *
 *   session:   {"id", "tenant", "template_id", "status", "runtime_instance",
 *               "created_at", "updated_at", "last_activity_at", "completed_at", ...}
 *   execution: {"id", "session_id", "tenant", "status", "created_at", "started_at",
 *               "completed_at", "stdout", "stderr", "return_value", ...}
 *              stdout/stderr may be up to the core's output caps (default 1 MiB each,
 *              configurable up to 64 MiB); they must be stored whole.
 *   template:  {"id", "tenant" (null for global), "name", "image_url", ...}
 *
 * "version" is maintained by the module: 1 on insert, +1 on every update; it is returned
 * in records and any value the caller passes in `changes` is ignored.
 *
 * THREADS. Every method may be called from any core worker or service thread,
 * concurrently, after thread_init on that thread. Calls may block, bounded by the module's
 * timeouts. Arguments are borrowed; `json_t **` outputs are new references that the caller
 * releases; nothing is returned in them on error.
 *
 * ERRORS. SBX_E_NOTFOUND (no such id), SBX_E_CONFLICT (duplicate id, expectation not
 * met, lease held by another), SBX_E_UNAVAILABLE (database unreachable; the core answers
 * 503 and retries later), SBX_E_INVALID (a record lacks a required member).
 *
 * CONDITIONAL UPDATES. *_update merges the top-level members of `changes` into the record
 * (a member set to null is stored as null). When expect_status is non-NULL the update
 * happens only if the stored status equals it, atomically (compare-and-set); otherwise
 * SBX_E_CONFLICT and nothing changes. Of several concurrent updates expecting the same
 * status, exactly one succeeds. On success *out (if out is non-NULL) is the new record.
 */
struct sbx_db_plugin {
	struct sbx_plugin_header hdr;
	struct sbx_plugin_lifecycle life;

	/* Sessions. */
	int (*session_insert)(void *inst, const json_t *session, sbx_err *err);
	int (*session_get)(void *inst, const char *id, json_t **session, sbx_err *err);
	/* query: {"status"?: s, "statuses"?: [s...], "template_id"?, "tenant"?,
	 *  "runtime_instance"?, "last_activity_before"?: ms, "limit"?: 1..1000 (default 100),
	 *  "offset"?: >=0 (default 0)}; other members are SBX_E_INVALID. A session whose
	 *  last_activity_at is null counts as last active at its created_at.
	 * *page: {"items": [...], "total": n}; order created_at descending, then id ascending;
	 * total counts every match, not just the page. */
	int (*session_list)(void *inst, const json_t *query, json_t **page, sbx_err *err);
	int (*session_update)(void *inst, const char *id, const json_t *changes,
			      const char *expect_status, json_t **out, sbx_err *err);
	/* Removes the session and all its executions. */
	int (*session_delete)(void *inst, const char *id, sbx_err *err);

	/* Executions. */
	int (*execution_insert)(void *inst, const json_t *execution, sbx_err *err);
	int (*execution_get)(void *inst, const char *id, json_t **execution, sbx_err *err);
	/* query: {"session_id"?, "statuses"?: [s...], "tenant"?, "limit"?: 1..1000 (default
	 *  100), "offset"?: >=0}; *page: {"items", "total"}, ordered as session_list. */
	int (*execution_list)(void *inst, const json_t *query, json_t **page, sbx_err *err);
	int (*execution_update)(void *inst, const char *id, const json_t *changes,
				const char *expect_status, json_t **out, sbx_err *err);

	/* Templates. list: query {"tenant"?: t}: with a tenant, that tenant's templates plus
	 * the global ones (tenant null); without, every template. *items: array ordered by id. */
	int (*template_insert)(void *inst, const json_t *tmpl, sbx_err *err);
	int (*template_get)(void *inst, const char *id, json_t **tmpl, sbx_err *err);
	int (*template_list)(void *inst, const json_t *query, json_t **items, sbx_err *err);
	int (*template_update)(void *inst, const char *id, const json_t *changes, json_t **out,
			       sbx_err *err);
	int (*template_delete)(void *inst, const char *id, sbx_err *err);

	/* Leases: run a background loop once per cluster. acquire takes a free or expired
	 * lease, or renews one `holder` already has, for ttl_ms; SBX_E_CONFLICT while another
	 * holder's lease is unexpired. release frees it if holder has it (else 0). Expiry is
	 * judged by the core's wall clock (now_ms): replicas need synchronised clocks, and
	 * ttl_ms should be well above their skew. */
	int (*lease_acquire)(void *inst, const char *name, const char *holder, int64_t ttl_ms,
			     sbx_err *err);
	int (*lease_release)(void *inst, const char *name, const char *holder, sbx_err *err);

	/* Optional. As runtime.health. */
	int (*health)(void *inst, json_t **detail, sbx_err *err);
};

#ifdef __cplusplus
}
#endif
#endif
