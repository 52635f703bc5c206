/*
 * Runtime modules make, watch and destroy sandboxes. The core talks to the sbx-executor
 * inside a sandbox itself (executor-protocol.md), at the address the runtime returns.
 */
#ifndef SANDBOX_RUNTIME_H
#define SANDBOX_RUNTIME_H

#include <sandbox/core.h>
#include <sandbox/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Threads: every method may be called from any core worker thread, concurrently, and
 * may block (bounded by the module's own timeouts). Arguments are borrowed; `json_t **`
 * outputs are new references owned by the caller; on error nothing is returned in them.
 *
 * spec (sandbox_create):
 *   {"session_id": "s-...", "template_id": "python-basic", "image": "sandbox-...:latest",
 *    "runtime_type": "python3.11",
 *    "resources": {"cpu": 1.0, "memory_mb": 512, "disk_mb": 1024, "max_processes": 128},
 *    "env_vars": {"K": "V"}, "network": "none"|"loopback", "executor_token": "hex",
 *    "node"?: "id" (the policy's choice), "pool_owner"?: "boot@replica"}
 *   A warm-pool sandbox (built ahead for a template) has no session_id and a pool_owner;
 *   modules keep pool_owner and return it in the handle from sandbox_create and
 *   sandbox_list, so that state sync on any replica can tell whose pool it is in. The core
 *   passes session env_vars with each execution; a module need not apply them.
 * handle (returned by sandbox_create, stored by the core, passed back later):
 *   {"sandbox_id": "...", "session_id": "...", "node": "...",
 *    "container_id"?: "...", "pod_name"?: "...", "workspace_path"?: "/host/path",
 *    "executor": {"unix_socket"?: "/host/path.sock", "url": "http://sandbox",
 *                 "token"?: "..."}, "pool_owner"?: "..."}
 *   Modules may add their own members; the core keeps the whole object.
 */
struct sbx_runtime_plugin {
	struct sbx_plugin_header hdr;
	struct sbx_plugin_lifecycle life;

	/* Mandatory. Build and start a sandbox; return once its executor answers /health.
	 * Errors: SBX_E_INVALID (spec unusable, e.g. unknown image), SBX_E_LIMIT (node full),
	 * SBX_E_UNAVAILABLE (engine down). Nothing may be left behind on error. */
	int (*sandbox_create)(void *inst, const json_t *spec, json_t **handle, sbx_err *err);

	/* Mandatory. Stop and remove everything the sandbox owns (processes, mounts,
	 * cgroups, directories, containers). Idempotent: a sandbox already gone is 0. */
	int (*sandbox_destroy)(void *inst, const json_t *handle, sbx_err *err);

	/* Mandatory. *status: {"state": "running"|"exited"|"missing", "reason"?: "...",
	 * "oom_killed"?: true}. */
	int (*sandbox_status)(void *inst, const json_t *handle, json_t **status, sbx_err *err);

	/* Mandatory. Every sandbox this instance owns, as an array of handles (state sync
	 * after a restart: the core re-adopts known ones and destroys orphans). */
	int (*sandbox_list)(void *inst, json_t **handles, sbx_err *err);

	/* Optional. Node inventory: array of {"id", "healthy": true, "capacity": {"cpu",
	 * "memory_mb", "max_sessions"}, "allocated": {"cpu", "memory_mb", "sessions"},
	 * "templates_warm": [], "images_cached": ["image name", ...]}. The core fills
	 * templates_warm from its warm pools ([{"template_id", "ready"}]). */
	int (*nodes)(void *inst, json_t **nodes, sbx_err *err);

	/* Optional. A real check of the module's dependencies; *detail is an object shown at
	 * /health/detailed. 0 healthy, <0 unhealthy with err saying why. */
	int (*health)(void *inst, json_t **detail, sbx_err *err);
};

#ifdef __cplusplus
}
#endif
#endif
