/*
 * Executions by id: the bounded FIFO queue served by the single worker thread, the ring of
 * the last finished results (bounded in count and bytes), and each execution's NDJSON
 * stream buffer read by the POST /execute response.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>

#include "executor.h"

struct execution *registry_new(void)
{
	struct execution *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	pthread_cond_init(&e->cond, NULL);
	e->refs = 1;
	return e;
}

static void put_locked(struct execution *e)
{
	if (--e->refs > 0)
		return;
	free(e->code);
	json_decref(e->event);
	json_decref(e->env);
	json_decref(e->session_id);
	json_decref(e->result);
	free(e->stream);
	pthread_cond_destroy(&e->cond);
	free(e);
}

void registry_put(struct ctx *c, struct execution *e)
{
	pthread_mutex_lock(&c->lock);
	put_locked(e);
	pthread_mutex_unlock(&c->lock);
}

static struct execution *find_locked(struct ctx *c, const char *id)
{
	struct execution *e;

	if (c->running && strcmp(c->running->id, id) == 0)
		return c->running;
	for (e = c->queue_head; e; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	for (size_t i = 0; i < EXEC_RETAIN_MAX; i++)
		if (c->retained[i] && strcmp(c->retained[i]->id, id) == 0)
			return c->retained[i];
	return NULL;
}

int registry_submit(struct ctx *c, struct execution *e)
{
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	if (c->stopping) {
		rc = 503;
		goto out;
	}
	if (!e->id[0])
		snprintf(e->id, sizeof(e->id), "e-%d-%lu", (int)c->self, ++c->id_counter);
	if (find_locked(c, e->id)) {
		rc = 409;
		goto out;
	}
	if (c->queued >= EXEC_QUEUE_MAX) {
		rc = 429;
		goto out;
	}
	e->state = ST_QUEUED;
	e->refs++;
	if (c->queue_tail)
		c->queue_tail->next = e;
	else
		c->queue_head = e;
	c->queue_tail = e;
	c->queued++;
	pthread_cond_signal(&c->queue_cond);
out:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

char *registry_describe(struct ctx *c, const char *id)
{
	struct execution *e;
	char *s = NULL;

	pthread_mutex_lock(&c->lock);
	e = find_locked(c, id);
	if (e && e->state == ST_DONE && e->result)
		s = json_dumps(e->result, JSON_COMPACT);
	else if (e) {
		json_t *j = json_pack("{s:s, s:s}", "id", e->id, "status",
				      e->state == ST_RUNNING ? "running" : "pending");
		s = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	pthread_mutex_unlock(&c->lock);
	return s;
}

/* call with c->lock held */
static void stream_append(struct execution *e, const char *s, size_t n)
{
	size_t want = e->stream_len + n;
	char *nb;

	if (want > e->stream_cap) {
		size_t cap = e->stream_cap ? e->stream_cap : 4096;
		while (cap < want)
			cap *= 2;
		nb = realloc(e->stream, cap);
		if (!nb)
			return; /* the line is lost, the result still arrives */
		e->stream = nb;
		e->stream_cap = cap;
	}
	memcpy(e->stream + e->stream_len, s, n);
	e->stream_len += n;
}

void registry_emit(struct ctx *c, struct execution *e, json_t *event)
{
	char *s;

	if (!event)
		return;
	s = json_dumps(event, JSON_COMPACT);
	json_decref(event);
	if (!s)
		return;
	pthread_mutex_lock(&c->lock);
	if (e->readers > 0) {
		stream_append(e, s, strlen(s));
		stream_append(e, "\n", 1);
		pthread_cond_broadcast(&e->cond);
	}
	pthread_mutex_unlock(&c->lock);
	free(s);
}

ssize_t registry_stream_read(struct ctx *c, struct execution *e, uint64_t pos, char *buf,
			     size_t max)
{
	ssize_t n;

	pthread_mutex_lock(&c->lock);
	while (pos >= e->stream_len && e->state != ST_DONE && !c->stopping)
		pthread_cond_wait(&e->cond, &c->lock);
	if (pos < e->stream_len) {
		n = (ssize_t)(e->stream_len - pos < max ? e->stream_len - pos : max);
		memcpy(buf, e->stream + pos, (size_t)n);
	} else {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	}
	pthread_mutex_unlock(&c->lock);
	return n;
}

void registry_stream_close(struct ctx *c, struct execution *e)
{
	pthread_mutex_lock(&c->lock);
	if (--e->readers == 0) {
		free(e->stream);
		e->stream = NULL;
		e->stream_len = e->stream_cap = 0;
	}
	put_locked(e);
	pthread_mutex_unlock(&c->lock);
}

/* call with c->lock held: keep e, forget the oldest beyond the count and byte budgets */
static void retain_locked(struct ctx *c, struct execution *e)
{
	struct execution *old = c->retained[c->retained_next];

	if (old) {
		c->retained_bytes -= old->result_bytes;
		put_locked(old);
	}
	c->retained[c->retained_next] = e;
	c->retained_bytes += e->result_bytes;
	c->retained_next = (c->retained_next + 1) % EXEC_RETAIN_MAX;
	for (size_t i = 1; i < EXEC_RETAIN_MAX && c->retained_bytes > EXEC_RETAIN_BYTES; i++) {
		size_t k = (c->retained_next + i - 1) % EXEC_RETAIN_MAX;
		old = c->retained[k];
		if (!old || old == e)
			continue;
		c->retained_bytes -= old->result_bytes;
		c->retained[k] = NULL;
		put_locked(old);
	}
}

static const char *lang_name(enum lang l)
{
	return l == LANG_PYTHON ? "python" : l == LANG_JAVASCRIPT ? "javascript" : "shell";
}

void *registry_worker(void *arg)
{
	struct ctx *c = arg;
	struct execution *e;
	json_t *ev;
	char *line;

	for (;;) {
		pthread_mutex_lock(&c->lock);
		while (!c->queue_head)
			pthread_cond_wait(&c->queue_cond, &c->lock);
		e = c->queue_head;
		c->queue_head = e->next;
		if (!c->queue_head)
			c->queue_tail = NULL;
		e->next = NULL;
		c->queued--;
		c->running = e;
		e->state = ST_RUNNING;
		pthread_mutex_unlock(&c->lock);

		run_execution(c, e);

		ev = json_copy(e->result);
		json_object_set_new(ev, "type", json_string("result"));
		line = json_dumps(ev, JSON_COMPACT);
		json_decref(ev);
		pthread_mutex_lock(&c->lock);
		e->result_bytes = line ? strlen(line) : 0;
		if (line && e->readers > 0) {
			stream_append(e, line, strlen(line));
			stream_append(e, "\n", 1);
		}
		e->state = ST_DONE;
		c->running = NULL;
		retain_locked(c, e); /* takes over the queue's reference */
		pthread_cond_broadcast(&e->cond);
		fprintf(stderr,
			"sbx-executor: execution id=%s lang=%s status=%s duration_ms=%.1f "
			"artifacts=%zu artifacts_ms=%.2f\n",
			e->id, lang_name(e->lang),
			json_string_value(json_object_get(e->result, "status")),
			json_number_value(
			    json_object_get(json_object_get(e->result, "metrics"), "duration_ms")),
			json_array_size(json_object_get(e->result, "artifacts")), e->artifacts_ms);
		pthread_mutex_unlock(&c->lock);
		free(line);
	}
	return NULL;
}
