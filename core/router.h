/*
 * Routing of /api/v1 requests to handlers, with authentication and role checks done once
 * here rather than in each handler.
 */
#ifndef SBXD_ROUTER_H
#define SBXD_ROUTER_H

#include "http.h"

void router_dispatch(struct req *r);

/* The principal's tenant ("default" without auth), and whether it may see all tenants. */
const char *router_tenant(struct req *r);
int router_is_admin(struct req *r);
/* A minimal OpenAPI document generated from the route table (new reference). */
json_t *router_openapi(void);

#endif
