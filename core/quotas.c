/*
 * Quotas. The tenant table holds one entry per tenant seen since start (bounded by the
 * number of credentials): its request token bucket and the lock that makes "count, then
 * insert" of session creates atomic within this replica.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "quotas.h"
#include "services.h"

struct tenant {
	struct tenant *next;
	char *name;
	double tokens;
	int64_t refilled_ms; /* monotonic */
	pthread_mutex_t create_mu;
};

struct quotas {
	pthread_mutex_t mu;
	struct tenant *tenants;
};

int quotas_start(struct server *srv)
{
	struct quotas *q = calloc(1, sizeof *q);
	if (!q)
		return -1;
	pthread_mutex_init(&q->mu, NULL);
	srv->quotas = q;
	return 0;
}

void quotas_stop(struct server *srv)
{
	struct quotas *q = srv->quotas;
	struct tenant *t, *n;

	if (!q)
		return;
	for (t = q->tenants; t; t = n) {
		n = t->next;
		pthread_mutex_destroy(&t->create_mu);
		free(t->name);
		free(t);
	}
	pthread_mutex_destroy(&q->mu);
	free(q);
	srv->quotas = NULL;
}

/* Caller holds q->mu. */
static struct tenant *tenant_get(struct quotas *q, const char *name)
{
	struct tenant *t;

	for (t = q->tenants; t; t = t->next)
		if (strcmp(t->name, name) == 0)
			return t;
	t = calloc(1, sizeof *t);
	if (!t || !(t->name = strdup(name))) {
		free(t);
		return NULL;
	}
	t->tokens = -1; /* filled on first use */
	pthread_mutex_init(&t->create_mu, NULL);
	t->next = q->tenants;
	q->tenants = t;
	return t;
}

void quotas_for(struct server *srv, const json_t *principal, struct quota_cfg *out)
{
	const json_t *o = json_object_get(principal, "quotas");
	const json_t *v;

	*out = srv->cfg.quotas;
	if (!json_is_object(o))
		return;
	if (json_is_number(v = json_object_get(o, "max_sessions")))
		out->max_sessions = (int64_t)json_number_value(v);
	if (json_is_number(v = json_object_get(o, "max_running_executions")))
		out->max_running_executions = (int64_t)json_number_value(v);
	if (json_is_number(v = json_object_get(o, "max_cpu")))
		out->max_cpu = json_number_value(v);
	if (json_is_number(v = json_object_get(o, "max_memory_mb")))
		out->max_memory = (int64_t)json_number_value(v) << 20;
	if (json_is_number(v = json_object_get(o, "requests_per_second")))
		out->requests_per_second = json_number_value(v);
	if (json_is_number(v = json_object_get(o, "burst")))
		out->burst = (int64_t)json_number_value(v);
}

int quotas_take_request(struct server *srv, const char *tenant, const struct quota_cfg *q,
			double *retry_after_s)
{
	struct quotas *qs = srv->quotas;
	double cap = q->burst > 0 ? (double)q->burst : q->requests_per_second;
	int64_t now = services_mono_ms();
	struct tenant *t;
	int rc = 0;

	if (q->requests_per_second <= 0)
		return 0;
	if (cap < 1)
		cap = 1;
	pthread_mutex_lock(&qs->mu);
	t = tenant_get(qs, tenant);
	if (t) {
		if (t->tokens < 0)
			t->tokens = cap;
		else
			t->tokens = fmin(cap, t->tokens + (double)(now - t->refilled_ms) / 1000.0 *
							      q->requests_per_second);
		t->refilled_ms = now;
		if (t->tokens >= 1)
			t->tokens -= 1;
		else {
			*retry_after_s = (1 - t->tokens) / q->requests_per_second;
			rc = -1;
		}
	}
	pthread_mutex_unlock(&qs->mu);
	return rc;
}

void quotas_lock_tenant(struct server *srv, const char *tenant)
{
	struct tenant *t;
	pthread_mutex_lock(&srv->quotas->mu);
	t = tenant_get(srv->quotas, tenant);
	pthread_mutex_unlock(&srv->quotas->mu);
	if (t) /* entries are never freed before quotas_stop */
		pthread_mutex_lock(&t->create_mu);
}

void quotas_unlock_tenant(struct server *srv, const char *tenant)
{
	struct tenant *t;
	pthread_mutex_lock(&srv->quotas->mu);
	t = tenant_get(srv->quotas, tenant);
	pthread_mutex_unlock(&srv->quotas->mu);
	if (t)
		pthread_mutex_unlock(&t->create_mu);
}

int quotas_check_session(struct server *srv, const char *tenant, const struct quota_cfg *q,
			 double cpu, int64_t memory_mb, sbx_err *err)
{
	const struct sbx_db_plugin *db = srv->db->d.db;
	json_t *query, *page = NULL, *it;
	double cpu_sum = cpu;
	int64_t mem_sum = memory_mb, total = 0;
	size_t i;
	int rc = 0, offset = 0;

	if (q->max_sessions <= 0 && q->max_cpu <= 0 && q->max_memory <= 0)
		return 0;
	for (;;) {
		query = json_pack("{s:s, s:[s,s], s:i, s:i}", "tenant", tenant, "statuses",
				  "creating", "running", "limit", 1000, "offset", offset);
		rc = db->session_list(srv->db->inst, query, &page, err);
		json_decref(query);
		if (rc < 0)
			return rc;
		total = json_integer_value(json_object_get(page, "total"));
		json_array_foreach (json_object_get(page, "items"), i, it) {
			const json_t *res = json_object_get(it, "resources");
			cpu_sum += json_number_value(json_object_get(res, "cpu"));
			mem_sum += json_integer_value(json_object_get(res, "memory_mb"));
		}
		offset += (int)i;
		json_decref(page);
		page = NULL;
		if (i == 0 || offset >= total)
			break;
	}
	if (q->max_sessions > 0 && total + 1 > q->max_sessions)
		return sbx_err_set(
		    err, SBX_E_LIMIT,
		    "tenant '%s' already has %lld live session(s) (quota max_sessions = %lld); "
		    "terminate one first",
		    tenant, (long long)total, (long long)q->max_sessions);
	if (q->max_cpu > 0 && cpu_sum > q->max_cpu + 1e-9)
		return sbx_err_set(
		    err, SBX_E_LIMIT,
		    "tenant '%s' would reserve %.2f CPU cores (quota max_cpu = %.2f)", tenant,
		    cpu_sum, q->max_cpu);
	if (q->max_memory > 0 && mem_sum > q->max_memory >> 20)
		return sbx_err_set(
		    err, SBX_E_LIMIT,
		    "tenant '%s' would reserve %lld MiB of memory (quota max_memory = %lld MiB)",
		    tenant, (long long)mem_sum, (long long)(q->max_memory >> 20));
	return 0;
}
