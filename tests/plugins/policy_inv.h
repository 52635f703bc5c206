/*
 * Helpers for the policy module tests: open a built policy module as the core does, script
 * node inventory entries in the shape runtimes report (runtime.h nodes, plus "runtime"),
 * and run select_node into a small result record. Header-only; each test includes it once.
 */
#ifndef SBX_TESTS_POLICY_INV_H
#define SBX_TESTS_POLICY_INV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sandbox/policy.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

/* Not every test uses every helper. */
#define POL_T_UNUSED __attribute__((unused))

/* A healthy node of runtime "rt" with `max` session slots, cpu cores and mem MiB, of which
 * `sess` sessions, ucpu cores and umem MiB are allocated. Nothing warm or cached. */
POL_T_UNUSED static json_t *node(const char *id, int max, double cpu, double mem, int sess,
				 double ucpu, double umem)
{
	json_t *n =
	    json_pack("{s:s, s:s, s:b, s:{s:f, s:f, s:i}, s:{s:f, s:f, s:i}, s:[], s:[]}", "id", id,
		      "runtime", "rt", "healthy", 1, "capacity", "cpu", cpu, "memory_mb", mem,
		      "max_sessions", max, "allocated", "cpu", ucpu, "memory_mb", umem, "sessions",
		      sess, "templates_warm", "images_cached");
	if (!n)
		abort();
	return n;
}

/* An idle node with room: 8 cores, 16 GiB, 64 slots, nothing allocated. */
POL_T_UNUSED static json_t *idle_node(const char *id)
{
	return node(id, 64, 8, 16384, 0, 0, 0);
}

POL_T_UNUSED static json_t *with_warm(json_t *n, const char *template_id)
{
	json_array_append_new(json_object_get(n, "templates_warm"), json_string(template_id));
	return n;
}

POL_T_UNUSED static json_t *with_cached(json_t *n, const char *image)
{
	json_array_append_new(json_object_get(n, "images_cached"), json_string(image));
	return n;
}

POL_T_UNUSED static json_t *with(json_t *n, const char *key, json_t *v)
{
	json_object_set_new(n, key, v);
	return n;
}

/* A placement request as core/sessions.c builds it. */
POL_T_UNUSED static json_t *request(const char *template_id, const char *image, double cpu,
				    double mem)
{
	json_t *r = json_pack("{s:s, s:s, s:s, s:{s:f, s:f, s:i, s:i}}", "session_id", "sess-t",
			      "template_id", template_id, "image", image, "resources", "cpu", cpu,
			      "memory_mb", mem, "disk_mb", 512, "max_processes", 64);
	if (!r)
		abort();
	return r;
}

/* The python-basic request used by most cases: 1 core, 512 MiB. */
POL_T_UNUSED static json_t *py_request(void)
{
	return request("python-basic", "sandbox-template-python-basic:latest", 1, 512);
}

struct pick {
	int rc;
	char node[128];
	char runtime[128];
	char reason[512];
	sbx_err err;
};

/* select_node on (req, nodes), both consumed. */
POL_T_UNUSED static struct pick run(const struct sbx_policy_plugin *p, void *inst, json_t *req,
				    json_t *nodes)
{
	struct pick k;
	json_t *choice = NULL;

	memset(&k, 0, sizeof k);
	k.rc = p->select_node(inst, req, nodes, &choice, &k.err);
	if (k.rc == 0) {
		snprintf(k.node, sizeof k.node, "%s",
			 json_string_value(json_object_get(choice, "node")) ?: "(none)");
		snprintf(k.runtime, sizeof k.runtime, "%s",
			 json_string_value(json_object_get(choice, "runtime")) ?: "(none)");
		snprintf(k.reason, sizeof k.reason, "%s",
			 json_string_value(json_object_get(choice, "reason")) ?: "");
		diag("chose %s/%s: %s", k.runtime, k.node, k.reason);
	} else {
		if (choice)
			snprintf(k.reason, sizeof k.reason, "choice set on error");
		diag("rc %d: %s", k.rc, k.err.message);
	}
	json_decref(choice);
	json_decref(req);
	json_decref(nodes);
	return k;
}

/* An instance from a JSON config text (NULL = no config group). NULL with *err on error. */
POL_T_UNUSED static void *make(const struct sbx_policy_plugin *p, const char *config, sbx_err *err)
{
	json_t *cfg = NULL;
	void *inst = NULL;

	sbx_err_clear(err);
	if (config && !(cfg = json_loads(config, 0, NULL)))
		abort();
	if (p->life.create(fakecore_api(), "pol-test", cfg, &inst, err) != 0)
		inst = NULL;
	json_decref(cfg);
	return inst;
}

/* Opens plugins/policy/<name>/policy_<name>.la under $top_builddir (or argv[1]). */
POL_T_UNUSED static const struct sbx_policy_plugin *
open_policy(int argc, char **argv, const char *name, struct fakecore_module *mod)
{
	const char *tb = getenv("top_builddir");
	char path[4096], errbuf[512];

	fakecore_api();
	if (argc > 1)
		snprintf(path, sizeof path, "%s", argv[1]);
	else
		snprintf(path, sizeof path, "%s/plugins/policy/%s/policy_%s.la", tb ? tb : ".",
			 name, name);
	if (fakecore_module_open(path, SBX_KIND_POLICY, sizeof(struct sbx_policy_plugin), mod,
				 errbuf, sizeof errbuf) != 0) {
		printf("Bail out! %s\n", errbuf);
		exit(1);
	}
	return (const struct sbx_policy_plugin *)mod->hdr;
}

#endif
