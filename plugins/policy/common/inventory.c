/*
 * The node inventory as both policies see it: each entry parsed once, tolerant of members
 * a runtime does not report and never trusting types, then the hard filters (healthy, a
 * free session slot, memory and CPU with overcommit), the tie-break and the refusal.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polcommon.h"

/* Fraction in 0..1; 0 when the denominator is not positive. */
static double frac(double num, double den)
{
	double f;

	if (!(den > 0))
		return 0;
	f = num / den;
	return f < 0 ? 0 : f > 1 ? 1 : f;
}

/*
 * A non-negative finite number member of `obj`. 1 and *out when present and valid, 0 when
 * absent (or obj is not an object), -1 when present but not a non-negative number.
 */
static int member_num(const json_t *obj, const char *key, double *out)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	double d;

	if (!v)
		return 0;
	if (!json_is_number(v))
		return -1;
	d = json_number_value(v);
	if (!isfinite(d) || d < 0)
		return -1;
	*out = d;
	return 1;
}

int pol_request_parse(const json_t *request, struct pol_request *req, sbx_err *err)
{
	const json_t *res, *v;
	static const char *const amounts[] = {"cpu", "memory_mb"};

	memset(req, 0, sizeof *req);
	if (!json_is_object(request))
		return sbx_err_set(err, SBX_E_INVALID,
				   "policy: the placement request is not an object");
	v = json_object_get(request, "template_id");
	if (v && !json_is_null(v) && !json_is_string(v))
		return sbx_err_set(err, SBX_E_INVALID,
				   "policy: request template_id is not a string");
	req->template_id = json_string_value(v);
	v = json_object_get(request, "image");
	if (v && !json_is_null(v) && !json_is_string(v))
		return sbx_err_set(err, SBX_E_INVALID, "policy: request image is not a string");
	req->image = json_string_value(v);
	res = json_object_get(request, "resources");
	if (res && !json_is_null(res) && !json_is_object(res))
		return sbx_err_set(err, SBX_E_INVALID,
				   "policy: request resources is not an object");
	for (size_t i = 0; i < sizeof amounts / sizeof amounts[0]; i++) {
		double d = 0;

		if (member_num(res, amounts[i], &d) < 0)
			return sbx_err_set(err, SBX_E_INVALID,
					   "policy: request resources.%s must be a number >= 0",
					   amounts[i]);
		if (i == 0)
			req->cpu = d;
		else
			req->memory_mb = d;
	}
	return SBX_OK;
}

/* Whether list (an array of names, or an object keyed by name) holds `name`. */
static int lists_name(const json_t *list, const char *name)
{
	size_t i;
	json_t *e;

	if (!name)
		return 0;
	if (json_is_object(list))
		return json_object_get(list, name) != NULL;
	json_array_foreach (list, i, e) {
		if (json_is_string(e) && !strcmp(json_string_value(e), name))
			return 1;
	}
	return 0;
}

/* templates_warm: ["tmpl", ...] (each has a ready sandbox) or [{"template_id", "ready"}]
 * where ready is true or a count > 0. Anything else there is ignored. */
static int has_warm(const json_t *list, const char *template_id)
{
	size_t i;
	json_t *e;

	if (!template_id)
		return 0;
	json_array_foreach (list, i, e) {
		const json_t *ready;

		if (json_is_string(e)) {
			if (!strcmp(json_string_value(e), template_id))
				return 1;
			continue;
		}
		if (!json_is_string(json_object_get(e, "template_id")) ||
		    strcmp(json_string_value(json_object_get(e, "template_id")), template_id))
			continue;
		ready = json_object_get(e, "ready");
		if (json_is_true(ready) || (json_is_number(ready) && json_number_value(ready) > 0))
			return 1;
	}
	return 0;
}

#define REJECT(n, ...) snprintf((n)->reject, sizeof(n)->reject, __VA_ARGS__)

/* Parses entry `e` into *n and applies the filters; n->passes says the outcome. */
static void load_one(const json_t *e, const struct pol_request *req, const struct pol_limits *lim,
		     struct pol_node *n)
{
	const json_t *cap, *used;
	double cap_cpu = -1, cap_mem = -1, used_cpu = 0, used_mem = 0;
	const char *bad = NULL;

