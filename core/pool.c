/*
 * Worker pool: the only threads that call plugins on behalf of HTTP requests. The queue is
 * unbounded in length but every entry is a request that already passed MHD's connection
 * limit, so its size is bounded by max_connections.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "pool.h"

struct job {
	struct job *next;
	pool_fn fn;
	void *arg;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	int queued;
	int stopping;
	int n;
	pthread_t *threads;
	void (*hook)(void *, int);
	void *hook_arg;
};

static void *worker(void *arg)
{
	struct pool *p = arg;

	if (p->hook)
		p->hook(p->hook_arg, 1);
	for (;;) {
		struct job *j;
		pthread_mutex_lock(&p->mu);
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		j = p->head;
		if (!j) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		pthread_mutex_unlock(&p->mu);
		j->fn(j->arg);
		free(j);
	}
	if (p->hook)
		p->hook(p->hook_arg, 0);
	return NULL;
}

struct pool *pool_new(int n, void (*thread_hook)(void *, int), void *hook_arg)
{
	struct pool *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->hook = thread_hook;
	p->hook_arg = hook_arg;
	p->threads = calloc((size_t)n, sizeof *p->threads);
	if (!p->threads) {
		free(p);
		return NULL;
	}
	for (p->n = 0; p->n < n; p->n++)
		if (pthread_create(&p->threads[p->n], NULL, worker, p) != 0)
			break;
	if (p->n == 0) {
		free(p->threads);
		free(p);
		return NULL;
	}
	return p;
}

int pool_submit(struct pool *p, pool_fn fn, void *arg)
{
	struct job *j = malloc(sizeof *j);

	if (!j)
		return -1;
	j->fn = fn;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		pthread_mutex_unlock(&p->mu);
		free(j);
		return -1;
	}
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int pool_queued(struct pool *p)
{
	int q;
	pthread_mutex_lock(&p->mu);
	q = p->queued;
	pthread_mutex_unlock(&p->mu);
	return q;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
