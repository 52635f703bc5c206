/*
 * Execution runner. The in-memory table of running executions is what execute-sync waits
 * on; the db record is updated before waiters are woken, under the same lock that waiters
 * register with, so a waiter can never miss the end of an execution.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "exec_client.h"
#include "leases.h"
#include "execs.h"
#include "log.h"
#include "metrics.h"
#include "model.h"
#include "services.h"
#include "sessions.h"

struct waiter {
	struct waiter *next;
	struct req *r;
	int64_t deadline;
	char exec_id[72];
};

/* The live event log of one execution, shared by its runner and SSE subscribers; guarded
 * by execs.mu and freed with its last reference. Bounded: the executor caps each output
 * stream at max_output, so the log holds at most about 2 x max_output plus the result. */
struct stream {
	int refs;
	char *buf;
	size_t len, cap;
	int done;
	struct sub *subs;
};

struct sub {
	struct sub *next;
	struct stream *st;
	struct execs *x;
	struct MHD_Connection *conn;
	size_t off;
	int suspended;
};

struct run {
	struct run *next;
	struct stream *stream;
	struct server *srv;
	char id[72];
	char session_id[72];
	char tenant[72];
	json_t *executor;
	json_t *request;
	long timeout_ms;
	struct waiter *waiters;
};

/* A parked runner thread: reusing threads keeps their per-thread plugin state (e.g. the
 * db connection) warm instead of opening it for every execution. */
struct idle {
	struct idle *next;
	pthread_cond_t cv;
	struct run *job;
};

#define RUNNER_IDLE_MS 60000

struct execs {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct run *running;
	int n_running;
	struct idle *idle; /* parked runner threads, most recently parked first */
	int completing;    /* runners replying to waiters they took off a run */
	int db_users;      /* runners inside a db call; execs_stop waits for none */
	int n_threads;
	pthread_t timer;
	int stop;
	int timer_started;
};

#define DB(srv)  ((srv)->db->d.db)
#define DBI(srv) ((srv)->db->inst)

/* ---- live event streams (SSE) ------------------------------------------------------ */

char *execs_sse_event(const char *type, const json_t *data, size_t *len)
{
	char *j = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
	char *out = NULL;
	int n;

	*len = 0;
	if (!j)
		return NULL;
	n = asprintf(&out, "event: %s\ndata: %s\n\n", type, j);
	free(j);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return out;
}

/* Append to a stream and wake its suspended readers. Caller holds x->mu. */
static void stream_append(struct stream *st, const char *data, size_t len)
{
	if (!st || st->done)
		return;
	if (st->len + len > st->cap) {
		size_t cap = st->cap ? st->cap : 4096;
		char *nb;
		while (cap < st->len + len)
			cap *= 2;
		nb = realloc(st->buf, cap);
		if (!nb)
			return;
		st->buf = nb;
		st->cap = cap;
	}
	memcpy(st->buf + st->len, data, len);
	st->len += len;
	for (struct sub *s = st->subs; s; s = s->next)
		if (s->suspended) {
			s->suspended = 0;
			MHD_resume_connection(s->conn);
		}
}

static void stream_event(struct execs *x, struct stream *st, const char *type, const json_t *data,
			 int last)
{
	size_t len;
	char *text = execs_sse_event(type, data, &len);

	pthread_mutex_lock(&x->mu);
	if (text)
		stream_append(st, text, len);
	if (last) {
		st->done = 1;
		for (struct sub *s = st->subs; s; s = s->next)
			if (s->suspended) {
				s->suspended = 0;
				MHD_resume_connection(s->conn);
			}
	}
	pthread_mutex_unlock(&x->mu);
	free(text);
}

/* Caller holds x->mu. */
static void stream_unref(struct stream *st)
{
	if (st && --st->refs == 0) {
		free(st->buf);
		free(st);
	}
}

