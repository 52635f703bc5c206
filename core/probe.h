/*
 * The health probe: every sessions.probe_interval_ms, on the replica holding the probe
 * lease, each running session's sandbox is checked with its runtime and its executor's
 * /health; a dead one is handed to sessions_sandbox_lost (failed, or recreated).
 */
#ifndef SBXD_PROBE_H
#define SBXD_PROBE_H

#include "server.h"

int probe_start(struct server *srv);
void probe_stop(struct server *srv);

#endif
