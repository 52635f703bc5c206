/*
 * Background loops: a thread that runs one pass every interval until stopped, with every
 * plugin's thread_init/thread_fini around its life. Reaper, probe, state sync, lease keeper
 * and warm-pool filler are loops.
 */
#ifndef SBXD_LOOPS_H
#define SBXD_LOOPS_H

#include "server.h"

struct loop;
typedef void (*loop_fn)(struct server *srv, void *arg);

/* Starts the thread; the first pass runs after first_delay_ms (0: at once). NULL on
 * failure. */
struct loop *loop_start(struct server *srv, const char *name, int interval_ms, int first_delay_ms,
			loop_fn fn, void *arg);
/* Runs the next pass now (or right after the current one). */
void loop_kick(struct loop *l);
/* Runs the next pass in ms milliseconds, unless one is due sooner. */
void loop_kick_in(struct loop *l, int ms);
/* Waits for the current pass to end and joins the thread. NULL is fine. */
void loop_stop(struct loop *l);

#endif
