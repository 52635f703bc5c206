/*
 * Background loops (loops.h): one thread each, woken by its interval, a kick or stop.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "loops.h"
#include "services.h"

struct loop {
	struct server *srv;
	char name[32];
	int interval_ms, delay_ms;
	loop_fn fn;
	void *arg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, kicked;
	int64_t kick_at; /* CLOCK_MONOTONIC ms of a delayed kick, 0 if none */
};

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Sleeps up to ms, or until kicked, a delayed kick falls due, or stopped; called and
 * returns with l->mu held. */
static void wait_ms(struct loop *l, int ms)
{
	int64_t until = mono_ms() + ms;

	while (!l->stop && !l->kicked) {
		int64_t due = l->kick_at && l->kick_at < until ? l->kick_at : until;
		struct timespec dl = {.tv_sec = due / 1000, .tv_nsec = (due % 1000) * 1000000L};
		/* CLOCK_MONOTONIC condvar: a wall-clock step must not stall or spin a loop */
		if (mono_ms() >= due || pthread_cond_timedwait(&l->cv, &l->mu, &dl) == ETIMEDOUT) {
			if (mono_ms() >= due)
				break;
		}
	}
	l->kick_at = 0;
}

static void *loop_main(void *arg)
{
	struct loop *l = arg;

	services_thread_plugins(l->srv, 1);
	pthread_mutex_lock(&l->mu);
	if (l->delay_ms > 0)
		wait_ms(l, l->delay_ms);
	while (!l->stop) {
		l->kicked = 0;
		pthread_mutex_unlock(&l->mu);
		l->fn(l->srv, l->arg);
		pthread_mutex_lock(&l->mu);
		wait_ms(l, l->interval_ms);
	}
	pthread_mutex_unlock(&l->mu);
	services_thread_plugins(l->srv, 0);
	return NULL;
}

struct loop *loop_start(struct server *srv, const char *name, int interval_ms, int first_delay_ms,
			loop_fn fn, void *arg)
{
	struct loop *l = calloc(1, sizeof *l);
	pthread_condattr_t ca;

	if (!l)
		return NULL;
	l->srv = srv;
	snprintf(l->name, sizeof l->name, "%s", name);
	l->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	l->delay_ms = first_delay_ms;
	l->fn = fn;
	l->arg = arg;
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
		LOG_E("cannot start the %s loop: %s", name, strerror(errno));
		pthread_cond_destroy(&l->cv);
		pthread_mutex_destroy(&l->mu);
		free(l);
		return NULL;
	}
	return l;
}

void loop_kick(struct loop *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->kicked = 1;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void loop_kick_in(struct loop *l, int ms)
{
	int64_t at = mono_ms() + ms;

	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	if (!l->kick_at || at < l->kick_at) {
		l->kick_at = at;
		pthread_cond_signal(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
}

void loop_stop(struct loop *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}
