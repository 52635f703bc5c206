/*
 * Per-tenant quotas and rate limits: configured defaults, overridden per API key through
 * the principal's "quotas" object. Counters are this replica's (executions, rate) or read
 * from the db (sessions, CPU, memory).
 */
#ifndef SBXD_QUOTAS_H
#define SBXD_QUOTAS_H

#include "conf.h"
#include "server.h"

int quotas_start(struct server *srv);
void quotas_stop(struct server *srv);

/* The limits that apply to a principal (config defaults + its "quotas" overrides). */
void quotas_for(struct server *srv, const json_t *principal, struct quota_cfg *out);

/* Token bucket: 0 when the request may proceed, else -1 with *retry_after_s set. */
int quotas_take_request(struct server *srv, const char *tenant, const struct quota_cfg *q,
			double *retry_after_s);

/* Serialise the quota check + insert of session creates within a tenant. */
void quotas_lock_tenant(struct server *srv, const char *tenant);
void quotas_unlock_tenant(struct server *srv, const char *tenant);

/* Would one more session with cpu/memory_mb exceed the tenant's quotas? 0, or
 * -SBX_E_LIMIT with a message naming the quota. Caller holds the tenant lock. */
int quotas_check_session(struct server *srv, const char *tenant, const struct quota_cfg *q,
			 double cpu, int64_t memory_mb, sbx_err *err);

#endif
