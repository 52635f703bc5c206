/*
 * The fake core for plugin tests (see fakecore.h). core.h gives services no context
 * pointer, so the state here (data dir, metrics) is per process, guarded by one mutex;
 * that is acceptable for a test harness and is exactly what the real core does too.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/httpc.h"
#include "tests/plugins/fakecore.h"

static struct {
	pthread_once_t once;
	pthread_mutex_t lock; /* guards metrics */
	json_t *metrics;      /* "name labels-json" -> real */
	char data_dir[4096];
	struct sbx_core_api api;
} fc = {
    .once = PTHREAD_ONCE_INIT,
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

static const char *level_name(int level)
{
	switch (level) {
	case SBX_LOG_ERROR:
		return "error";
	case SBX_LOG_WARN:
		return "warn";
	case SBX_LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

__attribute__((format(printf, 3, 4))) static void fc_log(const char *who, int level,
							 const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* One write per line so lines of concurrent threads do not interleave. */
	fprintf(stderr, "[%s] %s: %s\n", who ? who : "-", level_name(level), line);
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t fc_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

static int64_t fc_monotonic_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

static int fc_random_bytes(void *buf, size_t n)
{
	return n > (size_t)INT32_MAX || RAND_bytes(buf, (int)n) != 1 ? -SBX_E_INTERNAL : 0;
}

/* Key of a metric series: name plus its labels serialised with sorted keys. */
static char *series_key(const char *name, const json_t *labels)
{
	char *lj = labels ? json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	size_t n = strlen(name) + (lj ? strlen(lj) : 0) + 2;
	char *key = malloc(n);

	if (key)
		snprintf(key, n, "%s %s", name, lj ? lj : "");
	free(lj);
	return key;
}

static void metric_record(const char *name, const json_t *labels, double value, int add)
{
	char *key = series_key(name, labels);

	if (!key)
		return;
	pthread_mutex_lock(&fc.lock);
	if (add)
		value += json_real_value(json_object_get(fc.metrics, key));
	json_object_set_new(fc.metrics, key, json_real(value));
	pthread_mutex_unlock(&fc.lock);
	free(key);
}

static void fc_counter_add(const char *name, const json_t *labels, double value)
{
	metric_record(name, labels, value, 1);
}

static void fc_gauge_set(const char *name, const json_t *labels, double value)
{
	metric_record(name, labels, value, 0);
}

static const char *fc_data_dir(void)
{
	return fc.data_dir;
}

static void init_once(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(fc.data_dir, sizeof fc.data_dir, "%s/sbx-fakecore-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fc.data_dir)) {
		fprintf(stderr, "fakecore: mkdtemp %s: %s\n", fc.data_dir, strerror(errno));
		abort();
	}
	if (httpc_global_init() != 0) {
		fprintf(stderr, "fakecore: curl_global_init failed\n");
		abort();
	}
	fc.metrics = json_object();
	fc.api = (struct sbx_core_api){
	    .size = sizeof(struct sbx_core_api),
	    .abi_major = SBX_ABI_MAJOR,
	    .abi_minor = SBX_ABI_MINOR,
	    .log = fc_log,
	    .now_ms = fc_now_ms,
	    .monotonic_ms = fc_monotonic_ms,
	    .random_bytes = fc_random_bytes,
	    .http_request = httpc_request,
	    .counter_add = fc_counter_add,
	    .gauge_set = fc_gauge_set,
	    .data_dir = fc_data_dir,
	};
}

const struct sbx_core_api *fakecore_api(void)
{
	pthread_once(&fc.once, init_once);
	return &fc.api;
}

const char *fakecore_data_dir(void)
{
	return fc.data_dir[0] ? fc.data_dir : NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void fakecore_cleanup(void)
{
	if (fc.data_dir[0])
		nftw(fc.data_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int fakecore_metric(const char *name, const json_t *labels, double *value)
{
	char *key = series_key(name, labels);
	json_t *v;
	int ret = -1;

	if (!key)
		return -1;
	pthread_mutex_lock(&fc.lock);
	v = json_object_get(fc.metrics, key);
	if (v) {
		*value = json_real_value(v);
		ret = 0;
	}
	pthread_mutex_unlock(&fc.lock);
	free(key);
	return ret;
}

void fakecore_metrics_reset(void)
{
	pthread_mutex_lock(&fc.lock);
	json_object_clear(fc.metrics);
	pthread_mutex_unlock(&fc.lock);
}

int fakecore_module_open(const char *path, unsigned kind, size_t min_size,
			 struct fakecore_module *mod, char *errbuf, size_t errlen)
{
	lt_dladvise advise = NULL;
	lt_dlhandle h = NULL;
	sbx_plugin_entry_fn entry;
	const struct sbx_plugin_header *hdr;
	int ret = -1;

	memset(mod, 0, sizeof *mod);
	if (lt_dlinit() != 0) {
		snprintf(errbuf, errlen, "lt_dlinit: %s", lt_dlerror());
		goto out;
	}
	if (lt_dladvise_init(&advise) || lt_dladvise_ext(&advise) || lt_dladvise_local(&advise)) {
		snprintf(errbuf, errlen, "lt_dladvise: %s", lt_dlerror());
		goto out;
	}
	h = lt_dlopenadvise(path, advise);
	if (!h) {
		snprintf(errbuf, errlen, "cannot open module %s: %s", path, lt_dlerror());
		goto out;
	}
	entry = (sbx_plugin_entry_fn)lt_dlsym(h, SBX_PLUGIN_ENTRY_SYMBOL);
	if (!entry) {
		snprintf(errbuf, errlen, "%s: no %s symbol", path, SBX_PLUGIN_ENTRY_SYMBOL);
		goto out;
	}
	hdr = entry();
	if (!hdr || hdr->magic != SBX_PLUGIN_MAGIC || hdr->abi_major != SBX_ABI_MAJOR ||
	    hdr->abi_minor > SBX_ABI_MINOR) {
		snprintf(errbuf, errlen, "%s: bad magic or ABI %u.%u (we speak %d.%d)", path,
			 hdr ? hdr->abi_major : 0, hdr ? hdr->abi_minor : 0, SBX_ABI_MAJOR,
			 SBX_ABI_MINOR);
		goto out;
	}
	if (hdr->kind != kind || hdr->size < min_size) {
		snprintf(errbuf, errlen, "%s: kind %u size %u, expected kind %u size >= %zu", path,
			 hdr->kind, hdr->size, kind, min_size);
		goto out;
	}
	mod->handle = h;
	mod->hdr = hdr;
	h = NULL;
	ret = 0;
out:
	if (h)
		lt_dlclose(h);
	if (advise)
		lt_dladvise_destroy(&advise);
	if (ret < 0)
		lt_dlexit();
	return ret;
}

void fakecore_module_close(struct fakecore_module *mod)
{
	if (mod->handle) {
		lt_dlclose(mod->handle);
		lt_dlexit();
	}
	memset(mod, 0, sizeof *mod);
}