	n->max_sessions = -1;
	n->free_slots = -1;
	n->free_cpu = n->free_mem = -1;
	n->mem_used_frac = n->slot_used_frac = 1;
	if (!json_is_object(e)) {
		REJECT(n, "entry %zu is not an object", n->index);
		return;
	}
	n->id = json_string_value(json_object_get(e, "id"));
	n->runtime = json_string_value(json_object_get(e, "runtime"));
	if (!n->id || !*n->id || !n->runtime || !*n->runtime) {
		n->id = n->runtime = NULL;
		REJECT(n, "entry %zu has no \"id\" or \"runtime\" string", n->index);
		return;
	}
	n->warm = has_warm(json_object_get(e, "templates_warm"), req->template_id);
	n->cached = lists_name(json_object_get(e, "images_cached"), req->image);
	if (!json_is_true(json_object_get(e, "healthy"))) {
		REJECT(n, "unhealthy");
		return;
	}
	cap = json_object_get(e, "capacity");
	used = json_object_get(e, "allocated");
	if (!json_is_object(cap)) {
		REJECT(n, "reports no capacity");
		return;
	}
	if (used && !json_is_object(used)) {
		REJECT(n, "malformed (allocated is not an object)");
		return;
	}
	if (member_num(cap, "cpu", &cap_cpu) < 0)
		bad = "capacity.cpu";
	else if (member_num(cap, "memory_mb", &cap_mem) < 0)
		bad = "capacity.memory_mb";
	else if (member_num(cap, "max_sessions", &n->max_sessions) < 0)
		bad = "capacity.max_sessions";
	else if (member_num(used, "cpu", &used_cpu) < 0)
		bad = "allocated.cpu";
	else if (member_num(used, "memory_mb", &used_mem) < 0)
		bad = "allocated.memory_mb";
	else if (member_num(used, "sessions", &n->sessions) < 0)
		bad = "allocated.sessions";
	if (bad) {
		REJECT(n, "malformed (%s is not a number >= 0)", bad);
		return;
	}

	if (n->max_sessions >= 0) {
		n->free_slots = n->max_sessions - n->sessions;
		if (n->free_slots < 0)
			n->free_slots = 0;
		n->slot_frac = frac(n->free_slots, n->max_sessions);
		n->slot_used_frac = n->max_sessions > 0 ? 1 - n->slot_frac : 1;
	}
	if (cap_mem >= 0) {
		double eff = cap_mem * lim->memory_overcommit;

		n->free_mem = eff - used_mem;
		if (n->free_mem < 0)
			n->free_mem = 0;
		n->mem_frac = frac(n->free_mem, eff);
		n->mem_used_frac = eff > 0 ? 1 - n->mem_frac : 1;
	}
	if (cap_cpu >= 0) {
		double eff = cap_cpu * lim->cpu_overcommit;

		n->free_cpu = eff - used_cpu;
		if (n->free_cpu < 0)
			n->free_cpu = 0;
		n->cpu_frac = frac(n->free_cpu, eff);
	}

	if (n->max_sessions >= 0 && n->free_slots < 1) {
		REJECT(n, "full (%.0f/%.0f sessions)", n->sessions, n->max_sessions);
		return;
	}
	if (n->free_mem >= 0 && n->free_mem < req->memory_mb) {
		REJECT(n, "memory exhausted (%.0f MiB needed, %.0f of %.0f free)", req->memory_mb,
		       n->free_mem, cap_mem * lim->memory_overcommit);
		return;
	}
	if (n->free_cpu >= 0 && n->free_cpu < req->cpu) {
		REJECT(n, "CPU exhausted (%.2f needed, %.2f of %.2f free)", req->cpu, n->free_cpu,
		       cap_cpu * lim->cpu_overcommit);
		return;
	}
	n->passes = 1;
}

int pol_inventory_load(const json_t *nodes, const struct pol_request *req,
		       const struct pol_limits *lim, struct pol_inventory *inv, sbx_err *err)
{
	size_t i, n;
	const char *first_rt = NULL;

	memset(inv, 0, sizeof *inv);
	if (!json_is_array(nodes))
		return sbx_err_set(err, SBX_E_INTERNAL,
				   "policy: the node inventory is not an array");
	n = json_array_size(nodes);
	if (n > POL_MAX_NODES)
		return sbx_err_set(err, SBX_E_INTERNAL,
				   "policy: the node inventory has %zu entries, more than %d", n,
				   POL_MAX_NODES);
	if (n == 0)
		return SBX_OK;
	inv->nodes = calloc(n, sizeof *inv->nodes);
	if (!inv->nodes)
		return sbx_err_set(err, SBX_E_INTERNAL, "policy: out of memory");
	inv->n = n;
	for (i = 0; i < n; i++) {
		struct pol_node *nd = &inv->nodes[i];

		nd->index = i;
		load_one(json_array_get(nodes, i), req, lim, nd);
		if (nd->passes)
			inv->n_pass++;
		if (nd->runtime) {
			if (!first_rt)
				first_rt = nd->runtime;
			else if (strcmp(first_rt, nd->runtime))
				inv->multi_runtime = 1;
		}
	}
	return SBX_OK;
}

