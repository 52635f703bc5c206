/*
 * Cluster leases and replica liveness. Several replicas share one db; a loop that must run
 * once at a time (reaper, probe, state sync) works only while this replica holds its lease,
 * and every replica keeps a "replica:<id>" lease alive so the others can tell whether work
 * it left in flight (sessions being created, running executions, pooled sandboxes) has an
 * owner or must be recovered.
 */
#ifndef SBXD_LEASES_H
#define SBXD_LEASES_H

#include <jansson.h>

#include "server.h"

#define LEASE_REAPER     "reaper"
#define LEASE_PROBE      "probe" /* held when any per-node "probe:<runtime>/<node>" is */
#define LEASE_STATE_SYNC "state_sync"

/* Sets srv->replica_id (server.replica_id, or "<hostname>:<port>"), takes the leases once
 * and starts the keeper loop that renews them every lease_ttl_ms / 3. */
int leases_start(struct server *srv);
/* Stops the keeper and releases every lease this replica holds. */
void leases_stop(struct server *srv);
/* 1 while this replica holds `name` with at least a third of its ttl left, else 0. */
int leases_held(struct server *srv, const char *name);
/* Takes or renews lease `name` for lease_ttl_ms now (1), or another replica holds it or
 * the db is unreachable (0). For leases whose set is dynamic (the probe's, one per node). */
int leases_try(struct server *srv, const char *name);
void leases_drop(struct server *srv, const char *name);
/* Records whether this replica holds `name` (one of the LEASE_* kept elsewhere) for
 * leases_held, /health/detailed and the sbxd_lease_held gauge. */
void leases_note(struct server *srv, const char *name, int held);
/* Marks a record as owned by this process: "replica" and "boot" members. */
void leases_stamp(struct server *srv, json_t *rec);
/* Is the process that stamped rec still alive? 1 yes (or unknown: db unreachable), 0 no:
 * the record is from a previous run of this replica or from a replica whose lease
 * expired. Records with no stamp count as dead. cache (may be NULL) is an object the
 * caller keeps for one pass: each other replica's lease is then looked up once. */
int leases_owner_alive(struct server *srv, const json_t *rec, json_t *cache);
/* {"id", "boot", "leases": {"reaper": true, ...}} for /health/detailed. */
json_t *leases_detail(struct server *srv);

#endif
