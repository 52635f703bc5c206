/*
 * Sessions: the only place that creates or destroys sandboxes on a client's behalf, and
 * the reaper that enforces session timeouts. State transitions go through conditional db
 * updates so that a terminate racing the reaper (or another replica) happens once.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive.h"
#include "execs.h"
#include "leases.h"
#include "log.h"
#include "loops.h"
#include "metrics.h"
#include "model.h"
#include "services.h"
#include "quotas.h"
#include "sessions.h"
#include "warm.h"

struct sessions_svc {
	int64_t expired_at; /* monotonic ms of the last archive retention pass */
	struct loop *reaper;
};

#define DB(srv)  ((srv)->db->d.db)
#define DBI(srv) ((srv)->db->inst)

int sessions_is_live(const json_t *rec)
{
	const char *s = json_string_value(json_object_get(rec, "status"));
	return s && (strcmp(s, "running") == 0 || strcmp(s, "creating") == 0);
}

int sessions_get(struct server *srv, const char *tenant, int admin, const char *id, json_t **rec,
		 sbx_err *err)
{
	json_t *r = NULL;
	int rc;

	*rec = NULL;
	if (!model_valid_id(id))
		return sbx_err_set(err, SBX_E_NOTFOUND, "session '%.64s' not found", id);
	rc = DB(srv)->session_get(DBI(srv), id, &r, err);
	if (rc < 0) {
		if (-rc == SBX_E_NOTFOUND)
			sbx_err_set(err, SBX_E_NOTFOUND, "session '%s' not found", id);
		return rc;
	}
	if (!admin && strcmp(json_string_value(json_object_get(r, "tenant")) ?: "", tenant) != 0) {
		json_decref(r);
		return sbx_err_set(err, SBX_E_NOTFOUND, "session '%s' not found", id);
	}
	*rec = r;
	return 0;
}

int templates_get(struct server *srv, const char *tenant, int admin, const char *id, json_t **t,
		  sbx_err *err)
{
	json_t *r = NULL;
	const char *owner;
	int rc;

	*t = NULL;
	if (!model_valid_id(id))
		return sbx_err_set(err, SBX_E_NOTFOUND, "template '%.64s' not found", id);
	rc = DB(srv)->template_get(DBI(srv), id, &r, err);
	if (rc < 0) {
		if (-rc == SBX_E_NOTFOUND)
			sbx_err_set(err, SBX_E_NOTFOUND, "template '%s' not found", id);
		return rc;
	}
	owner = json_string_value(json_object_get(r, "tenant"));
	if (owner && !admin && strcmp(owner, tenant) != 0) {
		json_decref(r);
		return sbx_err_set(err, SBX_E_NOTFOUND, "template '%s' not found", id);
	}
	*t = r;
	return 0;
}

static const char *const runtime_types[] = {
    "python3.11", "python3.12", "python3", "python", "nodejs20", "nodejs18", "nodejs22",
    "nodejs",     "java17",     "go1.21",  "shell",  "bash",     NULL};

int templates_validate(const json_t *b, int partial, sbx_err *err)
{
	static const struct {
		const char *k;
		double lo, hi;
	} nums[] = {{"default_cpu_cores", 0.01, 64}, {"default_memory_mb", 16, 65536},
		    {"default_disk_mb", 16, 102400}, {"default_timeout_sec", 1, 7 * 86400},
		    {"warm_pool_size", 0, 64},       {"warm_pool_max_idle_s", 10, 7 * 86400}};
	const json_t *v;
	char msg[256];

	if (!partial) {
		const char *id = json_string_value(json_object_get(b, "id"));
		if (!model_valid_id(id))
			return sbx_err_set(err, SBX_E_INVALID,
					   "id is required: 1..64 characters of A-Z a-z 0-9 . _ -");
	}
	v = json_object_get(b, "name");
	if ((v || !partial) &&
	    (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 200))
		return sbx_err_set(err, SBX_E_INVALID,
				   "name is required: a string of 1..200 characters");
	v = json_object_get(b, "image_url");
	if ((v || !partial) &&
	    (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 512))
		return sbx_err_set(
		    err, SBX_E_INVALID,
		    "image_url is required: a non-empty image name of at most 512 characters");
	v = json_object_get(b, "on_sandbox_failure");
	if (v && !json_is_null(v) &&
	    (!json_is_string(v) || (strcmp(json_string_value(v), "fail") != 0 &&
				    strcmp(json_string_value(v), "recreate") != 0)))
		return sbx_err_set(err, SBX_E_INVALID,
				   "on_sandbox_failure must be \"fail\" (the session fails when "
				   "its sandbox dies) or \"recreate\" (it gets a fresh sandbox)");
	for (size_t i = 0; i < 2; i++) {
		const char *k = i ? "warm_pool_max_idle_s" : "warm_pool_size";
		v = json_object_get(b, k);
		if (v && !json_is_null(v) && !json_is_integer(v))
			return sbx_err_set(err, SBX_E_INVALID, "%s must be an integer", k);
	}
	v = json_object_get(b, "runtime_type");
	if (v || !partial) {
		const char *s = json_string_value(v);
		int ok = 0;
		for (int i = 0; s && runtime_types[i]; i++)
			ok |= strcmp(s, runtime_types[i]) == 0;
		if (!ok)
			return sbx_err_set(err, SBX_E_INVALID,
					   "runtime_type must be one of python3.11, python3.12, "
					   "nodejs20, nodejs18, nodejs22, java17, go1.21, shell");
	}
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		v = json_object_get(b, nums[i].k);
		if (!v || json_is_null(v))
			continue;
		if (!json_is_number(v) || json_number_value(v) < nums[i].lo ||
		    json_number_value(v) > nums[i].hi)
			return sbx_err_set(err, SBX_E_INVALID, "%s must be a number in %g..%g",
					   nums[i].k, nums[i].lo, nums[i].hi);
	}
	v = json_object_get(b, "default_timeout_sec");
	if (v && !json_is_null(v) && !json_is_integer(v))
		return sbx_err_set(err, SBX_E_INVALID,
				   "default_timeout_sec must be an integer number of seconds");
	v = json_object_get(b, "default_env_vars");
	if (v && !json_is_null(v) && model_check_env(v, "default_env_vars", msg, sizeof msg) < 0)
		return sbx_err_set(err, SBX_E_INVALID, "%s", msg);
	v = json_object_get(b, "description");
	if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 2000))
		return sbx_err_set(err, SBX_E_INVALID,
				   "description must be a string of at most 2000 characters");
	return 0;
}

