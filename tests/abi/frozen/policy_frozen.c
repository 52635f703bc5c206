/*
 * A complete policy module built only against the frozen ABI 1.0 headers
 * (tests/abi/frozen-1.0). It picks the healthy node with the most free session slots
 * (first in inventory order on ties). Every later 1.x sbxd must load and call it unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include <sandbox/core.h>
#include <sandbox/policy.h>

struct frozen_policy {
	const struct sbx_core_api *core;
	char *name;
	json_int_t min_free_sessions;
};

static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	struct frozen_policy *p;
	json_error_t jerr;
	json_int_t min_free = 1;

	if (config && json_unpack_ex((json_t *)config, &jerr, JSON_STRICT, "{s?I}",
				     "min_free_sessions", &min_free) != 0)
		return sbx_err_set(err, SBX_E_INVALID, "config: %s", jerr.text);
	if (min_free < 1)
		return sbx_err_set(err, SBX_E_INVALID,
				   "config: min_free_sessions must be at least 1, got %lld",
				   (long long)min_free);
	p = calloc(1, sizeof *p);
	if (!p || !(p->name = strdup(instance_name))) {
		free(p);
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	p->core = core;
	p->min_free_sessions = min_free;
	core->log(p->name, SBX_LOG_INFO, "frozen-1.0 policy created min_free_sessions=%lld",
		  (long long)min_free);
	*inst = p;
	return SBX_OK;
}

static void destroy(void *inst)
{
	struct frozen_policy *p = inst;

	if (!p)
		return;
	free(p->name);
	free(p);
}

/* Free session slots of a node, or -1 when it cannot take any session. */
static json_int_t free_slots(const json_t *node)
{
	json_int_t max = -1, used = 0;

	if (!json_is_true(json_object_get(node, "healthy")))
		return -1;
	max =
	    json_integer_value(json_object_get(json_object_get(node, "capacity"), "max_sessions"));
	used = json_integer_value(json_object_get(json_object_get(node, "allocated"), "sessions"));
	return max - used;
}

static int select_node(void *inst, const json_t *request, const json_t *nodes, json_t **choice,
		       sbx_err *err)
{
	struct frozen_policy *p = inst;
	const json_t *best = NULL;
	json_int_t best_free = 0;
	size_t i;
	json_t *node;

	(void)request;
	if (!json_is_array(nodes))
		return sbx_err_set(err, SBX_E_INTERNAL, "node inventory is not an array");
	json_array_foreach (nodes, i, node) {
		json_int_t f = free_slots(node);

		if (f >= p->min_free_sessions && (!best || f > best_free)) {
			best = node;
			best_free = f;
		}
	}
	if (!best)
		return sbx_err_set(err, SBX_E_LIMIT,
				   "no healthy node has %lld free session slot(s)",
				   (long long)p->min_free_sessions);
	*choice = json_pack("{s:O, s:O, s:s}", "node", json_object_get(best, "id"), "runtime",
			    json_object_get(best, "runtime"), "reason", "most free session slots");
	if (!*choice)
		return sbx_err_set(err, SBX_E_INTERNAL, "node entry lacks id or runtime");
	return SBX_OK;
}

static const struct sbx_policy_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_POLICY, struct sbx_policy_plugin, "frozen", "1.0.0",
			     "ABI fixture: policy built against the frozen 1.0 headers"),
    .life = {.create = create, .destroy = destroy},
    .select_node = select_node,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);
SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
