/*
 * Loading plugin modules with libltdl and vetting their descriptors against ABI 1.0
 * (magic, major ==, minor <=, size, kind, mandatory methods).
 */
#ifndef SBXD_LOADER_H
#define SBXD_LOADER_H

#include <stddef.h>

#include <ltdl.h>

#include <sandbox/auth.h>
#include <sandbox/db.h>
#include <sandbox/policy.h>
#include <sandbox/runtime.h>
#include <sandbox/storage.h>

#include "conf.h"

struct plugin {
	const struct plugin_spec *spec;
	char *path; /* the file actually loaded */
	lt_dlhandle dl;
	union {
		const struct sbx_plugin *any;
		const struct sbx_runtime_plugin *runtime;
		const struct sbx_storage_plugin *storage;
		const struct sbx_policy_plugin *policy;
		const struct sbx_auth_plugin *auth;
		const struct sbx_db_plugin *db;
	} d;
	void *inst; /* from create(), NULL until then */
	int started;
};

int loader_init(void);
void loader_exit(void);

/*
 * Check a descriptor as the core would before using it. `want_kind` is the configured
 * kind. Returns 0, or -1 with a reason a plugin author can act on written to `reason`.
 */
int loader_vet(const struct sbx_plugin_header *h, int want_kind, char *reason, size_t len);

/* Open and vet the module for spec (searching plugins_dir unless spec->path is set).
 * On error returns -1 and writes "plugin 'NAME' (PATH): REASON" to msg. */
int loader_open(const struct plugin_spec *spec, const char *plugins_dir, struct plugin *out,
		char *msg, size_t len);
void loader_close(struct plugin *p);

#endif