static json_t *builtin_templates(void)
{
	return json_pack("[{s:s, s:s, s:s, s:s, s:s, s:f, s:i, s:i, s:i, s:{}},"
			 " {s:s, s:s, s:s, s:s, s:s, s:f, s:i, s:i, s:i, s:{}},"
			 " {s:s, s:s, s:s, s:s, s:s, s:f, s:i, s:i, s:i, s:{}}]",
			 "id", "python-basic", "name", "Python 3.11", "description",
			 "Python 3 with the standard library", "image_url",
			 "sandbox-template-python-basic:latest", "runtime_type", "python3.11",
			 "default_cpu_cores", 1.0, "default_memory_mb", 512, "default_disk_mb",
			 1024, "default_timeout_sec", 300, "default_env_vars", "id", "nodejs-basic",
			 "name", "Node.js 20", "description", "Node.js 20", "image_url",
			 "sandbox-template-nodejs-basic:latest", "runtime_type", "nodejs20",
			 "default_cpu_cores", 1.0, "default_memory_mb", 512, "default_disk_mb",
			 1024, "default_timeout_sec", 300, "default_env_vars", "id", "shell-basic",
			 "name", "Shell (bash)", "description", "bash and coreutils", "image_url",
			 "sandbox-template-shell-basic:latest", "runtime_type", "shell",
			 "default_cpu_cores", 1.0, "default_memory_mb", 256, "default_disk_mb", 512,
			 "default_timeout_sec", 300, "default_env_vars");
}

int templates_seed(struct server *srv, sbx_err *err)
{
	json_t *existing = NULL, *list, *t, *q = json_object();
	size_t i;
	int rc;

	rc = DB(srv)->template_list(DBI(srv), q, &existing, err);
	json_decref(q);
	if (rc < 0)
		return rc;
	if (json_array_size(existing) > 0) {
		json_decref(existing);
		return 0;
	}
	json_decref(existing);
	list = srv->cfg.templates ? json_incref(srv->cfg.templates) : builtin_templates();
	json_array_foreach (list, i, t) {
		json_t *rec = json_deep_copy(t);
		int64_t now = services_now_ms();
		if (templates_validate(rec, 0, err) < 0) {
			char m[SBX_ERR_MSG_MAX];
			snprintf(m, sizeof m, "%s", err->message);
			sbx_err_set(err, SBX_E_INVALID, "templates.[%zu]: %s", i, m);
			json_decref(rec);
			json_decref(list);
			return -SBX_E_INVALID;
		}
		json_object_set_new(rec, "tenant", json_null());
		if (!json_is_object(json_object_get(rec, "default_env_vars")))
			json_object_set_new(rec, "default_env_vars", json_object());
		json_object_set_new(rec, "created_at", json_integer(now));
		json_object_set_new(rec, "updated_at", json_integer(now));
		rc = DB(srv)->template_insert(DBI(srv), rec, err);
		json_decref(rec);
		if (rc < 0 && -rc != SBX_E_CONFLICT) {
			json_decref(list);
			return rc;
		}
	}
	LOG_I("seeded %zu default templates", json_array_size(list));
	json_decref(list);
	return 0;
}

