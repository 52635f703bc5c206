/*
 * policy spread: places a session on the least loaded node that the hard filters let
 * through (polcommon.h): the lowest share of session slots in use, then the lowest share
 * of memory allocated, then the common tie-break. Ignores template affinity.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/policy/common/polcommon.h"

/* Load shares closer than this are equal (the next criterion decides). */
#define LOAD_EPS 1e-9

/* One per configured instance; immutable after create. */
struct spread {
	const struct sbx_core_api *core; /* borrowed until destroy */
	char *name;
	struct pol_limits lim;
};

static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	struct pol_limits lim = {.cpu_overcommit = 4.0, .memory_overcommit = 1.0};
	const struct pol_key keys[] = {
	    {"cpu_overcommit", &lim.cpu_overcommit, 0.1, 100},
	    {"memory_overcommit", &lim.memory_overcommit, 0.1, 10},
	};
	struct spread *s;
	int rc;

	rc = pol_config_numbers("spread", instance_name, config, keys, sizeof keys / sizeof keys[0],
				err);
	if (rc < 0)
		return rc;
	s = calloc(1, sizeof *s);
	if (!s || !(s->name = strdup(instance_name))) {
		free(s);
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	s->core = core;
	s->lim = lim;
	core->log(s->name, SBX_LOG_INFO,
		  "event=policy_ready module=spread cpu_overcommit=%g memory_overcommit=%g",
		  lim.cpu_overcommit, lim.memory_overcommit);
	*inst = s;
	return SBX_OK;
}

static void destroy(void *inst)
{
	struct spread *s = inst;

	if (!s)
		return;
	free(s->name);
	free(s);
}

/* <0 when a is less loaded than b. */
static int cmp_load(const struct pol_node *a, const struct pol_node *b)
{
	if (a->slot_used_frac < b->slot_used_frac - LOAD_EPS)
		return -1;
	if (a->slot_used_frac > b->slot_used_frac + LOAD_EPS)
		return 1;
	if (a->mem_used_frac < b->mem_used_frac - LOAD_EPS)
		return -1;
	if (a->mem_used_frac > b->mem_used_frac + LOAD_EPS)
		return 1;
	return pol_tiebreak(a, b);
}

/*
 * One call at a time (the core serialises them); never blocks. request and nodes are
 * borrowed, *choice is a new reference. SBX_E_LIMIT when no node passes the filters.
 */
static int select_node(void *inst, const json_t *request, const json_t *nodes, json_t **choice,
		       sbx_err *err)
{
	const struct spread *s = inst;
	struct pol_request req;
	struct pol_inventory inv;
	const struct pol_node *pick = NULL;
	char reason[320], name[140], slots[64], mem[48];
	int rc;

	*choice = NULL;
	if ((rc = pol_request_parse(request, &req, err)) < 0)
		return rc;
	if ((rc = pol_inventory_load(nodes, &req, &s->lim, &inv, err)) < 0)
		return rc;
	for (size_t i = 0; i < inv.n; i++) {
		const struct pol_node *n = &inv.nodes[i];

		if (n->passes && (!pick || cmp_load(n, pick) < 0))
			pick = n;
	}
	if (!pick) {
		rc = pol_no_node(&inv, &req, err);
		goto out;
	}
	pol_node_name(&inv, pick, name, sizeof name);
	if (pick->max_sessions >= 0)
		snprintf(slots, sizeof slots, "%.0f/%.0f sessions", pick->sessions,
			 pick->max_sessions);
	else
		snprintf(slots, sizeof slots, "%.0f sessions, no limit reported", pick->sessions);
	if (pick->free_mem >= 0)
		snprintf(mem, sizeof mem, "memory %.0f%% allocated", 100 * pick->mem_used_frac);
	else
		snprintf(mem, sizeof mem, "memory not reported");
	snprintf(reason, sizeof reason, "least loaded: %s (%s, %s)", name, slots, mem);
	rc = pol_choice(pick, reason, choice, err);
out:
	pol_inventory_free(&inv);
	return rc;
}

static const struct sbx_policy_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_POLICY, struct sbx_policy_plugin, "spread", "1.0.0",
			     "least loaded node (session slots, then memory)"),
    .life = {.create = create, .destroy = destroy},
    .select_node = select_node,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);
SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