void pol_inventory_free(struct pol_inventory *inv)
{
	free(inv->nodes);
	memset(inv, 0, sizeof *inv);
}

static int cmp_str(const char *a, const char *b)
{
	if (!a || !b)
		return (a == NULL) - (b == NULL); /* a missing name sorts last */
	return strcmp(a, b);
}

int pol_tiebreak(const struct pol_node *a, const struct pol_node *b)
{
	int c;

	if (a->free_slots != b->free_slots)
		return a->free_slots > b->free_slots ? -1 : 1;
	if ((c = cmp_str(a->runtime, b->runtime)) != 0)
		return c;
	if ((c = cmp_str(a->id, b->id)) != 0)
		return c;
	return a->index < b->index ? -1 : a->index > b->index;
}

void pol_node_name(const struct pol_inventory *inv, const struct pol_node *n, char *buf, size_t len)
{
	if (!n->id)
		snprintf(buf, len, "entry %zu", n->index);
	else if (inv->multi_runtime)
		snprintf(buf, len, "%.64s/%.64s", n->runtime, n->id);
	else
		snprintf(buf, len, "%.64s", n->id);
}

/* Best candidates first: well-formed, warm, cached, then the tie-break. */
static int cmp_candidates(const void *pa, const void *pb)
{
	const struct pol_node *a = *(const struct pol_node *const *)pa;
	const struct pol_node *b = *(const struct pol_node *const *)pb;

	if ((a->id == NULL) != (b->id == NULL))
		return a->id == NULL ? 1 : -1;
	if (a->warm != b->warm)
		return a->warm ? -1 : 1;
	if (a->cached != b->cached)
		return a->cached ? -1 : 1;
	return pol_tiebreak(a, b);
}

#define POL_NAMED_MAX 5

int pol_no_node(const struct pol_inventory *inv, const struct pol_request *req, sbx_err *err)
{
	const struct pol_node **order;
	char msg[SBX_ERR_MSG_MAX], name[140];
	size_t off, shown = 0, i;

	if (inv->n == 0)
		return sbx_err_set(err, SBX_E_LIMIT,
				   "no node can take the session: the runtimes report no nodes "
				   "(a runtime without nodes() cannot be placed by a policy)");
	order = calloc(inv->n, sizeof *order);
	if (!order)
		return sbx_err_set(err, SBX_E_INTERNAL, "policy: out of memory");
	for (i = 0; i < inv->n; i++)
		order[i] = &inv->nodes[i];
	qsort(order, inv->n, sizeof *order, cmp_candidates);
	off = (size_t)snprintf(msg, sizeof msg,
			       "no node can take the session (needs %.2f CPU, %.0f MiB):", req->cpu,
			       req->memory_mb);
	for (i = 0; i < inv->n && shown < POL_NAMED_MAX; i++) {
		int w;

		/* an entry without an id says which entry it is in its reason */
		name[0] = '\0';
		if (order[i]->id)
			pol_node_name(inv, order[i], name, sizeof name);
		w = snprintf(msg + off, sizeof msg - off, "%s %s%s%s", shown ? "," : "", name,
			     name[0] ? " " : "", order[i]->reject);
		if (w < 0 || off + (size_t)w + 24 >= sizeof msg) {
			msg[off] = '\0'; /* keep room for the "and N more" tail */
			break;
		}
		off += (size_t)w;
		shown++;
	}
	if (shown < inv->n)
		snprintf(msg + off, sizeof msg - off, ", and %zu more", inv->n - shown);
	free(order);
	return sbx_err_set(err, SBX_E_LIMIT, "%s", msg);
}

int pol_choice(const struct pol_node *n, const char *reason, json_t **choice, sbx_err *err)
{
	*choice =
	    json_pack("{s:s, s:s, s:s}", "node", n->id, "runtime", n->runtime, "reason", reason);
	return *choice ? SBX_OK : sbx_err_set(err, SBX_E_INTERNAL, "policy: out of memory");
}