int sessions_resources(const json_t *body, const json_t *tmpl, json_t **out, sbx_err *err)
{
	const json_t *nested = json_object_get(body, "resources");
	const json_t *v;
	double cpu;
	int64_t mem, disk, procs;

	if (nested && !json_is_null(nested) && !json_is_object(nested))
		return sbx_err_set(
		    err, SBX_E_INVALID,
		    "resources must be an object {cpu, memory, disk, max_processes}");
#define PICK(k)                                                                                    \
	((v = json_object_get(nested, k)) && !json_is_null(v) ? v : json_object_get(body, k))
	v = PICK("cpu");
	if (v && !json_is_null(v)) {
		cpu = model_parse_cpu(v);
		if (!(cpu >= 0.01 && cpu <= 64))
			return sbx_err_set(err, SBX_E_INVALID,
					   "cpu must be 0.01..64 cores (e.g. 1, 0.5 or \"500m\")");
	} else {
		v = json_object_get(tmpl, "default_cpu_cores");
		cpu = json_is_number(v) ? json_number_value(v) : 1.0;
	}
	v = PICK("memory");
	if (v && !json_is_null(v)) {
		mem = model_parse_mib(v);
		if (mem < 16 || mem > 65536)
			return sbx_err_set(err, SBX_E_INVALID,
					   "memory must be 16Mi..64Gi (e.g. \"512Mi\", \"1Gi\", or "
					   "MiB as a number)");
	} else {
		v = json_object_get(tmpl, "default_memory_mb");
		mem = json_is_number(v) ? (int64_t)json_number_value(v) : 512;
	}
	v = PICK("disk");
	if (v && !json_is_null(v)) {
		disk = model_parse_mib(v);
		if (disk < 16 || disk > 102400)
			return sbx_err_set(err, SBX_E_INVALID,
					   "disk must be 16Mi..100Gi (e.g. \"1Gi\")");
	} else {
		v = json_object_get(tmpl, "default_disk_mb");
		disk = json_is_number(v) ? (int64_t)json_number_value(v) : 1024;
	}
	v = PICK("max_processes");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 8 ||
		    json_integer_value(v) > 32768)
			return sbx_err_set(err, SBX_E_INVALID,
					   "max_processes must be an integer in 8..32768");
		procs = json_integer_value(v);
	} else
		procs = 256;
#undef PICK
	*out = json_pack("{s:f, s:I, s:I, s:I}", "cpu", cpu, "memory_mb", (json_int_t)mem,
			 "disk_mb", (json_int_t)disk, "max_processes", (json_int_t)procs);
	return 0;
}

json_t *sessions_nodes(struct server *srv, json_t *errors)
{
	json_t *nodes = json_array();

	for (size_t i = 0; i < srv->n_runtimes; i++) {
		struct plugin *p = srv->runtimes[i];
		json_t *ns = NULL, *n;
		size_t j;
		sbx_err e2;
		if (!SBX_HAS_MEMBER(p->d.runtime, struct sbx_runtime_plugin, nodes))
			continue;
		sbx_err_clear(&e2);
		if (p->d.runtime->nodes(p->inst, &ns, &e2) < 0) {
			if (errors)
				json_array_append_new(errors, json_pack("{s:s, s:s}", "runtime",
									p->spec->name, "error",
									e2.message));
			continue;
		}
		json_array_foreach (ns, j, n) {
			json_object_set_new(n, "runtime", json_string(p->spec->name));
			json_array_append(nodes, n);
		}
		json_decref(ns);
	}
	warm_annotate(srv, nodes);
	return nodes;
}

/* "<runtime>\n<node>" of a session record; a runtime without nodes() has one, "". */
static void node_key(struct server *srv, const char *rt, const char *node, char *key, size_t len)
{
	struct plugin *p = server_runtime(srv, rt);
	if (p && !SBX_HAS_MEMBER(p->d.runtime, struct sbx_runtime_plugin, nodes))
		node = "";
	snprintf(key, len, "%s\n%s", rt ? rt : "", node ? node : "");
}

json_t *sessions_node_keys(struct server *srv)
{
	json_t *keys = json_object(), *nodes = sessions_nodes(srv, NULL), *n;
	char key[300];
	size_t i;

	json_array_foreach (nodes, i, n) {
		const char *id = json_string_value(json_object_get(n, "id"));
		if (!id)
			continue;
		node_key(srv, json_string_value(json_object_get(n, "runtime")), id, key,
			 sizeof key);
		json_object_set_new(keys, key, json_true());
	}
	for (size_t r = 0; r < srv->n_runtimes; r++)
		if (!SBX_HAS_MEMBER(srv->runtimes[r]->d.runtime, struct sbx_runtime_plugin,
				    nodes)) {
			node_key(srv, srv->runtimes[r]->spec->name, "", key, sizeof key);
			json_object_set_new(keys, key, json_true());
		}
	json_decref(nodes);
	return keys;
}

int sessions_on_nodes(struct server *srv, const json_t *keys, const json_t *rec)
{
	char key[300];
	node_key(srv, json_string_value(json_object_get(rec, "runtime_instance")),
		 json_string_value(json_object_get(rec, "runtime_node")), key, sizeof key);
	return json_object_get(keys, key) != NULL;
}

