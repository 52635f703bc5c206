/*
 * REST handlers (api_*.c). Each takes a routed request and sets exactly one reply, or
 * marks the request deferred and completes it later.
 */
#ifndef SBXD_API_H
#define SBXD_API_H

#include "http.h"

/* api_health.c */
void api_health(struct req *r);
void api_health_detailed(struct req *r);
void api_nodes(struct req *r);
void api_metrics(struct req *r);
void api_openapi(struct req *r);
void api_docs(struct req *r);

/* api_sessions.c */
void api_session_create(struct req *r);
void api_session_list(struct req *r);
void api_session_get(struct req *r);
void api_session_terminate(struct req *r);
void api_session_delete(struct req *r);
/* archive.c */
void api_session_archive(struct req *r);

/* api_executions.c */
void api_execute(struct req *r);
void api_execute_sync(struct req *r);
void api_execution_get(struct req *r);
void api_execution_list(struct req *r);
void api_execution_stream(struct req *r);

/* api_templates.c */
void api_template_create(struct req *r);
void api_template_list(struct req *r);
void api_template_get(struct req *r);
void api_template_update(struct req *r);
void api_template_delete(struct req *r);

/* api_files.c */
void api_files_list(struct req *r);
void api_files_upload(struct req *r);
void api_files_download(struct req *r);
void api_files_delete(struct req *r);

/* api_keys.c (admin) */
void api_keys_create(struct req *r);
void api_keys_list(struct req *r);
void api_keys_get(struct req *r);
void api_keys_revoke(struct req *r);

/* Shared helpers (api_common.c). */
/* Parse the JSON body as an object; on failure replies 400 and returns NULL. */
json_t *api_body_object(struct req *r);
/* Parse ?limit&offset with defaults and bounds; replies 422 and returns -1 when invalid. */
int api_paging(struct req *r, int def_limit, int max_limit, int *limit, int *offset);
/* Wrap a db page {items,total} into {items,total,limit,offset,has_more}; items mapped by fn. */
json_t *api_page(json_t *page, int limit, int offset,
		 json_t *(*fn)(struct server *, const json_t *), struct server *srv);

#endif
