/*
 * Helpers shared by the REST handlers: body parsing, paging parameters and page shapes.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

json_t *api_body_object(struct req *r)
{
	json_error_t je;
	json_t *o;

	if (!r->body || r->body_len == 0) {
		http_reply_error(r, 400, "Sandbox.InvalidRequest",
				 "Send a JSON object as the body.",
				 "the request has no body; a JSON object is required");
		return NULL;
	}
	o = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		http_reply_error(r, 400, "Sandbox.InvalidRequest", "Send a valid JSON object.",
				 "the body is not valid JSON: %s at line %d column %d", je.text,
				 je.line, je.column);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		http_reply_error(r, 400, "Sandbox.InvalidRequest",
				 "Send a JSON object, not an array or a scalar.",
				 "the body must be a JSON object");
		return NULL;
	}
	return o;
}

static int int_param(struct req *r, const char *name, int def, int lo, int hi, int *out)
{
	const char *s = http_query(r, name);
	char *end;
	long v;

	if (!s) {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi) {
		http_reply_error(r, 422, NULL, NULL,
				 "%s must be an integer in %d..%d (got '%.40s')", name, lo, hi, s);
		return -1;
	}
	*out = (int)v;
	return 0;
}

int api_paging(struct req *r, int def_limit, int max_limit, int *limit, int *offset)
{
	if (int_param(r, "limit", def_limit, 1, max_limit, limit) < 0)
		return -1;
	return int_param(r, "offset", 0, 0, 100000000, offset);
}

json_t *api_page(json_t *page, int limit, int offset,
		 json_t *(*fn)(struct server *, const json_t *), struct server *srv)
{
	json_t *items = json_array(), *it;
	json_int_t total = json_integer_value(json_object_get(page, "total"));
	size_t i;

	json_array_foreach (json_object_get(page, "items"), i, it)
		json_array_append_new(items, fn(srv, it));
	return json_pack("{s:o, s:I, s:i, s:i, s:b}", "items", items, "total", total, "limit",
			 limit, "offset", offset, "has_more",
			 (json_int_t)(offset + (json_int_t)i) < total);
}
