/*
 * The API's views of stored records (sessions, executions, templates) and the parsing of
 * resource quantities. Internal members (runtime handles, tokens, tenants) never leave here.
 */
#ifndef SBXD_MODEL_H
#define SBXD_MODEL_H

#include <stdint.h>

#include <jansson.h>

#include "server.h"

json_t *model_session_view(struct server *srv, const json_t *rec);
json_t *model_execution_view(struct server *srv, const json_t *rec);
json_t *model_template_view(struct server *srv, const json_t *rec);

/* "512Mi", "1Gi", "1024" (MiB), 512 (MiB) → MiB; -1 when malformed. */
int64_t model_parse_mib(const json_t *v);
/* 1, 0.5, "500m", "2" → cores; -1 when malformed. */
double model_parse_cpu(const json_t *v);
/* MiB → "512Mi" / "2Gi". */
json_t *model_mib_string(int64_t mib);

/* Environment variables: an object of string values with valid names, bounded.
 * Returns 0 or -1 with a message in msg. */
int model_check_env(const json_t *env, const char *field, char *msg, size_t len);
/* base (borrowed, may be NULL/non-object) overlaid with overlay's checked entries (the
 * client's `field`, may be NULL or null). Returns a new object, or NULL with msg set. */
json_t *model_merge_env(const json_t *base, const json_t *overlay, const char *field, char *msg,
			size_t len);
/* The client-visible template fields, NULL-terminated ("id" first). */
extern const char *const model_template_fields[];
/* A client-supplied id: 1..64 of [A-Za-z0-9_.-]. */
int model_valid_id(const char *s);

#endif
