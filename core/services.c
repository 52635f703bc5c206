/*
 * Core services for modules. The ABI's callbacks carry no context argument, so the one
 * server they refer to is kept in a file-scope pointer set once before any module runs.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "services.h"

static struct server *the_server;

int64_t services_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t services_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int services_random(void *buf, size_t n)
{
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

void services_new_id(const char *prefix, char *out, size_t len)
{
	unsigned char r[12];
	size_t p;

	if (services_random(r, sizeof r) < 0)
		memset(r, 0, sizeof r);
	p = (size_t)snprintf(out, len, "%s", prefix);
	for (size_t i = 0; i < sizeof r && p + 2 < len; i++, p += 2)
		snprintf(out + p, len - p, "%02x", r[i]);
}

int services_set_token(json_t *spec)
{
	unsigned char r[16];
	char hex[2 * sizeof r + 1];

	if (services_random(r, sizeof r) < 0)
		return -1;
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	return json_object_set_new(spec, "executor_token", json_string(hex));
}

json_t *services_iso(json_t *ms)
{
	char buf[96];
	struct tm tm;
	time_t s;
	json_int_t v;

	if (!json_is_integer(ms) || (v = json_integer_value(ms)) <= 0)
		return json_null();
	s = (time_t)(v / 1000);
	gmtime_r(&s, &tm);
	snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(v % 1000));
	return json_string(buf);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
api_log(const char *who, int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, who, fmt, ap);
	va_end(ap);
}

static void api_counter(const char *name, const json_t *labels, double v)
{
	metrics_counter_add(the_server->metrics, name, labels, v);
}

static void api_gauge(const char *name, const json_t *labels, double v)
{
	metrics_gauge_set(the_server->metrics, name, labels, v);
}

static const char *api_data_dir(void)
{
	return the_server->cfg.data_dir;
}

void services_init(struct server *srv)
{
	the_server = srv;
	memset(&srv->api, 0, sizeof srv->api);
	srv->api.size = sizeof srv->api;
	srv->api.abi_major = SBX_ABI_MAJOR;
	srv->api.abi_minor = SBX_ABI_MINOR;
	srv->api.log = api_log;
	srv->api.now_ms = services_now_ms;
	srv->api.monotonic_ms = services_mono_ms;
	srv->api.random_bytes = services_random;
	srv->api.http_request = httpc_request;
	srv->api.counter_add = api_counter;
	srv->api.gauge_set = api_gauge;
	srv->api.data_dir = api_data_dir;
}

struct plugin *server_runtime(struct server *srv, const char *instance)
{
	if (!instance)
		return NULL;
	for (size_t i = 0; i < srv->n_runtimes; i++)
		if (strcmp(srv->runtimes[i]->spec->name, instance) == 0)
			return srv->runtimes[i];
	return NULL;
}

void services_thread_plugins(struct server *srv, int init)
{
	for (size_t i = 0; i < srv->n_plugins; i++) {
		const struct sbx_plugin *d = srv->plugins[i].d.any;
		if (!srv->plugins[i].inst)
			continue;
		if (init && d->life.thread_init)
			d->life.thread_init(srv->plugins[i].inst);
		else if (!init && d->life.thread_fini)
			d->life.thread_fini(srv->plugins[i].inst);
	}
}
