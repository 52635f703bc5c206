/*
 * Workspace archives: a session's /workspace saved to the storage plugin when it ends,
 * restored into a new session on request, deleted after the retention time.
 */
#ifndef SBXD_ARCHIVE_H
#define SBXD_ARCHIVE_H

#include "server.h"

/* The storage key of a session's archive (tenant and session ids are validated ids). */
void archive_key(const char *tenant, const char *session_id, char *out, size_t len);

/* Stream the sandbox's workspace (executor GET /archive) into storage. On success *info
 * is {"key", "size", "created_at"} (new reference). */
int archive_save(struct server *srv, const json_t *session, json_t **info, sbx_err *err);

/* Stream a stored archive into a running sandbox (executor PUT /archive). */
int archive_restore(struct server *srv, const json_t *session, const char *key, sbx_err *err);

/* Delete archives older than sessions.archive_retention_s (reaper, best effort). */
void archive_expire(struct server *srv);

#endif