/* From the executor's NDJSON stream (runner thread). */
static void on_executor_event(void *ctx, const json_t *ev)
{
	struct run *run = ctx;
	const char *type = json_string_value(json_object_get(ev, "type"));

	if (!type || !run->stream || strcmp(type, "result") == 0)
		return; /* the result event is sent with the stored execution, by finish_run */
	if (strcmp(type, "stdout") && strcmp(type, "stderr") && strcmp(type, "start"))
		return;
	stream_event(run->srv->execs, run->stream, type, ev, 0);
}

/* MHD content reader (MHD's thread): copy what is there, or park the connection until
 * the runner appends more. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sub *s = cls;
	struct execs *x = s->x;
	ssize_t n;
	(void)pos;

	pthread_mutex_lock(&x->mu);
	if (s->off < s->st->len) {
		size_t avail = s->st->len - s->off;
		n = (ssize_t)(avail < max ? avail : max);
		memcpy(buf, s->st->buf + s->off, (size_t)n);
		s->off += (size_t)n;
	} else if (s->st->done) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		s->suspended = 1;
		MHD_suspend_connection(s->conn);
		n = 0;
	}
	pthread_mutex_unlock(&x->mu);
	return n;
}

static void sse_free(void *cls)
{
	struct sub *s = cls;
	struct execs *x = s->x;

	pthread_mutex_lock(&x->mu);
	for (struct sub **pp = &s->st->subs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	stream_unref(s->st);
	pthread_mutex_unlock(&x->mu);
	free(s);
}

int execs_stream(struct server *srv, const char *exec_id, struct req *r)
{
	struct execs *x = srv->execs;
	struct MHD_Response *resp;
	struct run *run;
	struct sub *s = calloc(1, sizeof *s);

	if (!s)
		return 0;
	pthread_mutex_lock(&x->mu);
	for (run = x->running; run; run = run->next)
		if (strcmp(run->id, exec_id) == 0)
			break;
	if (!run || !run->stream || x->stop) {
		pthread_mutex_unlock(&x->mu);
		free(s);
		return 0;
	}
	s->st = run->stream;
	s->st->refs++;
	s->x = x;
	s->conn = r->conn;
	s->next = s->st->subs;
	s->st->subs = s;
	pthread_mutex_unlock(&x->mu);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, s, sse_free);
	if (!resp) {
		sse_free(s);
		return 0;
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	http_reply_response(r, 200, resp);
	return 1;
}

static void reply_execution(struct req *r, const json_t *rec)
{
	http_reply_json(r, 200, model_execution_view(r->srv, rec));
	http_complete(r);
}

/* Turn the executor's result event into the changes stored on the execution. */
static json_t *result_changes(const json_t *res, int64_t started, int64_t now)
{
	static const char *const copy[] = {
	    "status",   "exit_code",        "error_message",    "return_value",           "stdout",
	    "stderr",   "stdout_truncated", "stderr_truncated", "return_value_truncated", "metrics",
	    "artifacts"};
	json_t *c = json_object();
	double dur;

	for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
		json_t *v = json_object_get(res, copy[i]);
		if (v)
			json_object_set(c, copy[i], v);
	}
	if (!json_is_string(json_object_get(c, "status")))
		json_object_set_new(c, "status", json_string("crashed"));
	dur = json_number_value(json_object_get(json_object_get(res, "metrics"), "duration_ms"));
	if (dur <= 0)
		dur = (double)(now - started);
	json_object_set_new(c, "execution_time", json_real(dur / 1000.0));
	json_object_set_new(c, "completed_at", json_integer(now));
	json_object_set_new(c, "updated_at", json_integer(now));
	return c;
}