static struct plugin *choose_runtime(struct server *srv, const json_t *spec, char *node,
				     size_t nlen, sbx_err *err)
{
	node[0] = '\0';
	if (srv->n_runtimes == 0) {
		sbx_err_set(err, SBX_E_UNAVAILABLE, "no runtime plugin is configured");
		return NULL;
	}
	if (srv->policy && srv->n_runtimes > 0) {
		json_t *nodes = sessions_nodes(srv, NULL), *choice = NULL;
		/* The policy is documented as single-threaded: serialise calls. */
		pthread_mutex_lock(&srv->policy_mu);
		int rc = srv->policy->d.policy->select_node(srv->policy->inst, spec, nodes, &choice,
							    err);
		pthread_mutex_unlock(&srv->policy_mu);
		json_decref(nodes);
		if (rc < 0)
			return NULL;
		struct plugin *p =
		    server_runtime(srv, json_string_value(json_object_get(choice, "runtime")));
		snprintf(node, nlen, "%s",
			 json_string_value(json_object_get(choice, "node")) ?: "");
		LOG_I("session=%s placed on runtime=%s node=%s reason=\"%s\"",
		      json_string_value(json_object_get(spec, "session_id")),
		      json_string_value(json_object_get(choice, "runtime")) ?: "?", node,
		      json_string_value(json_object_get(choice, "reason")) ?: "");
		json_decref(choice);
		if (!p)
			sbx_err_set(err, SBX_E_INTERNAL, "the policy chose an unknown runtime");
		return p;
	}
	return srv->runtimes[0];
}

