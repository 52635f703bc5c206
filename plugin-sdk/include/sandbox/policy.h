/*
 * Policy modules choose the node for a new session from the node inventory.
 */
#ifndef SANDBOX_POLICY_H
#define SANDBOX_POLICY_H

#include <sandbox/core.h>
#include <sandbox/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Threads: the core serialises calls (one at a time, from whichever core thread is placing
 * a session). Must not block (no I/O, no sleeping, no core http_request): placement sits
 * on the session-create path.
 */
struct sbx_policy_plugin {
	struct sbx_plugin_header hdr;
	struct sbx_plugin_lifecycle life;

	/* Mandatory. request (borrowed): {"session_id", "template_id", "image",
	 * "resources": {...}}; nodes (borrowed): the inventory, an array as in
	 * runtime.nodes, each with an added "runtime" (instance name).
	 * *choice (new reference): {"node": "id", "runtime": "instance", "reason"?: "..."}.
	 * SBX_E_LIMIT when no node can take the session. */
	int (*select_node)(void *inst, const json_t *request, const json_t *nodes, json_t **choice,
			   sbx_err *err);
};

#ifdef __cplusplus
}
#endif
#endif