static void finish_run(struct run *run, json_t *changes)
{
	struct server *srv = run->srv;
	struct execs *x = srv->execs;
	struct waiter *w, *wn;
	struct run **pp;
	json_t *rec = NULL;
	int had_waiters;
	sbx_err err;

	/* The db may be briefly unreachable (a MariaDB restart): keep the result and retry,
	 * with backoff, for up to a minute; at shutdown the executor keeps it for the next
	 * start, and past the minute state sync collects it from the executor. */
	for (int attempt = 0, rc;; attempt++) {
		int stop;
		sbx_err_clear(&err);
		rc = DB(srv)->execution_update(DBI(srv), run->id, changes, "running", &rec, &err);
		pthread_mutex_lock(&x->mu);
		stop = x->stop;
		pthread_mutex_unlock(&x->mu);
		if (rc == 0 || -rc != SBX_E_UNAVAILABLE || stop || attempt >= 60)
			break;
		if (attempt == 0)
			LOG_W("execution=%s result not stored yet (%s); retrying", run->id,
			      err.message);
		usleep(attempt < 5 ? 200000 : 1000000);
	}
	if (!rec) {
		/* deleted meanwhile, or settled by someone else: reply with what is stored */
		json_decref(rec);
		rec = NULL;
		DB(srv)->execution_get(DBI(srv), run->id, &rec, &err);
	}
	sessions_touch(srv, run->session_id);
	if (run->stream) {
		json_t *view =
		    rec ? model_execution_view(srv, rec) : json_pack("{s:s}", "id", run->id);
		stream_event(x, run->stream, "result", view, 1);
		json_decref(view);
	}

	pthread_mutex_lock(&x->mu);
	for (pp = &x->running; *pp; pp = &(*pp)->next)
		if (*pp == run) {
			*pp = run->next;
			break;
		}
	x->n_running--;
	w = run->waiters;
	run->waiters = NULL;
	if (w)
		x->completing++;
	pthread_mutex_unlock(&x->mu);

	had_waiters = w != NULL;
	for (; w; w = wn) {
		wn = w->next;
		if (rec)
			reply_execution(w->r, rec);
		else {
			http_reply_error(w->r, 404, "Sandbox.ExecutionNotFound", NULL,
					 "execution '%s' no longer exists", run->id);
			http_complete(w->r);
		}
		free(w);
	}
	if (had_waiters) {
		pthread_mutex_lock(&x->mu);
		x->completing--;
		pthread_cond_broadcast(&x->cv);
		pthread_mutex_unlock(&x->mu);
	}
	{
		json_t *labels =
		    json_pack("{s:s}", "status",
			      json_string_value(json_object_get(changes, "status")) ?: "unknown");
		metrics_counter_add(srv->metrics, "sbxd_executions_total", labels, 1);
		json_decref(labels);
	}
	json_decref(rec);
}

/* Runners reach the db only between db_enter and db_leave; once execs_stop has run, they
 * may not (the db plugin is about to be destroyed), and the execution's result stays with
 * the executor for the next start to collect. */
static int db_enter(struct execs *x)
{
	int ok;
	pthread_mutex_lock(&x->mu);
	ok = !x->stop;
	if (ok)
		x->db_users++;
	pthread_mutex_unlock(&x->mu);
	return ok;
}

