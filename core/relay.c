/*
 * Bounded relay: a ring buffer under one mutex with two condition variables. The MHD side
 * never blocks: it suspends its connection and is resumed by the other side.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

struct relay {
	pthread_mutex_t mu;
	pthread_cond_t can_read, can_write;
	char *buf;
	size_t cap, head, len; /* ring: data at [head, head+len) mod cap */
	int closed, error, aborted;
	int refs;
	struct MHD_Connection *parked;        /* an MHD reader waiting for data */
	struct MHD_Connection *parked_writer; /* an MHD producer waiting for space */
};

struct relay *relay_new(size_t cap)
{
	struct relay *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->buf = malloc(cap);
	if (!r->buf) {
		free(r);
		return NULL;
	}
	r->cap = cap;
	r->refs = 2;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->can_read, NULL);
	pthread_cond_init(&r->can_write, NULL);
	return r;
}

void relay_unref(struct relay *r)
{
	int last;

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	last = --r->refs == 0;
	pthread_mutex_unlock(&r->mu);
	if (!last)
		return;
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->can_read);
	pthread_cond_destroy(&r->can_write);
	free(r->buf);
	free(r);
}

/* Caller holds r->mu. */
static void wake_reader(struct relay *r)
{
	pthread_cond_signal(&r->can_read);
	if (r->parked) {
		MHD_resume_connection(r->parked);
		r->parked = NULL;
	}
}

int relay_write(struct relay *r, const void *data, size_t len)
{
	const char *p = data;

	pthread_mutex_lock(&r->mu);
	while (len > 0) {
		size_t tail, n;
		while (r->len == r->cap && !r->aborted)
			pthread_cond_wait(&r->can_write, &r->mu);
		if (r->aborted) {
			pthread_mutex_unlock(&r->mu);
			return -1;
		}
		tail = (r->head + r->len) % r->cap;
		n = r->cap - r->len;
		if (n > r->cap - tail)
			n = r->cap - tail;
		if (n > len)
			n = len;
		memcpy(r->buf + tail, p, n);
		r->len += n;
		p += n;
		len -= n;
		wake_reader(r);
	}
	pthread_mutex_unlock(&r->mu);
	return 0;
}

void relay_close(struct relay *r, int error)
{
	pthread_mutex_lock(&r->mu);
	r->closed = 1;
	r->error = r->error || error; /* a clean close after a failed one stays failed */
	wake_reader(r);
	pthread_mutex_unlock(&r->mu);
}

/* Caller holds r->mu and r->len > 0. */
static size_t take(struct relay *r, char *out, size_t cap)
{
	size_t n = r->len < cap ? r->len : cap, first = r->cap - r->head;

	if (first > n)
		first = n;
	memcpy(out, r->buf + r->head, first);
	memcpy(out + first, r->buf, n - first);
	r->head = (r->head + n) % r->cap;
	r->len -= n;
	pthread_cond_signal(&r->can_write);
	if (r->parked_writer && r->cap - r->len >= r->cap / 2) {
		MHD_resume_connection(r->parked_writer);
		r->parked_writer = NULL;
	}
	return n;
}

long relay_read(struct relay *r, void *buf, size_t cap)
{
	long n;

	pthread_mutex_lock(&r->mu);
	while (r->len == 0 && !r->closed && !r->aborted)
		pthread_cond_wait(&r->can_read, &r->mu);
	if (r->len > 0)
		n = (long)take(r, buf, cap);
	else
		n = (r->aborted || r->error) ? -1 : 0;
	pthread_mutex_unlock(&r->mu);
	return n;
}

void relay_abort(struct relay *r)
{
	pthread_mutex_lock(&r->mu);
	r->aborted = 1;
	if (r->parked_writer) {
		MHD_resume_connection(r->parked_writer);
		r->parked_writer = NULL;
	}
	pthread_cond_broadcast(&r->can_write);
	pthread_cond_broadcast(&r->can_read);
	pthread_mutex_unlock(&r->mu);
}

ssize_t relay_mhd_read(struct relay *r, struct MHD_Connection *conn, char *buf, size_t max)
{
	ssize_t n;

	pthread_mutex_lock(&r->mu);
	if (r->len > 0)
		n = (ssize_t)take(r, buf, max);
	else if (r->closed || r->aborted)
		n = (r->error || r->aborted) ? MHD_CONTENT_READER_END_WITH_ERROR
					     : MHD_CONTENT_READER_END_OF_STREAM;
	else {
		r->parked = conn;
		MHD_suspend_connection(conn);
		n = 0;
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

size_t relay_space(struct relay *r)
{
	size_t n;
	pthread_mutex_lock(&r->mu);
	n = r->cap - r->len;
	pthread_mutex_unlock(&r->mu);
	return n;
}

int relay_aborted(struct relay *r)
{
	int a;
	pthread_mutex_lock(&r->mu);
	a = r->aborted;
	pthread_mutex_unlock(&r->mu);
	return a;
}

int relay_mhd_park_writer(struct relay *r, struct MHD_Connection *conn, size_t want)
{
	int parked = 0;

	pthread_mutex_lock(&r->mu);
	if (!r->aborted && r->cap - r->len < want) {
		r->parked_writer = conn;
		MHD_suspend_connection(conn);
		parked = 1;
	}
	pthread_mutex_unlock(&r->mu);
	return parked;
}

int relay_write_fn(void *ctx, const void *data, size_t len)
{
	return relay_write(ctx, data, len);
}

long relay_read_fn(void *ctx, void *buf, size_t cap)
{
	return relay_read(ctx, buf, cap);
}
