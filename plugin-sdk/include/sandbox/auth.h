/*
 * Auth modules turn a request's credentials into a principal (tenant and role).
 * Loaded auth instances form a chain in configuration order.
 */
#ifndef SANDBOX_AUTH_H
#define SANDBOX_AUTH_H

#include <sandbox/core.h>
#include <sandbox/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Threads: any core worker thread, concurrently; may block briefly (e.g. a db lookup).
 */
struct sbx_auth_plugin {
	struct sbx_plugin_header hdr;
	struct sbx_plugin_lifecycle life;

	/* Mandatory. request (borrowed): {"method", "path", "remote_addr",
	 * "headers": {"lower-case-name": "value"}}.
	 * Returns 0 with *principal (new reference) {"tenant", "role": "admin"|"user"|
	 * "read-only", "subject", "key_id"?} when the credential is this module's and valid;
	 * SBX_DEFER when the request carries no credential this module recognises (the next
	 * module in the chain is asked); SBX_E_UNAUTHORIZED when it is this module's kind of
	 * credential but invalid or expired. If every module defers, the core refuses (401). */
	int (*authenticate)(void *inst, const json_t *request, json_t **principal, sbx_err *err);

	/* Optional. Key management for modules that own credentials (apikey).
	 * op (borrowed): {"op": "create"|"list"|"revoke", ...}; *result new reference. */
	int (*manage)(void *inst, const json_t *op, json_t **result, sbx_err *err);
};

#ifdef __cplusplus
}
#endif
#endif