static void db_leave(struct execs *x)
{
	pthread_mutex_lock(&x->mu);
	x->db_users--;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

/* Take the run out of the running table without touching the db (shutdown). */
static void abandon_run(struct run *run)
{
	struct execs *x = run->srv->execs;
	pthread_mutex_lock(&x->mu);
	for (struct run **pp = &x->running; *pp; pp = &(*pp)->next)
		if (*pp == run) {
			*pp = run->next;
			break;
		}
	x->n_running--;
	pthread_mutex_unlock(&x->mu);
}

/* Give back the running slot and the provisional thread slot execs_submit reserved. */
static void release_slot(struct run *run)
{
	struct execs *x = run->srv->execs;
	abandon_run(run);
	pthread_mutex_lock(&x->mu);
	x->n_threads--;
	pthread_mutex_unlock(&x->mu);
}

static void run_one(struct run *run)
{
	struct server *srv = run->srv;
	json_t *res = NULL, *changes;
	int64_t started = services_now_ms(), t0 = services_mono_ms();
	sbx_err err;
	int rc;

	log_set_request_id(run->id);
	if (!db_enter(srv->execs)) {
		abandon_run(run); /* stays pending: settled by the next start */
		goto out;
	}
	changes = json_pack("{s:s, s:I, s:I}", "status", "running", "started_at",
			    (json_int_t)started, "updated_at", (json_int_t)started);
	rc = DB(srv)->execution_update(DBI(srv), run->id, changes, "pending", NULL, &err);
	json_decref(changes);
	if (rc < 0) {
		LOG_W("execution=%s cannot start: %s", run->id, err.message);
		changes =
		    json_pack("{s:s, s:s}", "status", "crashed", "error_message", err.message);
		finish_run(run, changes);
		json_decref(changes);
		db_leave(srv->execs);
		goto out;
	}
	db_leave(srv->execs);
	sbx_err_clear(&err);
	rc = exec_client_execute(run->executor, run->request, run->timeout_ms + 30000,
				 on_executor_event, run, &res, &err);
	if (rc < 0) {
		int64_t now = services_now_ms();
		char msg[SBX_ERR_MSG_MAX + 64];
		snprintf(msg, sizeof msg, "the sandbox failed during the execution: %s",
			 err.message);
		changes = json_pack("{s:s, s:s, s:i, s:f, s:I, s:I}", "status", "crashed",
				    "error_message", msg, "exit_code", -1, "execution_time",
				    (double)(now - started) / 1000.0, "completed_at",
				    (json_int_t)now, "updated_at", (json_int_t)now);
	} else
		changes = result_changes(res, started, services_now_ms());
	if (db_enter(srv->execs)) {
		finish_run(run, changes);
		if (rc < 0 && (err.code == SBX_E_UNAVAILABLE || err.code == SBX_E_TIMEOUT))
			sessions_check_sandbox(srv, run->session_id);
		db_leave(srv->execs);
	} else
		abandon_run(run); /* the executor keeps the result for the next start */
	metrics_observe(srv->metrics, "sbxd_execution_seconds", NULL,
			(double)(services_mono_ms() - t0) / 1000.0);
	json_decref(changes);
	json_decref(res);
out:
	log_set_request_id(NULL);
	pthread_mutex_lock(&srv->execs->mu);
	stream_unref(run->stream);
	pthread_mutex_unlock(&srv->execs->mu);
	json_decref(run->executor);
	json_decref(run->request);
	free(run);
}

/* A runner thread: runs its first job, then parks for more until idle too long. */
static void *runner(void *arg)
{
	struct run *run = arg;
	struct server *srv = run->srv;
	struct execs *x = srv->execs;
	struct idle me = {.next = NULL};

	pthread_cond_init(&me.cv, NULL);
	services_thread_plugins(srv, 1);
	while (run) {
		struct timespec dl;
		run_one(run);
		run = NULL;
		pthread_mutex_lock(&x->mu);
		if (x->stop) {
			pthread_mutex_unlock(&x->mu);
			break;
		}
		me.job = NULL;
		me.next = x->idle;
		x->idle = &me;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += RUNNER_IDLE_MS / 1000;
		while (!me.job && !x->stop)
			if (pthread_cond_timedwait(&me.cv, &x->mu, &dl) == ETIMEDOUT)
				break;
		run = me.job;
		if (!run) { /* timed out or stopping: unpark */
			for (struct idle **pp = &x->idle; *pp; pp = &(*pp)->next)
				if (*pp == &me) {
					*pp = me.next;
					break;
				}
		}
		pthread_mutex_unlock(&x->mu);
	}
	pthread_mutex_lock(&x->mu);
	x->n_threads--;
	pthread_mutex_unlock(&x->mu);
	services_thread_plugins(srv, 0);
	pthread_cond_destroy(&me.cv);
	return NULL;
}

int execs_submit(struct server *srv, const json_t *session, const json_t *exec_rec,
		 const json_t *env, int64_t tenant_max_running, sbx_err *err)
{
	struct execs *x = srv->execs;
	const json_t *handle = json_object_get(session, "handle");
	struct run *run;
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	run = calloc(1, sizeof *run);
	if (!run)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	run->srv = srv;
	snprintf(run->id, sizeof run->id, "%s", json_string_value(json_object_get(exec_rec, "id")));
	snprintf(run->session_id, sizeof run->session_id, "%s",
		 json_string_value(json_object_get(session, "id")));
	snprintf(run->tenant, sizeof run->tenant, "%s",
		 json_string_value(json_object_get(exec_rec, "tenant")) ?: "");
	run->executor = json_incref(json_object_get(handle, "executor"));
	run->stream = calloc(1, sizeof *run->stream);
	if (run->stream)
		run->stream->refs = 1;
	run->timeout_ms = (long)json_integer_value(json_object_get(exec_rec, "timeout")) * 1000;
	run->request = json_pack("{s:s, s:O, s:O, s:I, s:O, s:O, s:I}", "id", run->id, "code",
				 json_object_get(exec_rec, "code"), "language",
				 json_object_get(exec_rec, "language"), "timeout_ms",
				 (json_int_t)run->timeout_ms, "event",
				 json_object_get(exec_rec, "event") ?: json_null(), "env", env,
				 "max_output", (json_int_t)srv->cfg.max_output);
	if (!run->executor || !run->request) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "the session has no executor address");
		goto fail;
	}
	pthread_mutex_lock(&x->mu);
	if (x->stop || x->n_running >= srv->cfg.max_running) {
		pthread_mutex_unlock(&x->mu);
		rc = sbx_err_set(err, SBX_E_LIMIT,
				 "%d executions are already running (executions.max_running)",
				 srv->cfg.max_running);
		goto fail;
	}
	if (tenant_max_running > 0) {
		int64_t mine = 0;
		for (struct run *o = x->running; o; o = o->next)
			mine += strcmp(o->tenant, run->tenant) == 0;
		if (mine >= tenant_max_running) {
			pthread_mutex_unlock(&x->mu);
			rc = sbx_err_set(err, SBX_E_LIMIT,
					 "tenant '%s' already runs %lld execution(s) (quota "
					 "max_running_executions = %lld)",
					 run->tenant, (long long)mine,
					 (long long)tenant_max_running);
			goto fail;
		}
	}
	run->next = x->running;
	x->running = run;
	x->n_running++;
	x->n_threads++; /* provisional: a thread slot, given back if an idle runner takes it */
	pthread_mutex_unlock(&x->mu);

	rc = DB(srv)->execution_insert(DBI(srv), exec_rec, err);
	if (rc < 0) {
		release_slot(run);
		goto fail;
	}
	pthread_mutex_lock(&x->mu);
	if (x->idle) {
		struct idle *w = x->idle;
		x->idle = w->next;
		x->n_threads--;
		w->job = run;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&x->mu);
		return 0;
	}
	pthread_mutex_unlock(&x->mu);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rc = pthread_create(&t, &attr, runner, run);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		json_t *c = json_pack("{s:s, s:s}", "status", "crashed", "error_message",
				      "the server could not start a thread for the execution");
		/* settle the record through the normal path (pending → running not done) */
		DB(srv)->execution_update(DBI(srv), run->id, c, "pending", NULL, err);
		json_decref(c);
		release_slot(run);
		rc = sbx_err_set(err, SBX_E_LIMIT, "cannot start an execution thread: %s",
				 strerror(rc));
		goto fail;
	}
	return 0;