int sessions_create(struct server *srv, const json_t *principal, const json_t *body, json_t **out,
		    sbx_err *err)
{
	char id[72], node[128], msg[256];
	const char *template_id, *cid;
	json_t *tmpl = NULL, *res = NULL, *env = NULL, *rec = NULL, *spec = NULL, *handle = NULL;
	json_t *changes = NULL, *v, *deps;
	struct plugin *rt = NULL;
	int64_t now = services_now_ms(), timeout;
	struct quota_cfg quota;
	char restore_key[512] = "", restore_src[72] = "";
	const char *tenant = json_string_value(json_object_get(principal, "tenant"));
	int rc, locked = 0, stored = 0;

	*out = NULL;
	if (!tenant)
		tenant = "default";
	quotas_for(srv, principal, &quota);
	v = json_object_get(body, "template_id");
	template_id = json_string_value(v);
	if (!template_id || !*template_id)
		return sbx_err_set(err, SBX_E_INVALID,
				   "template_id is required (e.g. \"python-basic\")");
	cid = json_string_value(json_object_get(body, "id"));
	if (json_object_get(body, "id") && !json_is_null(json_object_get(body, "id"))) {
		if (!model_valid_id(cid))
			return sbx_err_set(err, SBX_E_INVALID,
					   "id must be 1..64 characters of A-Z a-z 0-9 . _ -");
		snprintf(id, sizeof id, "%s", cid);
	} else
		services_new_id("sess-", id, sizeof id);
	v = json_object_get(body, "restore_from");
	if (v && !json_is_null(v)) {
		json_t *src = NULL;
		const char *key;
		if (!model_valid_id(json_string_value(v)))
			return sbx_err_set(err, SBX_E_INVALID, "restore_from must be a session id");
		if (!srv->storage)
			return sbx_err_set(
			    err, SBX_E_INVALID,
			    "restore_from needs a storage plugin; none is configured");
		rc = sessions_get(srv, tenant, 0, json_string_value(v), &src, err);
		if (rc < 0)
			return sbx_err_set(err, SBX_E_INVALID,
					   "restore_from: session '%.64s' not found",
					   json_string_value(v));
		key = json_string_value(
		    json_object_get(json_object_get(src, "workspace_archive"), "key"));
		if (!key) {
			json_decref(src);
			return sbx_err_set(
			    err, SBX_E_INVALID,
			    "restore_from: session '%.64s' has no workspace archive (it is "
			    "archived when it ends)",
			    json_string_value(v));
		}
		snprintf(restore_key, sizeof restore_key, "%s", key);
		snprintf(restore_src, sizeof restore_src, "%s", json_string_value(v));
		json_decref(src);
	}
	rc = templates_get(srv, tenant, 0, template_id, &tmpl, err);
	if (rc < 0) {
		if (-rc == SBX_E_NOTFOUND)
			return sbx_err_set(err, SBX_E_BADREQUEST,
					   "template '%.64s' does not exist; GET /api/v1/templates "
					   "lists the available ones",
					   template_id);
		return rc;
	}
	rc = sessions_resources(body, tmpl, &res, err);
	if (rc < 0)
		goto out;
	v = json_object_get(body, "timeout");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > srv->cfg.session_max_timeout) {
			rc = sbx_err_set(err, SBX_E_INVALID,
					 "timeout must be an integer number of seconds in 1..%d",
					 srv->cfg.session_max_timeout);
			goto out;
		}
		timeout = json_integer_value(v);
	} else {
		v = json_object_get(tmpl, "default_timeout_sec");
		timeout =
		    json_is_integer(v) ? json_integer_value(v) : srv->cfg.session_default_timeout;
	}
	env = model_merge_env(json_object_get(tmpl, "default_env_vars"),
			      json_object_get(body, "env_vars"), "env_vars", msg, sizeof msg);
	if (!env) {
		rc = sbx_err_set(err, SBX_E_INVALID, "%s", msg);
		goto out;
	}
	deps = json_object_get(body, "dependencies");
	if (deps && !json_is_null(deps)) {
		size_t i;
		json_t *d;
		if (!json_is_array(deps) || json_array_size(deps) > 100) {
			rc = sbx_err_set(
			    err, SBX_E_INVALID,
			    "dependencies must be an array of at most 100 {name, version?}");
			goto out;
		}
		json_array_foreach (deps, i, d) {
			const char *n = json_string_value(json_object_get(d, "name"));
			v = json_object_get(d, "version");
			if (!n || !*n || strlen(n) > 200 ||
			    (v && !json_is_null(v) && !json_is_string(v))) {
				rc = sbx_err_set(
				    err, SBX_E_INVALID,
				    "dependencies[%zu] must be {name: string, version?: string}",
				    i);
				goto out;
			}
		}
	}
	rec = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O?, s:o, s:I, s:I, s:I, s:I, s:n, s:O, s:O?}",
			"id", id, "tenant", tenant, "template_id", template_id, "status",
			"creating", "resources", res, "image", json_object_get(tmpl, "image_url"),
			"env_vars", json_incref(env), "timeout", (json_int_t)timeout, "created_at",
			(json_int_t)now, "updated_at", (json_int_t)now, "last_activity_at",
			(json_int_t)now, "completed_at", "template_runtime_type",
			json_object_get(tmpl, "runtime_type"), "dependencies",
			deps && !json_is_null(deps) ? deps : NULL);
	if (!rec) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	leases_stamp(srv, rec);
	spec = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O, s:s}", "session_id", id, "template_id",
			 template_id, "image", json_object_get(tmpl, "image_url"), "runtime_type",
			 json_object_get(tmpl, "runtime_type"), "resources", res, "env_vars", env,
			 "network", "none");
	rt = choose_runtime(srv, spec, node, sizeof node, err);
	if (!rt) {
		rc = -(err->code ? err->code : SBX_E_INTERNAL);
		goto out;
	}
	json_object_set_new(rec, "runtime_instance", json_string(rt->spec->name));
	json_object_set_new(rec, "runtime_type", json_string(rt->d.any->hdr.name));
	/* A warm sandbox, when one matches: the session is running as soon as it is stored. */
	if ((handle = warm_claim(srv, rt->spec->name, node, tmpl, res))) {
		json_object_set_new(handle, "session_id", json_string(id));
		json_object_set_new(rec, "status", json_string("running"));
		json_object_set(rec, "handle", handle);
		json_object_set(rec, "runtime_node", json_object_get(handle, "node"));
		json_object_set_new(rec, "warm", json_true());
	}
	quotas_lock_tenant(srv, tenant);
	locked = 1;
	rc = quotas_check_session(srv, tenant, &quota,
				  json_number_value(json_object_get(res, "cpu")),
				  json_integer_value(json_object_get(res, "memory_mb")), err);
	if (rc < 0)
		goto out;
	rc = DB(srv)->session_insert(DBI(srv), rec, err);
	quotas_unlock_tenant(srv, tenant);
	locked = 0;
	if (rc < 0) {
		if (-rc == SBX_E_CONFLICT)
			sbx_err_set(err, SBX_E_CONFLICT, "a session with id '%s' already exists",
				    id);
		goto out;
	}
	if (handle) {
		stored = 1;
		json_object_set_new(rec, "version", json_integer(1));
		*out = json_incref(rec);
		goto created;
	}
	services_set_token(spec);
	if (node[0])
		json_object_set_new(spec, "node", json_string(node));
	{
		int64_t t0 = services_mono_ms();
		rc = rt->d.runtime->sandbox_create(rt->inst, spec, &handle, err);
		metrics_observe(srv->metrics, "sbxd_sandbox_create_seconds", NULL,
				(double)(services_mono_ms() - t0) / 1000.0);
	}
	if (rc < 0) {
		char reason[SBX_ERR_MSG_MAX + 32];
		snprintf(reason, sizeof reason, "sandbox creation failed: %s", err->message);
		changes = json_pack("{s:s, s:s, s:I, s:I}", "status", "failed", "failure_reason",
				    reason, "updated_at", (json_int_t)services_now_ms(),
				    "completed_at", (json_int_t)services_now_ms());
		DB(srv)->session_update(DBI(srv), id, changes, "creating", NULL, NULL);
		LOG_W("session=%s %s", id, reason);
		metrics_counter_add(srv->metrics, "sbxd_sessions_failed_total", NULL, 1);
		goto out;
	}
	now = services_now_ms();
	changes = json_pack("{s:s, s:O, s:O?, s:I, s:I}", "status", "running", "handle", handle,
			    "runtime_node", json_object_get(handle, "node"), "updated_at",
			    (json_int_t)now, "last_activity_at", (json_int_t)now);
	rc = DB(srv)->session_update(DBI(srv), id, changes, "creating", out, err);
	if (rc < 0) {
		/* terminated or deleted while being created: do not leak the sandbox */
		sbx_err e2;
		rt->d.runtime->sandbox_destroy(rt->inst, handle, &e2);
		goto out;
	}
