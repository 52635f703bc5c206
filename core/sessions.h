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
int sessions_is_live(const json_t *rec);

/* Template look-up with tenant visibility; SBX_E_NOTFOUND. */
int templates_get(struct server *srv, const char *tenant, int admin, const char *id, json_t **t,
		  sbx_err *err);
/* Validate a template body (create: full; update: partial). 0 or SBX_E_INVALID. */
int templates_validate(const json_t *body, int partial, sbx_err *err);
/* Insert the configured (or built-in) templates into an empty store. */
int templates_seed(struct server *srv, sbx_err *err);

#endif
