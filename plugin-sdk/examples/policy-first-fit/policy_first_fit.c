/*
 * policy first-fit: an example sbxd policy module. It places a session on the first
 * healthy node, in inventory order, that has enough free CPU, memory and session slots.
 * Deterministic: the same inventory and request always give the same node.
 */
#include <stdlib.h>
#include <string.h>

#include <sandbox/core.h>
#include <sandbox/policy.h>

/* One per configured instance: no mutable globals, so several instances can coexist. */
struct first_fit {
	const struct sbx_core_api *core; /* borrowed from the core until destroy */
	char *name;                      /* our copy of the instance name */
	json_int_t reserve_memory_mb;    /* memory kept free on every node */
	int prefer_warm;                 /* first pass over nodes with the template warm */
};

/*
 * Config (strict: an unknown key is an error naming it):
 *   reserve_memory_mb  integer >= 0, default 0: memory left free on every node
 *   prefer_warm        boolean, default false: try nodes that list the session's template
 *                      in "templates_warm" first, then the others
 */
static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	struct first_fit *ff;
	json_error_t jerr;
	json_int_t reserve = 0;
	int prefer_warm = 0;

	if (config &&
	    json_unpack_ex((json_t *)config, &jerr, JSON_STRICT, "{s?I, s?b}", "reserve_memory_mb",
			   &reserve, "prefer_warm", &prefer_warm) != 0)
		return sbx_err_set(err, SBX_E_INVALID, "config: %s", jerr.text);
	if (reserve < 0)
		return sbx_err_set(err, SBX_E_INVALID,
				   "config: reserve_memory_mb must be >= 0, got %lld",
				   (long long)reserve);

	ff = calloc(1, sizeof *ff);
	if (!ff)
		goto oom;
	ff->name = strdup(instance_name);
	if (!ff->name)
		goto oom;
	ff->core = core;
	ff->reserve_memory_mb = reserve;
	ff->prefer_warm = prefer_warm;
	core->log(ff->name, SBX_LOG_INFO, "first-fit ready reserve_memory_mb=%lld prefer_warm=%s",
		  (long long)reserve, prefer_warm ? "true" : "false");
	*inst = ff;
	return SBX_OK;
oom:
	free(ff);
	return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static void destroy(void *inst)
{
	struct first_fit *ff = inst;

	if (!ff)
		return;
	free(ff->name);
	free(ff);
}

/* A number member of an object (integer or real), or `dflt` when absent. */
static double num(const json_t *obj, const char *key, double dflt)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_number(v) ? json_number_value(v) : dflt;
}

/*
 * Whether `node` can take a session needing `cpu` cores and `mem` MiB. A capacity member
 * the runtime does not report is not a limit.
 */
static int fits(const struct first_fit *ff, const json_t *node, double cpu, double mem)
{
	const json_t *cap = json_object_get(node, "capacity");
	const json_t *used = json_object_get(node, "allocated");
	double c_cpu = num(cap, "cpu", -1), c_mem = num(cap, "memory_mb", -1);
	double c_sess = num(cap, "max_sessions", -1);

	if (!json_is_true(json_object_get(node, "healthy")))
		return 0;
	if (c_cpu >= 0 && c_cpu - num(used, "cpu", 0) < cpu)
		return 0;
	if (c_mem >= 0 && c_mem - num(used, "memory_mb", 0) - (double)ff->reserve_memory_mb < mem)
		return 0;
	if (c_sess >= 0 && c_sess - num(used, "sessions", 0) < 1)
		return 0;
	return 1;
}

static int warm(const json_t *node, const char *template_id)
{
	size_t i;
	json_t *t;

	if (!template_id)
		return 0;
	json_array_foreach (json_object_get(node, "templates_warm"), i, t) {
		if (json_is_string(t) && strcmp(json_string_value(t), template_id) == 0)
			return 1;
	}
	return 0;
}

/*
 * Scheduler thread only; never blocks. request and nodes are borrowed; *choice is a new
 * reference that the core releases. SBX_E_LIMIT when no node fits.
 */
static int select_node(void *inst, const json_t *request, const json_t *nodes, json_t **choice,
		       sbx_err *err)
{
	struct first_fit *ff = inst;
	const json_t *res = json_object_get(request, "resources");
	const char *tmpl = json_string_value(json_object_get(request, "template_id"));
	double cpu = num(res, "cpu", 0), mem = num(res, "memory_mb", 0);
	const json_t *pick = NULL;
	const char *reason = "first node with enough free capacity";
	size_t i;
	json_t *node;
	int pass;

	if (!json_is_array(nodes))
		return sbx_err_set(err, SBX_E_INTERNAL, "node inventory is not an array");
	for (pass = ff->prefer_warm ? 0 : 1; pass < 2 && !pick; pass++) {
		json_array_foreach (nodes, i, node) {
			if ((pass == 1 || warm(node, tmpl)) && fits(ff, node, cpu, mem)) {
				pick = node;
				if (pass == 0)
					reason = "first warm node with enough free capacity";
				break;
			}
		}
	}
	if (!pick)
		return sbx_err_set(err, SBX_E_LIMIT,
				   "no healthy node has %.2f CPU, %.0f MiB of memory and a session "
				   "slot free (%zu node(s) considered)",
				   cpu, mem, json_array_size(nodes));

	if (!json_is_string(json_object_get(pick, "id")) ||
	    !json_is_string(json_object_get(pick, "runtime")))
		return sbx_err_set(err, SBX_E_INTERNAL, "node entry lacks \"id\" or \"runtime\"");
	*choice = json_pack("{s:O, s:O, s:s}", "node", json_object_get(pick, "id"), "runtime",
			    json_object_get(pick, "runtime"), "reason", reason);
	if (!*choice)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	return SBX_OK;
}

static const struct sbx_policy_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_POLICY, struct sbx_policy_plugin, "first_fit", "1.0.0",
			     "first healthy node with enough free capacity"),
    .life = {.create = create, .destroy = destroy},
    .select_node = select_node,
};

/* The module's only exported symbol. */
SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);
SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