created:
	if (restore_key[0]) {
		sbx_err_clear(err);
		rc = archive_restore(srv, *out, restore_key, err);
		if (rc < 0) {
			char reason[SBX_ERR_MSG_MAX + 64];
			sbx_err saved = *err;
			snprintf(reason, sizeof reason, "restoring the workspace failed: %s",
				 err->message);
			sessions_finish(srv, id, "failed", reason, NULL, err);
			json_decref(*out);
			*out = NULL;
			*err = saved;
			goto out;
		}
		json_t *c = json_pack("{s:s}", "restored_from", restore_src), *again = NULL;
		if (DB(srv)->session_update(DBI(srv), id, c, "running", &again, err) == 0) {
			json_decref(*out);
			*out = again;
		}
		json_decref(c);
	}
	metrics_counter_add(srv->metrics, "sbxd_sessions_created_total", NULL, 1);
out:
	if (rc < 0 && handle && !stored && json_is_true(json_object_get(rec, "warm"))) {
		sbx_err e2; /* claimed from the pool but never stored: nobody owns it */
		rt->d.runtime->sandbox_destroy(rt->inst, handle, &e2);
	}
	if (locked)
		quotas_unlock_tenant(srv, tenant);
	json_decref(tmpl);
	json_decref(res);
	json_decref(env);
	json_decref(rec);
	json_decref(spec);
	json_decref(handle);
	json_decref(changes);
	return rc;
}

/* Archive a live session's workspace before its sandbox goes (best effort: a failure is
 * logged and recorded on the session, it never keeps the session alive). */
static void save_workspace(struct server *srv, const char *id, const json_t *rec)
{
	json_t *info = NULL, *c;
	sbx_err e;

	sbx_err_clear(&e);
	if (archive_save(srv, rec, &info, &e) < 0) {
		LOG_W("session=%s workspace not archived: %s", id, e.message);
		c = json_pack("{s:{s:s}}", "workspace_archive", "error", e.message);
	} else {
		LOG_I("session=%s workspace archived: %s (%lld bytes)", id,
		      json_string_value(json_object_get(info, "key")),
		      (long long)json_integer_value(json_object_get(info, "size")));
		c = json_pack("{s:o}", "workspace_archive", info);
	}
	DB(srv)->session_update(DBI(srv), id, c, NULL, NULL, &e);
	json_decref(c);
}

static int finish(struct server *srv, const char *id, const char *final_status, const char *reason,
		  int keep_workspace, json_t **out, sbx_err *err)
{
	json_t *rec = NULL, *changes = NULL;
	const char *status;
	struct plugin *rt;
	int rc;

	if (out)
		*out = NULL;
	for (int attempt = 0; attempt < 5; attempt++) {
		json_decref(rec);
		rec = NULL;
		rc = DB(srv)->session_get(DBI(srv), id, &rec, err);
		if (rc < 0)
			return rc;
		if (!sessions_is_live(rec)) {
			if (out)
				*out = rec;
			else
				json_decref(rec);
			return 0;
		}
		status = json_string_value(json_object_get(rec, "status"));
		changes = json_pack("{s:s, s:I, s:I}", "status", final_status, "updated_at",
				    (json_int_t)services_now_ms(), "completed_at",
				    (json_int_t)services_now_ms());
		if (reason)
			json_object_set_new(changes, "failure_reason", json_string(reason));
		json_t *updated = NULL;
		rc = DB(srv)->session_update(DBI(srv), id, changes, status, &updated, err);
		json_decref(changes);
		if (rc == 0) {
			if (keep_workspace && srv->cfg.archive_workspace && srv->storage &&
			    strcmp(status, "running") == 0 && strcmp(final_status, "failed") != 0) {
				save_workspace(srv, id, rec);
				if (out) { /* re-read: the archive info is part of the record */
					json_t *again = NULL;
					if (DB(srv)->session_get(DBI(srv), id, &again, err) == 0) {
						json_decref(updated);
						updated = again;
					}
				}
			}
			rt = server_runtime(
			    srv, json_string_value(json_object_get(rec, "runtime_instance")));
			if (rt && json_is_object(json_object_get(rec, "handle"))) {
				sbx_err e2;
				sbx_err_clear(&e2);
				if (rt->d.runtime->sandbox_destroy(
					rt->inst, json_object_get(rec, "handle"), &e2) < 0)
					LOG_W("session=%s destroying its sandbox failed: %s", id,
					      e2.message);
			}
			execs_session_ended(srv, id, final_status);
			LOG_I("session=%s status=%s%s%s", id, final_status,
			      reason ? " reason=" : "", reason ? reason : "");
			json_decref(rec);
			if (out)
				*out = updated;
			else
				json_decref(updated);
			return 0;
		}
		if (-rc != SBX_E_CONFLICT)
			break;
	}
	json_decref(rec);
	return rc;
}

