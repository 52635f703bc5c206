/*
 * Metrics: a mutex-protected list of series keyed by name + rendered label set. Small
 * cardinality by construction (labels are routes, statuses and plugin names, never ids).
 */
#include "config.h"

#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define NB 12
static const double bounds[NB] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				  0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

enum mtype { M_COUNTER, M_GAUGE, M_HIST };

struct series {
	struct series *next;
	enum mtype type;
	const char *name;
	char *labels; /* `a="x",b="y"` */
	double value; /* counter/gauge; histogram sum */
	double count;
	double buckets[NB];
};

struct metrics {
	pthread_mutex_t mu;
	struct series *head;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof *m);
	if (m)
		pthread_mutex_init(&m->mu, NULL);
	return m;
}

void metrics_free(struct metrics *m)
{
	struct series *s, *n;
	if (!m)
		return;
	for (s = m->head; s; s = n) {
		n = s->next;
		free(s->labels);
		free(s);
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static void render_labels(const json_t *labels, char *out, size_t len)
{
	const char *k;
	json_t *v;
	size_t used = 0;

	out[0] = '\0';
	if (!json_is_object(labels))
		return;
	json_object_foreach ((json_t *)labels, k, v) {
		const char *s = json_string_value(v);
		int n;
		if (!s)
			continue;
		n = snprintf(out + used, len - used, "%s%s=\"", used ? "," : "", k);
		if (n < 0 || (size_t)n >= len - used)
			return;
		used += (size_t)n;
		for (; *s && used + 3 < len; s++) {
			if (*s == '"' || *s == '\\')
				out[used++] = '\\';
			if (*s == '\n') {
				out[used++] = '\\';
				out[used++] = 'n';
				continue;
			}
			out[used++] = *s;
		}
		if (used + 2 >= len)
			return;
		out[used++] = '"';
		out[used] = '\0';
	}
}

static struct series *find(struct metrics *m, enum mtype t, const char *name, const json_t *labels)
{
	char lb[512];
	struct series *s;

	render_labels(labels, lb, sizeof lb);
	for (s = m->head; s; s = s->next)
		if (s->type == t && strcmp(s->name, name) == 0 && strcmp(s->labels, lb) == 0)
			return s;
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->type = t;
	s->name = name;
	s->labels = strdup(lb);
	if (!s->labels) {
		free(s);
		return NULL;
	}
	s->next = m->head;
	m->head = s;
	return s;
}

void metrics_counter_add(struct metrics *m, const char *name, const json_t *labels, double v)
{
	struct series *s;
	pthread_mutex_lock(&m->mu);
	if ((s = find(m, M_COUNTER, name, labels)))
		s->value += v;
	pthread_mutex_unlock(&m->mu);
}

void metrics_gauge_set(struct metrics *m, const char *name, const json_t *labels, double v)
{
	struct series *s;
	pthread_mutex_lock(&m->mu);
	if ((s = find(m, M_GAUGE, name, labels)))
		s->value = v;
	pthread_mutex_unlock(&m->mu);
}

void metrics_observe(struct metrics *m, const char *name, const json_t *labels, double v)
{
	struct series *s;
	pthread_mutex_lock(&m->mu);
	if ((s = find(m, M_HIST, name, labels))) {
		s->value += v;
		s->count += 1;
		for (int i = 0; i < NB; i++)
			if (v <= bounds[i])
				s->buckets[i] += 1;
	}
	pthread_mutex_unlock(&m->mu);
}

struct buf {
	char *p;
	size_t len, cap;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap ? b->cap * 2 : 4096;
		while (ncap < b->len + (size_t)n + 1)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (!np)
			return;
		b->p = np;
		b->cap = ncap;
	}
}

static const char *type_name(enum mtype t)
{
	return t == M_COUNTER ? "counter" : t == M_GAUGE ? "gauge" : "histogram";
}

char *metrics_render(struct metrics *m)
{
	struct buf b = {0};
	struct series *s, *t;

	bprintf(&b, "%s", "");
	pthread_mutex_lock(&m->mu);
	for (s = m->head; s; s = s->next) {
		/* print TYPE once: only at the first series of each name */
		for (t = m->head; t != s; t = t->next)
			if (strcmp(t->name, s->name) == 0)
				break;
		if (t == s)
			bprintf(&b, "# TYPE %s %s\n", s->name, type_name(s->type));
	}
	for (s = m->head; s; s = s->next) {
		const char *sep = s->labels[0] ? "," : "";
		if (s->type != M_HIST) {
			bprintf(&b, "%s%s%s%s %.17g\n", s->name, s->labels[0] ? "{" : "", s->labels,
				s->labels[0] ? "}" : "", s->value);
			continue;
		}
		for (int i = 0; i < NB; i++)
			bprintf(&b, "%s_bucket{%s%sle=\"%g\"} %.17g\n", s->name, s->labels, sep,
				bounds[i], s->buckets[i]);
		bprintf(&b, "%s_bucket{%s%sle=\"+Inf\"} %.17g\n", s->name, s->labels, sep,
			s->count);
		bprintf(&b, "%s_sum%s%s%s %.17g\n", s->name, s->labels[0] ? "{" : "", s->labels,
			s->labels[0] ? "}" : "", s->value);
		bprintf(&b, "%s_count%s%s%s %.17g\n", s->name, s->labels[0] ? "{" : "", s->labels,
			s->labels[0] ? "}" : "", s->count);
	}
	pthread_mutex_unlock(&m->mu);
	return b.p;
}
