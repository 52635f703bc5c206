/*
 * State sync at start-up: re-adopt live sandboxes of known sessions, fail sessions whose
 * sandbox vanished, destroy orphans, settle executions left in flight.
 */
#ifndef SBXD_RECOVERY_H
#define SBXD_RECOVERY_H

#include "server.h"

void recovery_run(struct server *srv);

#endif