int sessions_finish(struct server *srv, const char *id, const char *final_status,
		    const char *reason, json_t **out, sbx_err *err)
{
	return finish(srv, id, final_status, reason, 1, out, err);
}

int sessions_delete(struct server *srv, const char *id, sbx_err *err)
{
	json_t *rec = NULL;
	int rc = finish(srv, id, "terminated", NULL, 0, &rec, err);

	if (rc < 0)
		return rc;
	/* a deleted session takes its workspace archive with it */
	if (srv->storage &&
	    json_is_string(json_object_get(json_object_get(rec, "workspace_archive"), "key"))) {
		sbx_err e;
		srv->storage->d.storage->del(srv->storage->inst,
					     json_string_value(json_object_get(
						 json_object_get(rec, "workspace_archive"), "key")),
					     &e);
	}
	json_decref(rec);
	return DB(srv)->session_delete(DBI(srv), id, err);
}

void sessions_touch(struct server *srv, const char *id)
{
	int64_t now = services_now_ms();
	json_t *c = json_pack("{s:I, s:I}", "last_activity_at", (json_int_t)now, "updated_at",
			      (json_int_t)now);
	sbx_err e;
	DB(srv)->session_update(DBI(srv), id, c, "running", NULL, &e);
	json_decref(c);
}

static int recreate(struct server *srv, const json_t *rec, const char *reason, sbx_err *err)
{
	const char *id = json_string_value(json_object_get(rec, "id"));
	struct plugin *rt =
	    server_runtime(srv, json_string_value(json_object_get(rec, "runtime_instance")));
	json_t *spec, *handle = NULL, *changes;
	int rc;

	if (!rt)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "its runtime is no longer configured");
	/* running → creating first: of several threads or replicas that saw the same death
	 * (the probe, a failed execution), exactly one rebuilds; the others see CONFLICT */
	changes = json_pack("{s:s, s:I}", "status", "creating", "updated_at",
			    (json_int_t)services_now_ms());
	leases_stamp(srv, changes);
	rc = DB(srv)->session_update(DBI(srv), id, changes, "running", NULL, err);
	json_decref(changes);
	if (rc < 0)
		return -rc == SBX_E_CONFLICT ? 1 : rc;
	spec = json_pack("{s:s, s:O, s:O, s:O?, s:O, s:{}, s:s, s:O?}", "session_id", id,
			 "template_id", json_object_get(rec, "template_id"), "image",
			 json_object_get(rec, "image"), "runtime_type",
			 json_object_get(rec, "template_runtime_type"), "resources",
			 json_object_get(rec, "resources"), "env_vars", "network", "none", "node",
			 json_object_get(rec, "runtime_node"));
	if (!spec) {
		sbx_err_set(err, SBX_E_INTERNAL, "the session record lacks its image");
		return -SBX_E_INTERNAL;
	}
	services_set_token(spec);
	rt->d.runtime->sandbox_destroy(rt->inst, json_object_get(rec, "handle"), err);
	sbx_err_clear(err);
	rc = rt->d.runtime->sandbox_create(rt->inst, spec, &handle, err);
	json_decref(spec);
	if (rc < 0)
		return rc;
	changes = json_pack("{s:O, s:O?, s:I, s:{s:I, s:s}, s:I}", "handle", handle, "runtime_node",
			    json_object_get(handle, "node"), "recoveries",
			    json_integer_value(json_object_get(rec, "recoveries")) + 1,
			    "last_recovery", "at", (json_int_t)services_now_ms(), "reason", reason,
			    "updated_at", (json_int_t)services_now_ms());
	json_object_set_new(changes, "status", json_string("running"));
	rc = DB(srv)->session_update(DBI(srv), id, changes, "creating", NULL, err);
	json_decref(changes);
	if (rc < 0) { /* ended meanwhile: the new sandbox is not wanted */
		sbx_err e2;
		rt->d.runtime->sandbox_destroy(rt->inst, handle, &e2);
	} else
		LOG_W("session=%s sandbox recreated (%s)", id, reason);
	json_decref(handle);
	return rc;
}

void sessions_sandbox_lost(struct server *srv, const json_t *rec, const char *reason)
{
	const char *id = json_string_value(json_object_get(rec, "id"));
	json_t *tmpl = NULL, *now = NULL;
	sbx_err err;
	int again = 0, rc;

	sbx_err_clear(&err);
	/* rec may be a page read a while ago: if the session has moved on since (ended, or
	 * its sandbox already replaced by another thread or replica), this death is handled */
	if (DB(srv)->session_get(DBI(srv), id, &now, &err) < 0 ||
	    strcmp(json_string_value(json_object_get(now, "status")) ?: "", "running") != 0 ||
	    !json_equal(json_object_get(json_object_get(now, "handle"), "sandbox_id"),
			json_object_get(json_object_get(rec, "handle"), "sandbox_id"))) {
		json_decref(now);
		return;
	}
	rec = now; /* the fresh record from here on */
	if (templates_get(srv, NULL, 1, json_string_value(json_object_get(rec, "template_id")),
			  &tmpl, &err) == 0 &&
	    strcmp(json_string_value(json_object_get(tmpl, "on_sandbox_failure")) ?: "fail",
		   "recreate") == 0 &&
	    json_integer_value(json_object_get(rec, "recoveries")) < 3)
		again = 1;
	json_decref(tmpl);
	if (again && (rc = recreate(srv, rec, reason, &err)) >= 0) {
		if (rc == 0)
			metrics_counter_add(srv->metrics, "sbxd_sessions_recovered_total", NULL, 1);
		json_decref(now);
		return;
	}
	if (again) {
		char r2[SBX_ERR_MSG_MAX + 320];
		snprintf(r2, sizeof r2, "%s; recreating its sandbox failed: %s", reason,
			 err.message);
		sessions_finish(srv, id, "failed", r2, NULL, &err);
	} else
		sessions_finish(srv, id, "failed", reason, NULL, &err);
	json_decref(now);
}

