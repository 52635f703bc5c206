/*
 * The reaper thread: waits for every child of the executor (handlers, the zygote, the idle
 * node, and the orphans re-parented to it as PID 1 or subreaper) so no zombie stays, and
 * reports the exit status and rusage of the few children a runner (or an archive's tar)
 * watches.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executor.h"

/* call with c->lock held, before the child can possibly be reaped (i.e. around fork) */
int reaper_watch(struct ctx *c, pid_t pid)
{
	for (int i = 0; i < EXEC_WATCH_MAX; i++) {
		if (c->watches[i].pid == 0) {
			memset(&c->watches[i], 0, sizeof(c->watches[i]));
			c->watches[i].pid = pid;
			return i;
		}
	}
	return -1;
}

void reaper_unwatch(struct ctx *c, pid_t pid)
{
	for (int i = 0; i < EXEC_WATCH_MAX; i++)
		if (c->watches[i].pid == pid)
			c->watches[i].pid = 0;
}

/* whether the watched pid's exit was recorded (then it is reaped and its pid may be reused) */
int reaper_reported(struct ctx *c, pid_t pid)
{
	for (int i = 0; i < EXEC_WATCH_MAX; i++)
		if (c->watches[i].pid == pid && c->watches[i].done)
			return 1;
	return 0;
}

int reaper_take(struct ctx *c, pid_t pid, int *status)
{
	for (int i = 0; i < EXEC_WATCH_MAX; i++) {
		if (c->watches[i].pid == pid && c->watches[i].done) {
			*status = c->watches[i].status;
			c->watches[i].pid = 0;
			return 1;
		}
	}
	return 0;
}

void *reaper_thread(void *arg)
{
	struct ctx *c = arg;
	struct rusage ru;
	struct timespec ts;
	pid_t pid;
	int st;

	for (;;) {
		pid = wait4(-1, &st, __WALL, &ru);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			/* ECHILD: sleep until something is spawned (or a second passes) */
			pthread_mutex_lock(&c->lock);
			if (!c->children) {
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += 1;
				pthread_cond_timedwait(&c->reap_cond, &c->lock, &ts);
			}
			c->children = 0;
			pthread_mutex_unlock(&c->lock);
			continue;
		}
		pthread_mutex_lock(&c->lock);
		if (pid == c->py.pid)
			c->py.pid = 0;
		if (pid == c->js.pid)
			c->js.pid = 0; /* the idle node exited unused; idlenode_spawn cleans up */
		for (int i = 0; i < EXEC_WATCH_MAX; i++) {
			if (c->watches[i].pid == pid && !c->watches[i].done) {
				c->watches[i].done = 1;
				c->watches[i].status = st;
				c->watches[i].ru = ru;
				if (write(c->wake_w, "x", 1) < 0) {
					/* pipe full: the runner is already due to look */
				}
				pthread_cond_broadcast(&c->watch_cond);
			}
		}
		pthread_mutex_unlock(&c->lock);
	}
	return NULL;
}
