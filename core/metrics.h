/*
 * In-process metrics registry rendered as Prometheus text at /metrics.
 */
#ifndef SBXD_METRICS_H
#define SBXD_METRICS_H

#include <jansson.h>

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
/* name: a static Prometheus name; labels: borrowed object of strings or NULL. */
void metrics_counter_add(struct metrics *m, const char *name, const json_t *labels, double v);
void metrics_gauge_set(struct metrics *m, const char *name, const json_t *labels, double v);
/* Observe a latency in seconds into a fixed-bucket histogram. */
void metrics_observe(struct metrics *m, const char *name, const json_t *labels, double v);
/* Prometheus text exposition; malloc'd. */
char *metrics_render(struct metrics *m);

#endif