int sessions_check_sandbox(struct server *srv, const char *id)
{
	json_t *sess = NULL, *status = NULL;
	struct plugin *rt;
	sbx_err err;
	int dead = 0;

	if (DB(srv)->session_get(DBI(srv), id, &sess, &err) < 0)
		return 0;
	rt = server_runtime(srv, json_string_value(json_object_get(sess, "runtime_instance")));
	if (rt && sessions_is_live(sess) &&
	    !strcmp(json_string_value(json_object_get(sess, "status")) ?: "", "running") &&
	    rt->d.runtime->sandbox_status(rt->inst, json_object_get(sess, "handle"), &status,
					  &err) == 0 &&
	    strcmp(json_string_value(json_object_get(status, "state")) ?: "", "running") != 0) {
		char reason[320];
		snprintf(reason, sizeof reason, "the sandbox stopped: %s",
			 json_string_value(json_object_get(status, "reason"))
			     ?: json_string_value(json_object_get(status, "state")) ?: "unknown");
		sessions_sandbox_lost(srv, sess, reason);
		dead = 1;
	}
	json_decref(status);
	json_decref(sess);
	return dead;
}

/* One pass of the reaper: end idle sessions (their timeout), sessions past
 * sessions.max_lifetime_s, and sessions stuck in creating. Runs on the replica holding the
 * reaper lease; with 1000+ live sessions it pages through them all. */
static void reap_once(struct server *srv, void *arg)
{
	struct sessions_svc *s = arg;
	int64_t now = services_now_ms(), life_ms = srv->cfg.max_lifetime_s * 1000;
	json_t *q, *page = NULL, *it;
	size_t i, total, offset = 0;
	sbx_err err;

	if (srv->stopping || !leases_held(srv, LEASE_REAPER))
		return;
	do {
		q = json_pack("{s:[s,s], s:i, s:I}", "statuses", "running", "creating", "limit",
			      1000, "offset", (json_int_t)offset);
		if (DB(srv)->session_list(DBI(srv), q, &page, &err) < 0) {
			LOG_W("reaper: cannot list sessions: %s", err.message);
			json_decref(q);
			return;
		}
		json_decref(q);
		total = (size_t)json_integer_value(json_object_get(page, "total"));
		json_array_foreach (json_object_get(page, "items"), i, it) {
			const char *id = json_string_value(json_object_get(it, "id"));
			const char *st = json_string_value(json_object_get(it, "status"));
			int64_t last = json_integer_value(json_object_get(it, "last_activity_at"));
			int64_t created = json_integer_value(json_object_get(it, "created_at"));
			int64_t timeout = json_integer_value(json_object_get(it, "timeout"));
			if (!id || !st)
				continue;
			if (strcmp(st, "creating") == 0) {
				/* one whose creating process died: state sync (recovery.c) */
				if (now - created > (int64_t)srv->cfg.create_timeout_s * 1000)
					sessions_finish(srv, id, "failed",
							"the sandbox was not ready within "
							"sessions.create_timeout_s",
							NULL, &err);
				continue;
			}
			if (life_ms > 0 && now - created > life_ms)
				sessions_finish(srv, id, "timeout",
						"reached sessions.max_lifetime_s since creation",
						NULL, &err);
			else if (timeout > 0 && now - last > timeout * 1000 &&
				 !execs_session_busy(srv, id))
				sessions_finish(srv, id, "timeout",
						"idle for longer than the session timeout", NULL,
						&err);
		}
		offset += json_array_size(json_object_get(page, "items"));
		json_decref(page);
		page = NULL;
	} while (offset < total && !srv->stopping);
	if (services_mono_ms() - s->expired_at > 60000) {
		archive_expire(srv);
		s->expired_at = services_mono_ms();
	}
}

int sessions_start(struct server *srv)
{
	struct sessions_svc *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	srv->sessions = s;
	s->reaper = loop_start(srv, "reaper", srv->cfg.reap_interval_ms, 0, reap_once, s);
	return s->reaper ? 0 : -1;
}

void sessions_stop(struct server *srv)
{
	struct sessions_svc *s = srv->sessions;
	if (!s)
		return;
	loop_stop(s->reaper);
	free(s);
	srv->sessions = NULL;
}
