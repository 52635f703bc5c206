/*
 * The code shared by the policy modules `affinity` and `spread`: strict numeric config,
 * the request's needs, the node inventory parsed once per call with the hard filters
 * (health, session slots, memory and CPU with overcommit) applied, the deterministic
 * tie-break, and the SBX_E_LIMIT message. Linked into both modules as the convenience
 * library libpolcommon.la; never installed. Nothing here blocks or keeps global state.
 */
#ifndef SBX_POLCOMMON_H
#define SBX_POLCOMMON_H

#include <stddef.h>

#include <sandbox/core.h>
#include <sandbox/policy.h>

/* Inventories longer than this are refused (SBX_E_INTERNAL): a bound on per-call memory. */
#define POL_MAX_NODES 65536
/* Room for one node's rejection ("node-a full (64/64 sessions)"). */
#define POL_REJECT_MAX 160

/* ---- pconfig.c: strict numeric config ------------------------------------------- */

/* One accepted config key: a JSON number (integer or real) in min..max, stored in *dst,
 * which holds the default on entry. */
struct pol_key {
	const char *name;
	double *dst;
	double min, max;
};

/*
 * Unpacks `config` (borrowed; NULL or an object) against keys[0..n-1]. Every member must be
 * one of the keys: an unknown key, a non-number or a value out of range fails with
 * SBX_E_INVALID and a message starting "<module> policy '<who>': " that names the key and
 * what it accepts. Values of keys absent from config are left alone.
 */
int pol_config_numbers(const char *module, const char *who, const json_t *config,
		       const struct pol_key *keys, size_t n, sbx_err *err);

/* ---- inventory.c: request, nodes, filters --------------------------------------- */

/* What the session needs, from select_node's request (borrowed strings). */
struct pol_request {
	const char *template_id; /* NULL when absent */
	const char *image;       /* NULL when absent */
	double cpu;              /* cores, >= 0 (0 when not given) */
	double memory_mb;        /* >= 0 (0 when not given) */
};

/* Fills *req. A member of the wrong type or a negative amount: SBX_E_INVALID naming it. */
int pol_request_parse(const json_t *request, struct pol_request *req, sbx_err *err);

/* How far allocations may exceed a node's capacity: effective = capacity * overcommit. */
struct pol_limits {
	double cpu_overcommit;
	double memory_overcommit;
};

/*
 * One inventory entry as the filters saw it. A capacity member the node does not report
 * is unknown: it does not filter, and its free fraction counts as 0 so that a node that
 * reports free room beats one that reports nothing. A member of the wrong type (or a
 * negative or non-finite number) makes the entry malformed: it is skipped with a reason.
 */
struct pol_node {
	const char *id;      /* borrowed from the inventory; NULL when the entry lacks one */
	const char *runtime; /* idem */
	size_t index;        /* position in the inventory */
	int passes;          /* 1 when every hard filter let it through */
	int warm;            /* the request's template has a ready warm sandbox here */
	int cached;          /* the request's image is among images_cached */
	double sessions, max_sessions;        /* max_sessions < 0: not reported */
	double free_slots;                    /* max_sessions - sessions; -1 when not reported */
	double free_cpu, free_mem;            /* effective capacity - allocated; -1 when unknown */
	double cpu_frac, mem_frac, slot_frac; /* free / effective capacity, 0..1, 0 unknown */
	double mem_used_frac;                 /* allocated / effective memory; 1 unknown */
	double slot_used_frac;                /* sessions / max_sessions; 1 unknown */
	char reject[POL_REJECT_MAX];          /* why it was filtered out, "" when it passes */
};

struct pol_inventory {
	struct pol_node *nodes; /* n entries, in inventory order */
	size_t n;
	size_t n_pass;     /* how many pass the filters */
	int multi_runtime; /* entries come from more than one runtime instance */
};

/*
 * Parses `nodes` (borrowed; the select_node inventory) for `req` under `lim` and applies
 * the hard filters to every entry. 0, or SBX_E_INTERNAL when nodes is not an array, is
 * longer than POL_MAX_NODES or memory runs out. inv's strings borrow from `nodes`; release
 * with pol_inventory_free.
 */
int pol_inventory_load(const json_t *nodes, const struct pol_request *req,
		       const struct pol_limits *lim, struct pol_inventory *inv, sbx_err *err);
void pol_inventory_free(struct pol_inventory *inv);

/* The deterministic tie-break: <0 when a goes first: more free session slots (a reported
 * count before an unknown one), then runtime name, then node id (byte order), then the
 * inventory position. */
int pol_tiebreak(const struct pol_node *a, const struct pol_node *b);

/* A node's name in messages: "id", or "runtime/id" when several runtimes report nodes. */
void pol_node_name(const struct pol_inventory *inv, const struct pol_node *n, char *buf,
		   size_t len);

/*
 * The SBX_E_LIMIT error when no node passes: "no node can take the session (needs 1.00
 * CPU, 512 MiB): node-a full (64/64 sessions), node-b unhealthy, and 3 more". The nodes
 * named first are the best candidates: warm, then cached, then by pol_tiebreak.
 * Returns -SBX_E_LIMIT (or -SBX_E_INTERNAL when memory runs out).
 */
int pol_no_node(const struct pol_inventory *inv, const struct pol_request *req, sbx_err *err);

/* *choice = {"node", "runtime", "reason"} for `n` (which must pass). 0 or -SBX_E_INTERNAL. */
int pol_choice(const struct pol_node *n, const char *reason, json_t **choice, sbx_err *err);

#endif
