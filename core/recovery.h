/*
 * State sync: re-adopt live sandboxes of known sessions, fail sessions whose sandbox
 * vanished, destroy orphans, settle work that a dead process left in flight (sessions
 * being created, executions running). Runs at start-up before the API opens, and then
 * periodically on the replica that holds the state_sync lease.
 */
#ifndef SBXD_RECOVERY_H
#define SBXD_RECOVERY_H

#include "server.h"

/* The start-up pass (whatever the lease), then the periodic loop. */
int recovery_start(struct server *srv);
void recovery_stop(struct server *srv);
/* One pass; exposed for tests. */
void recovery_sync(struct server *srv);

#endif
