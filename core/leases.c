/*
 * Leases (leases.h). The keeper renews on a timer of its own so that a long pass of a loop
 * (archiving a large workspace in the reaper) never lets a lease lapse; a loop asks
 * leases_held() before each pass. Local validity is a third shorter than the ttl: the db
 * judges expiry with each replica's wall clock, and the margin absorbs skew and the time
 * between the db's answer and our reading of it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leases.h"
#include "log.h"
#include "loops.h"
#include "metrics.h"
#include "services.h"

#define DB(srv)  ((srv)->db->d.db)
#define DBI(srv) ((srv)->db->inst)

static const char *const names[] = {LEASE_REAPER, LEASE_PROBE, LEASE_STATE_SYNC};
#define N_NAMES (sizeof names / sizeof names[0])

struct leases {
	pthread_mutex_t mu;
	int64_t valid_until[N_NAMES + 1]; /* monotonic ms; last entry: the replica lease */
	char replica_name[160];
	struct loop *keeper;
};

static void renew(struct server *srv, struct leases *ls, int i, const char *name)
{
	int64_t t0 = services_mono_ms(), ttl = srv->cfg.lease_ttl_ms;
	sbx_err err;
	int rc;
	json_t *labels;

	sbx_err_clear(&err);
	rc = DB(srv)->lease_acquire(DBI(srv), name, srv->replica_id, ttl, &err);
	pthread_mutex_lock(&ls->mu);
	if (rc == 0) {
		if (ls->valid_until[i] <= services_mono_ms())
			LOG_I("lease %s taken by replica %s", name, srv->replica_id);
		ls->valid_until[i] = t0 + ttl * 2 / 3;
	} else if (-rc == SBX_E_CONFLICT) {
		if (ls->valid_until[i] > services_mono_ms())
			LOG_W("lease %s lost: another replica holds it", name);
		ls->valid_until[i] = 0;
	} else if (ls->valid_until[i] > services_mono_ms())
		LOG_W("lease %s not renewed: %s", name, err.message); /* kept until it lapses */
	pthread_mutex_unlock(&ls->mu);
	if (i < (int)N_NAMES) {
		labels = json_pack("{s:s}", "name", name);
		metrics_gauge_set(srv->metrics, "sbxd_lease_held", labels,
				  leases_held(srv, name) ? 1 : 0);
		json_decref(labels);
	}
}

static void keep(struct server *srv, void *arg)
{
	struct leases *ls = arg;

	if (srv->stopping)
		return;
	renew(srv, ls, N_NAMES, ls->replica_name);
	for (size_t i = 0; i < N_NAMES; i++)
		if (strcmp(names[i], LEASE_PROBE) != 0) /* per node: probe.c */
			renew(srv, ls, (int)i, names[i]);
}

int leases_try(struct server *srv, const char *name)
{
	sbx_err err;
	sbx_err_clear(&err);
	return DB(srv)->lease_acquire(DBI(srv), name, srv->replica_id, srv->cfg.lease_ttl_ms,
				      &err) == 0;
}

void leases_drop(struct server *srv, const char *name)
{
	sbx_err err;
	DB(srv)->lease_release(DBI(srv), name, srv->replica_id, &err);
}

void leases_note(struct server *srv, const char *name, int held)
{
	struct leases *ls = srv->leases;
	json_t *labels;

	if (!ls)
		return;
	pthread_mutex_lock(&ls->mu);
	for (size_t i = 0; i < N_NAMES; i++)
		if (strcmp(names[i], name) == 0)
			ls->valid_until[i] =
			    held ? services_mono_ms() + srv->cfg.lease_ttl_ms * 2 / 3 : 0;
	pthread_mutex_unlock(&ls->mu);
	labels = json_pack("{s:s}", "name", name);
	metrics_gauge_set(srv->metrics, "sbxd_lease_held", labels, held ? 1 : 0);
	json_decref(labels);
}