fail:
	pthread_mutex_lock(&x->mu);
	stream_unref(run->stream);
	pthread_mutex_unlock(&x->mu);
	json_decref(run->executor);
	json_decref(run->request);
	free(run);
	return rc;
}

int execs_wait(struct server *srv, const char *exec_id, struct req *r, int64_t deadline)
{
	struct execs *x = srv->execs;
	struct run *run;
	struct waiter *w;

	pthread_mutex_lock(&x->mu);
	for (run = x->running; run; run = run->next)
		if (strcmp(run->id, exec_id) == 0)
			break;
	if (!run || x->stop) {
		pthread_mutex_unlock(&x->mu);
		return 0;
	}
	w = calloc(1, sizeof *w);
	if (!w) {
		pthread_mutex_unlock(&x->mu);
		return 0;
	}
	w->r = r;
	w->deadline = deadline;
	w->next = run->waiters;
	run->waiters = w;
	r->deferred = 1;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return 1;
}

/* Expire waiters past their deadline with 408. */
static void *timer_main(void *arg)
{
	struct server *srv = arg;
	struct execs *x = srv->execs;

	pthread_mutex_lock(&x->mu);
	while (!x->stop) {
		int64_t now = services_mono_ms(), next = now + 1000;
		struct waiter *expired = NULL;
		for (struct run *run = x->running; run; run = run->next) {
			struct waiter **pp = &run->waiters;
			while (*pp) {
				struct waiter *w = *pp;
				if (w->deadline <= now) {
					snprintf(w->exec_id, sizeof w->exec_id, "%s", run->id);
					*pp = w->next;
					w->next = expired;
					expired = w;
					continue;
				}
				if (w->deadline < next)
					next = w->deadline;
				pp = &w->next;
			}
		}
		if (expired) {
			pthread_mutex_unlock(&x->mu);
			while (expired) {
				struct waiter *w = expired;
				expired = w->next;
				http_reply_error(w->r, 408, "Sandbox.ExecTimeout",
						 "Raise sync_timeout, or poll GET "
						 "/api/v1/executions/{id}/result.",
						 "execution %s did not finish within sync_timeout; "
						 "it goes on: poll GET /api/v1/executions/%s",
						 w->exec_id, w->exec_id);
				http_complete(w->r);
				free(w);
			}
			pthread_mutex_lock(&x->mu);
			continue;
		}
		{
			struct timespec dl;
			int64_t wait = next - now;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += wait / 1000;
			dl.tv_nsec += (long)(wait % 1000) * 1000000L;
			if (dl.tv_nsec >= 1000000000L) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&x->cv, &x->mu, &dl);
		}
	}
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

