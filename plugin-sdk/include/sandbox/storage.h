/*
 * Storage modules keep objects (workspace archives, large outputs) under string keys.
 * Keys are relative paths of 1..1024 bytes: [A-Za-z0-9._/-], no "..", no leading "/".
 */
#ifndef SANDBOX_STORAGE_H
#define SANDBOX_STORAGE_H

#include <string.h>

#include <sandbox/core.h>
#include <sandbox/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SBX_STORAGE_KEY_MAX 1024

/*
 * The key rules above, for modules to apply (header-only: nothing to link). A prefix
 * (is_prefix != 0) may end in '/' or in the middle of a component; a key may not. Empty
 * and "." components are refused too, since none of them names a distinct object.
 * Returns 0, or -SBX_E_INVALID with err saying which rule the key breaks.
 */
static inline int sbx_storage_key_check(const char *key, int is_prefix, sbx_err *err)
{
	size_t len = key ? strlen(key) : 0;
	const char *why = NULL;

	if (len == 0 || len > SBX_STORAGE_KEY_MAX)
		why = "must be 1..1024 bytes";
	else if (key[0] == '/')
		why = "must be relative (no leading '/')";
	else if (strstr(key, ".."))
		why = "must not contain \"..\"";
	else if (strstr(key, "//"))
		why = "must not contain empty components";
	else if (strcmp(key, ".") == 0 || strncmp(key, "./", 2) == 0 || strstr(key, "/./") ||
		 (!is_prefix && len >= 2 && strcmp(key + len - 2, "/.") == 0))
		why = "must not contain \".\" components";
	else if (!is_prefix && key[len - 1] == '/')
		why = "must not end with '/'";
	for (size_t i = 0; !why && i < len; i++) {
		char c = key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '/' || c == '-'))
			why = "may only contain A-Z a-z 0-9 . _ / -";
	}
	if (why)
		return sbx_err_set(err, SBX_E_INVALID, "storage key '%.64s%s' %s", key ? key : "",
				   len > 64 ? "..." : "", why);
	return 0;
}

/*
 * Threads: any core worker thread, concurrently; may block (bounded). Arguments borrowed,
 * `json_t **` outputs are new references. A key outside the rules above is SBX_E_INVALID;
 * a missing object is SBX_E_NOTFOUND.
 */
struct sbx_storage_plugin {
	struct sbx_plugin_header hdr;
	struct sbx_plugin_lifecycle life;

	/* Mandatory. Store `size` bytes pulled from read_fn (size -1: until read_fn returns
	 * 0). The object appears atomically: readers see the old object or the whole new
	 * one, never a part. content_type may be NULL. */
	int (*put)(void *inst, const char *key, sbx_read_fn read_fn, void *read_ctx, long long size,
		   const char *content_type, sbx_err *err);

	/* Mandatory. Stream the object to write_fn. A write_fn failure aborts with
	 * SBX_E_INTERNAL. */
	int (*get)(void *inst, const char *key, sbx_write_fn write_fn, void *write_ctx,
		   sbx_err *err);

	/* Mandatory. *meta: {"key", "size", "modified_at" (ms), "content_type"?, "etag"?}. */
	int (*head)(void *inst, const char *key, json_t **meta, sbx_err *err);

	/* Mandatory. Objects whose key starts with prefix, in key order, at most `limit`
	 * (1..1000), starting after `cursor` (NULL for the first page).
	 * *page: {"items": [meta...], "next"?: "cursor"}. */
	int (*list)(void *inst, const char *prefix, const char *cursor, int limit, json_t **page,
		    sbx_err *err);

	/* Mandatory. Remove one object; a missing object is 0 (idempotent). */
	int (*del)(void *inst, const char *key, sbx_err *err);

	/* Mandatory. Remove every object under prefix (prefix must be non-empty). */
	int (*del_prefix)(void *inst, const char *prefix, sbx_err *err);

	/* Optional. A URL that GETs the object without credentials for ttl_s seconds.
	 * *url is malloc'd; the caller frees it. SBX_E_UNSUPPORTED if not offered. */
	int (*presign_get)(void *inst, const char *key, int ttl_s, char **url, sbx_err *err);

	/* Optional. As runtime.health. */
	int (*health)(void *inst, json_t **detail, sbx_err *err);
};

#ifdef __cplusplus
}
#endif
#endif
