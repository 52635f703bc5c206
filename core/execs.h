/*
 * Executions in flight: one runner thread per running execution talks to the sandbox's
 * executor; execute-sync requests wait on the execution itself (no polling), bounded by
 * their sync_timeout.
 */
#ifndef SBXD_EXECS_H
#define SBXD_EXECS_H

#include "http.h"
#include "server.h"

int execs_start(struct server *srv);
/* Answer every waiting execute-sync with 503 and stop the timer thread. Runner threads are
 * left to finish (their sandboxes keep the result for collection after a restart). */
void execs_stop(struct server *srv);

/* Store an execution's record (status pending) and start running it. The running slot is
 * reserved first, so an execution refused for a limit (SBX_E_LIMIT: executions.max_running,
 * or the tenant's tenant_max_running when > 0) leaves no record behind.
 * session: its session record; env: merged environment (borrowed). */
int execs_submit(struct server *srv, const json_t *session, const json_t *exec_rec,
		 const json_t *env, int64_t tenant_max_running, sbx_err *err);

/* If exec_id is running, defer r until it ends (reply 200 with the execution) or until
 * deadline_mono_ms (reply 408); returns 1. Returns 0 when it is not running (the caller
 * reads the record and replies). */
int execs_wait(struct server *srv, const char *exec_id, struct req *r, int64_t deadline_mono_ms);

/* Live output as Server-Sent Events: if exec_id is running, reply to r with a stream of
 * its events (start, stdout, stderr, result) from the beginning, and return 1; return 0
 * when it is not running (the caller replies from the stored record). */
int execs_stream(struct server *srv, const char *exec_id, struct req *r);
/* The SSE text of one event (malloc'd): "event: TYPE\ndata: JSON\n\n". */
char *execs_sse_event(const char *type, const json_t *data, size_t *len);

int execs_session_busy(struct server *srv, const char *session_id);
void execs_session_ended(struct server *srv, const char *session_id, const char *status);
int execs_running(struct server *srv);

/* Settle executions left pending/running by a process that is gone (a previous run of
 * this replica, or a replica whose lease lapsed): the executor's retained result, or
 * crashed when it cannot be collected. Returns how many are still running in their
 * sandbox (to be collected by a later call). */
int execs_recover(struct server *srv);

#endif
