/*
 * A fixed pool of worker threads fed from one FIFO queue. Each worker calls every plugin
 * instance's thread_init before its first job and thread_fini after its last.
 */
#ifndef SBXD_POOL_H
#define SBXD_POOL_H

struct pool;
typedef void (*pool_fn)(void *arg);

/* thread_hook(hook_arg, 1) on start and (hook_arg, 0) on exit of each worker. */
struct pool *pool_new(int n, void (*thread_hook)(void *, int), void *hook_arg);
/* 0, or -1 when the pool is stopping. */
int pool_submit(struct pool *p, pool_fn fn, void *arg);
/* Runs every queued job, then joins the workers. */
void pool_free(struct pool *p);
int pool_queued(struct pool *p);

#endif