int execs_start(struct server *srv)
{
	struct execs *x = calloc(1, sizeof *x);
	if (!x)
		return -1;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	srv->execs = x;
	if (pthread_create(&x->timer, NULL, timer_main, srv) != 0)
		return -1;
	x->timer_started = 1;
	return 0;
}

void execs_stop(struct server *srv)
{
	struct execs *x = srv->execs;
	struct waiter *all = NULL;

	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	x->stop = 1;
	for (struct run *run = x->running; run; run = run->next) {
		while (run->waiters) {
			struct waiter *w = run->waiters;
			run->waiters = w->next;
			w->next = all;
			all = w;
		}
	}
	pthread_cond_broadcast(&x->cv);
	for (struct idle *w = x->idle; w; w = w->next)
		pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&x->mu);
	while (all) {
		struct waiter *w = all;
		all = w->next;
		http_reply_error(w->r, 503, "Sandbox.Unavailable", NULL,
				 "the server is shutting down; the execution's result will be "
				 "collected after restart");
		http_complete(w->r);
		free(w);
	}
	/* Replies already being sent by runners must be queued before MHD stops. */
	pthread_mutex_lock(&x->mu);
	while (x->completing > 0 || x->db_users > 0) /* and no runner inside the db */
		pthread_cond_wait(&x->cv, &x->mu);
	pthread_mutex_unlock(&x->mu);
	if (x->timer_started)
		pthread_join(x->timer, NULL);
	/* runs still in flight keep x alive: it is freed with the process */
}

int execs_session_busy(struct server *srv, const char *session_id)
{
	struct execs *x = srv->execs;
	int busy = 0;
	pthread_mutex_lock(&x->mu);
	for (struct run *run = x->running; run && !busy; run = run->next)
		busy = strcmp(run->session_id, session_id) == 0;
	pthread_mutex_unlock(&x->mu);
	return busy;
}

void execs_session_ended(struct server *srv, const char *session_id, const char *status)
{
	/* Runs of the session end on their own: destroying the sandbox breaks their executor
	 * connection and they are recorded as crashed with the reason. */
	(void)srv;
	LOG_D("session=%s ended (%s)", session_id, status);
}

