/*
 * struct server: the daemon's one context object, created in main.c and passed everywhere.
 * Also struct req, one HTTP request as the worker threads see it.
 */
#ifndef SBXD_SERVER_H
#define SBXD_SERVER_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include <jansson.h>

#include <sandbox/core.h>

#include "conf.h"
#include "loader.h"

struct metrics;
struct pool;
struct httpd;
struct execs;
struct sessions_svc;
struct quotas;
struct leases;
struct warm;
struct loop;
struct probe;

struct server {
	struct config cfg;
	struct sbx_core_api api;
	struct metrics *metrics;

	struct plugin *plugins;
	size_t n_plugins;
	struct plugin *db;         /* the db instance (exactly one) */
	struct plugin *storage;    /* the default storage instance (may be NULL) */
	struct plugin *policy;     /* may be NULL: first healthy runtime */
	pthread_mutex_t policy_mu; /* policy calls are one at a time (policy.h) */
	struct plugin **runtimes;
	size_t n_runtimes;
	struct plugin **auths;
	size_t n_auths;

	struct pool *pool;
	struct httpd *httpd;
	struct execs *execs;
	struct sessions_svc *sessions;
	struct quotas *quotas;
	struct leases *leases;
	struct warm *warm;
	struct probe *probe;
	struct loop *probe_loop, *sync_loop;
	int sync_waiting; /* executions the start-up sync left running in their sandbox */

	int64_t started_ms;
	char instance_id[33]; /* random per process: this run ("boot") of the replica */
	char replica_id[128]; /* server.replica_id or host:port, stable across restarts */
	volatile sig_atomic_t stopping;
};

/* Plugin instance lookups. */
struct plugin *server_runtime(struct server *srv, const char *instance);

#endif