int leases_start(struct server *srv)
{
	struct leases *ls = calloc(1, sizeof *ls);

	if (!ls)
		return -1;
	if (srv->cfg.replica_id && *srv->cfg.replica_id)
		snprintf(srv->replica_id, sizeof srv->replica_id, "%s", srv->cfg.replica_id);
	else {
		char host[64] = "";
		if (gethostname(host, sizeof host - 1) < 0 || !host[0])
			strcpy(host, "localhost");
		snprintf(srv->replica_id, sizeof srv->replica_id, "%s:%d", host,
			 srv->cfg.listen_port);
	}
	snprintf(ls->replica_name, sizeof ls->replica_name, "replica:%s", srv->replica_id);
	pthread_mutex_init(&ls->mu, NULL);
	srv->leases = ls;
	keep(srv, ls); /* before any loop starts: the first passes know what they hold */
	ls->keeper = loop_start(srv, "leases", srv->cfg.lease_ttl_ms / 3, srv->cfg.lease_ttl_ms / 3,
				keep, ls);
	if (!ls->keeper)
		return -1;
	LOG_I("replica id=%s boot=%s lease_ttl_ms=%d", srv->replica_id, srv->instance_id,
	      srv->cfg.lease_ttl_ms);
	return 0;
}

void leases_stop(struct server *srv)
{
	struct leases *ls = srv->leases;
	sbx_err err;

	if (!ls)
		return;
	loop_stop(ls->keeper);
	for (size_t i = 0; i <= N_NAMES; i++)
		if (ls->valid_until[i] > 0 && (i == N_NAMES || strcmp(names[i], LEASE_PROBE) != 0))
			DB(srv)->lease_release(DBI(srv), i < N_NAMES ? names[i] : ls->replica_name,
					       srv->replica_id, &err);
	pthread_mutex_destroy(&ls->mu);
	free(ls);
	srv->leases = NULL;
}

int leases_held(struct server *srv, const char *name)
{
	struct leases *ls = srv->leases;
	int held = 0;

	if (!ls)
		return 0;
	pthread_mutex_lock(&ls->mu);
	for (size_t i = 0; i < N_NAMES; i++)
		if (strcmp(names[i], name) == 0)
			held = ls->valid_until[i] > services_mono_ms();
	pthread_mutex_unlock(&ls->mu);
	return held;
}

void leases_stamp(struct server *srv, json_t *rec)
{
	json_object_set_new(rec, "replica", json_string(srv->replica_id));
	json_object_set_new(rec, "boot", json_string(srv->instance_id));
}

int leases_owner_alive(struct server *srv, const json_t *rec, json_t *cache)
{
	const char *replica = json_string_value(json_object_get(rec, "replica"));
	const char *boot = json_string_value(json_object_get(rec, "boot"));
	char name[160];
	sbx_err err;
	int rc;

	if (!replica || !boot)
		return 0;
	if (strcmp(replica, srv->replica_id) == 0)
		return strcmp(boot, srv->instance_id) == 0;
	/* Another replica: alive while its replica lease is held. Taking the lease shows it
	 * lapsed; give it straight back so that the replica, if it returns, renews freely. */
	snprintf(name, sizeof name, "replica:%s", replica);
	if (cache && json_object_get(cache, name))
		return json_is_true(json_object_get(cache, name));
	sbx_err_clear(&err);
	rc = DB(srv)->lease_acquire(DBI(srv), name, srv->replica_id, 1000, &err);
	if (rc == 0)
		DB(srv)->lease_release(DBI(srv), name, srv->replica_id, &err);
	/* held by it (CONFLICT), or we cannot tell: leave its work alone */
	if (cache)
		json_object_set_new(cache, name, json_boolean(rc != 0));
	return rc != 0;
}

json_t *leases_detail(struct server *srv)
{
	json_t *held = json_object();

	for (size_t i = 0; i < N_NAMES; i++)
		json_object_set_new(held, names[i], json_boolean(leases_held(srv, names[i])));
	return json_pack("{s:s, s:s, s:o, s:i}", "id", srv->replica_id, "boot", srv->instance_id,
			 "leases", held, "lease_ttl_ms", srv->cfg.lease_ttl_ms);
}