int execs_running(struct server *srv)
{
	int n;
	pthread_mutex_lock(&srv->execs->mu);
	n = srv->execs->n_running;
	pthread_mutex_unlock(&srv->execs->mu);
	return n;
}

static int owned_here(struct server *srv, const json_t *rec)
{
	return !strcmp(json_string_value(json_object_get(rec, "replica")) ?: "", srv->replica_id) &&
	       !strcmp(json_string_value(json_object_get(rec, "boot")) ?: "", srv->instance_id);
}

/* Is execution id in this process's running table? (A run is in it from before its record
 * is inserted until after its end is stored.) */
static int run_active(struct execs *x, const char *id)
{
	int found = 0;
	pthread_mutex_lock(&x->mu);
	for (struct run *r = x->running; r && !found; r = r->next)
		found = strcmp(r->id, id) == 0;
	pthread_mutex_unlock(&x->mu);
	return found;
}

int execs_recover(struct server *srv)
{
	json_t *q, *page = NULL, *it;
	size_t i, n;
	sbx_err err;
	int settled = 0, waiting = 0;
	json_int_t kept = 0; /* live ones stay in the list: the next page starts after them */
	json_t *cache = json_object();

again:
	q = json_pack("{s:[s,s], s:i, s:I}", "statuses", "pending", "running", "limit", 1000,
		      "offset", kept);
	if (DB(srv)->execution_list(DBI(srv), q, &page, &err) < 0) {
		LOG_E("recovery: cannot list executions: %s", err.message);
		json_decref(q);
		json_decref(cache);
		return waiting;
	}
	json_decref(q);
	n = json_array_size(json_object_get(page, "items"));
	json_array_foreach (json_object_get(page, "items"), i, it) {
		const char *id = json_string_value(json_object_get(it, "id"));
		const char *sid = json_string_value(json_object_get(it, "session_id"));
		const char *st = json_string_value(json_object_get(it, "status"));
		json_t *sess = NULL, *res = NULL, *changes = NULL;
		int64_t now = services_now_ms();

		/* A live process runs it and records its end — unless that is this very
		 * process and the run is no longer in its table: then recording its end
		 * failed (the db was down for longer than finish_run retries). */
		if (leases_owner_alive(srv, it, cache) &&
		    !(owned_here(srv, it) && !run_active(srv->execs, id))) {
			kept++;
			continue;
		}

		if (DB(srv)->session_get(DBI(srv), sid, &sess, &err) == 0 &&
		    sessions_is_live(sess) &&
		    exec_client_result(json_object_get(json_object_get(sess, "handle"), "executor"),
				       id, &res, &err) == 0) {
			const char *rs = json_string_value(json_object_get(res, "status"));
			if (!rs || !strcmp(rs, "running") || !strcmp(rs, "pending")) {
				/* still running in its sandbox: collected on a later pass */
				kept++;
				waiting++;
				json_decref(res);
				json_decref(sess);
				continue;
			}
			changes = result_changes(
			    res, json_integer_value(json_object_get(it, "started_at")) ?: now, now);
		}
		if (!changes)
			changes = json_pack("{s:s, s:s, s:i, s:I, s:I}", "status", "crashed",
					    "error_message",
					    "sbxd restarted while the execution was in flight and "
					    "its result could not be collected",
					    "exit_code", -1, "completed_at", (json_int_t)now,
					    "updated_at", (json_int_t)now);
		if (DB(srv)->execution_update(DBI(srv), id, changes, st, NULL, &err) == 0)
			settled++;
		json_decref(changes);
		json_decref(res);
		json_decref(sess);
	}
	json_decref(page);
	page = NULL;
	if (n == 1000 && !srv->stopping)
		goto again;
	if (settled)
		LOG_I("recovery: settled %d execution(s) left in flight by a stopped process",
		      settled);
	json_decref(cache);
	return waiting;
}
