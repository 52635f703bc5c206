/*
 * A fake core for plugin unit tests: a complete struct sbx_core_api (logging to stderr,
 * clocks, OpenSSL random bytes, in-memory metrics, the real libcurl http client, a
 * temporary data directory) and a loader that opens a built module as sbxd would.
 */
#ifndef SBX_TESTS_FAKECORE_H
#define SBX_TESTS_FAKECORE_H

#include <ltdl.h>

#include <sandbox/core.h>

/*
 * The services table. The first call creates a fresh data directory under $TMPDIR (or
 * /tmp) and initialises libcurl; call it on the main thread before starting threads.
 * The table has no context pointer (core.h), so the fake core is one per process.
 */
const struct sbx_core_api *fakecore_api(void);

/* The data directory handed out by data_dir(); NULL before fakecore_api(). */
const char *fakecore_data_dir(void);

/* Removes the data directory recursively (best effort). */
void fakecore_cleanup(void);

/*
 * Metrics recorded so far: the sum of counter_add calls, or the last gauge_set value, for
 * `name` with exactly `labels` (NULL = no labels). Returns 0 and sets *value, or -1 when
 * nothing was recorded under that name and labels. Any thread.
 */
int fakecore_metric(const char *name, const json_t *labels, double *value);

/* Forgets every recorded metric. */
void fakecore_metrics_reset(void);

/* A module opened through libltdl with its header checked like the core checks it. */
struct fakecore_module {
	lt_dlhandle handle;
	const struct sbx_plugin_header *hdr; /* the module's static descriptor */
};

/*
 * Opens `path` (a .la, a .so, or a path without extension: lt_dlopenext rules, symbols
 * kept local like the core does), calls sbx_plugin_entry and checks magic, ABI major,
 * minor <= ours, `kind` and that hdr.size covers at least `min_size` bytes.
 * Returns 0, or -1 with a message in errbuf.
 */
int fakecore_module_open(const char *path, unsigned kind, size_t min_size,
			 struct fakecore_module *mod, char *errbuf, size_t errlen);
void fakecore_module_close(struct fakecore_module *mod);

#endif
