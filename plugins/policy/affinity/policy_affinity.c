/*
 * policy affinity: places a session on the node with the best weighted score of free CPU,
 * free memory, free session slots and template affinity (a warm sandbox of the session's
 * template counts most, its image cached next), among the nodes the hard filters let
 * through (polcommon.h). Deterministic; falls back to the best non-affine node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/policy/common/polcommon.h"

/* Scores closer than this are a tie (the tie-break decides, not rounding noise). */
#define SCORE_EPS 1e-9

/* One per configured instance; immutable after create, so no locking is needed. */
struct affinity {
	const struct sbx_core_api *core; /* borrowed until destroy */
	char *name;                      /* the operator's instance name */
	struct pol_limits lim;
	double w_cpu, w_mem, w_slots, w_warm, w_cached;
	double w_sum; /* > 0: scores are normalised to 0..1 */
};

static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	struct affinity a = {
	    .lim = {.cpu_overcommit = 4.0, .memory_overcommit = 1.0},
	    .w_cpu = 1,
	    .w_mem = 1,
	    .w_slots = 1,
	    .w_warm = 6,
	    .w_cached = 2,
	};
	const struct pol_key keys[] = {
	    {"weight_cpu", &a.w_cpu, 0, 1000},
	    {"weight_memory", &a.w_mem, 0, 1000},
	    {"weight_slots", &a.w_slots, 0, 1000},
	    {"weight_warm", &a.w_warm, 0, 1000},
	    {"weight_cached", &a.w_cached, 0, 1000},
	    {"cpu_overcommit", &a.lim.cpu_overcommit, 0.1, 100},
	    {"memory_overcommit", &a.lim.memory_overcommit, 0.1, 10},
	};
	struct affinity *p;
	int rc;

	rc = pol_config_numbers("affinity", instance_name, config, keys,
				sizeof keys / sizeof keys[0], err);
	if (rc < 0)
		return rc;
	a.w_sum = a.w_cpu + a.w_mem + a.w_slots + a.w_warm + a.w_cached;
	if (!(a.w_sum > 0))
		return sbx_err_set(err, SBX_E_INVALID,
				   "affinity policy '%s': every weight is 0; set at least one of "
				   "weight_cpu, weight_memory, weight_slots, weight_warm, "
				   "weight_cached above 0",
				   instance_name);
	p = calloc(1, sizeof *p);
	if (!p || !(a.name = strdup(instance_name))) {
		free(p);
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	a.core = core;
	*p = a;
	core->log(p->name, SBX_LOG_INFO,
		  "event=policy_ready module=affinity weight_cpu=%g weight_memory=%g "
		  "weight_slots=%g weight_warm=%g weight_cached=%g cpu_overcommit=%g "
		  "memory_overcommit=%g",
		  p->w_cpu, p->w_mem, p->w_slots, p->w_warm, p->w_cached, p->lim.cpu_overcommit,
		  p->lim.memory_overcommit);
	*inst = p;
	return SBX_OK;
}

static void destroy(void *inst)
{
	struct affinity *a = inst;

	if (!a)
		return;
	free(a->name);
	free(a);
}

static double score(const struct affinity *a, const struct pol_node *n)
{
	return (a->w_cpu * n->cpu_frac + a->w_mem * n->mem_frac + a->w_slots * n->slot_frac +
		a->w_warm * n->warm + a->w_cached * n->cached) /
	       a->w_sum;
}

/* The best node the filters rejected among those with the template warm (want_warm) or
 * the image cached, by the tie-break; NULL when there is none. */
static const struct pol_node *best_rejected(const struct pol_inventory *inv, int want_warm)
{
	const struct pol_node *best = NULL;

	for (size_t i = 0; i < inv->n; i++) {
		const struct pol_node *n = &inv->nodes[i];

		if (n->passes || !n->id || !(want_warm ? n->warm : n->cached))
			continue;
		if (!best || pol_tiebreak(n, best) < 0)
			best = n;
	}
	return best;
}

/* "warm pool of python-basic on node-a (score 0.91)", and why a better-placed node lost. */
static void explain(const struct affinity *a, const struct pol_inventory *inv,
		    const struct pol_request *req, const struct pol_node *pick, double s, char *buf,
		    size_t len)
{
	char name[140], other[140];
	const struct pol_node *r = NULL;
	int off;

	pol_node_name(inv, pick, name, sizeof name);
	if (pick->warm && a->w_warm > 0)
		off = snprintf(buf, len, "warm pool of %.64s on %s (score %.2f)", req->template_id,
			       name, s);
	else if (pick->cached && a->w_cached > 0)
		off = snprintf(buf, len, "image %.128s cached on %s (score %.2f)", req->image, name,
			       s);
	else
		off = snprintf(buf, len, "most free capacity on %s (score %.2f)", name, s);
	if (off < 0 || (size_t)off >= len)
		return;
	if (!(pick->warm && a->w_warm > 0) && a->w_warm > 0 && (r = best_rejected(inv, 1))) {
		pol_node_name(inv, r, other, sizeof other);
		snprintf(buf + off, len - (size_t)off, "; %.64s is warm on %s but it is %s",
			 req->template_id, other, r->reject);
	} else if (!pick->warm && !(pick->cached && a->w_cached > 0) && a->w_cached > 0 &&
		   (r = best_rejected(inv, 0))) {
		pol_node_name(inv, r, other, sizeof other);
		snprintf(buf + off, len - (size_t)off, "; the image is cached on %s but it is %s",
			 other, r->reject);
	}
}

/*
 * One call at a time (the core serialises them); never blocks. request and nodes are
 * borrowed, *choice is a new reference. SBX_E_LIMIT when no node passes the filters.
 */
static int select_node(void *inst, const json_t *request, const json_t *nodes, json_t **choice,
		       sbx_err *err)
{
	const struct affinity *a = inst;
	struct pol_request req;
	struct pol_inventory inv;
	const struct pol_node *pick = NULL;
	double best = 0;
	char reason[512];
	int rc;

	*choice = NULL;
	if ((rc = pol_request_parse(request, &req, err)) < 0)
		return rc;
	if ((rc = pol_inventory_load(nodes, &req, &a->lim, &inv, err)) < 0)
		return rc;
	for (size_t i = 0; i < inv.n; i++) {
		const struct pol_node *n = &inv.nodes[i];
		double s;

		if (!n->passes)
			continue;
		s = score(a, n);
		if (!pick || s > best + SCORE_EPS ||
		    (s > best - SCORE_EPS && pol_tiebreak(n, pick) < 0)) {
			pick = n;
			best = s;
		}
	}
	if (!pick) {
		rc = pol_no_node(&inv, &req, err);
		goto out;
	}
	explain(a, &inv, &req, pick, best, reason, sizeof reason);
	rc = pol_choice(pick, reason, choice, err);
out:
	pol_inventory_free(&inv);
	return rc;
}

static const struct sbx_policy_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_POLICY, struct sbx_policy_plugin, "affinity", "1.0.0",
			     "weighted free capacity and template affinity (warm pool, cached "
			     "image)"),
    .life = {.create = create, .destroy = destroy},
    .select_node = select_node,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);
SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
