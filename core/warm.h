/*
 * Warm pools: per template and node, sandboxes built ahead of time so that creating a
 * session is a claim, not a build. A pooled sandbox has never run anyone's code; it was
 * built from the template's image with the template's default resources and no session
 * environment (the core passes a session's env vars with each execution, and restores a
 * workspace after the claim), so a session whose resources differ from the template's
 * defaults is built cold instead — a setting is never dropped. The filler loop keeps
 * each pool at its size, replaces sandboxes older than max_idle_s or built from an older
 * version of the template, and destroys the pool at shutdown. Pools live in one replica's
 * memory; their sandboxes carry a "pool_owner" (<boot>@<replica>) so state sync on any
 * replica knows whom they belong to.
 */
#ifndef SBXD_WARM_H
#define SBXD_WARM_H

#include <jansson.h>

#include "server.h"

int warm_start(struct server *srv);
void warm_stop(struct server *srv);

/* Takes a ready sandbox of template tmpl (borrowed record) on runtime instance `runtime`
 * (and node, unless node is "" or NULL) whose resources equal res. Returns its handle (new
 * reference, "session_id" not yet set) or NULL (a miss; counted when the template has a
 * pool). */
json_t *warm_claim(struct server *srv, const char *runtime, const char *node, const json_t *tmpl,
		   const json_t *res);
/* Adds "templates_warm": [{"template_id", "ready"}] to each node object of nodes (an array
 * of node inventories with "runtime" and "id"). */
void warm_annotate(struct server *srv, json_t *nodes);
/* {"hits", "misses", "ready": [{"template_id","runtime","node","ready","oldest_s"}]} */
json_t *warm_detail(struct server *srv);

#endif
