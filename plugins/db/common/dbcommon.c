/*
 * db/common: the db.h rules both db modules apply before and after their SQL: record
 * kinds, record checks and documents, the *_update merge, list query validation, pages
 * and lease arguments (see dbcommon.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbcommon.h"

/* ---- record kinds ------------------------------------------------------------------ */

static const struct dbc_col session_cols[] = {
    {"tenant", 0},     {"template_id", 0}, {"status", 0},           {"runtime_instance", 0},
    {"created_at", 1}, {"updated_at", 1},  {"last_activity_at", 1}, {"completed_at", 1},
};
static const struct dbc_col execution_cols[] = {
    {"session_id", 0}, {"tenant", 0},     {"status", 0},
    {"created_at", 1}, {"started_at", 1}, {"completed_at", 1},
};
static const struct dbc_col template_cols[] = {
    {"tenant", 0},
    {"created_at", 1},
};

#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

const struct dbc_kind dbc_session = {"session", session_cols, NCOLS(session_cols), 0};
const struct dbc_kind dbc_execution = {"execution", execution_cols, NCOLS(execution_cols), 1};
const struct dbc_kind dbc_template = {"template", template_cols, NCOLS(template_cols), 0};

int dbc_columns(const struct dbc_kind *k, const json_t *rec, struct dbc_val *vals, sbx_err *err)
{
	for (int i = 0; i < k->ncols; i++) {
		const struct dbc_col *col = &k->cols[i];
		const json_t *v = json_object_get(rec, col->name);

		if (!v || json_is_null(v)) {
			vals[i] = (struct dbc_val){.type = DBC_NULL};
		} else if (!col->is_time && json_is_string(v)) {
			vals[i] = (struct dbc_val){.type = DBC_STR,
						   .s = json_string_value(v),
						   .len = json_string_length(v)};
		} else if (col->is_time && json_is_integer(v)) {
			vals[i] = (struct dbc_val){.type = DBC_I64,
						   .i = (long long)json_integer_value(v)};
		} else {
			return sbx_err_set(err, SBX_E_INVALID, "%s member '%s' must be %s or null",
					   k->what, col->name,
					   col->is_time ? "an integer (ms)" : "a string");
		}
	}
	return 0;
}

/* ---- record checks and documents --------------------------------------------------- */

int dbc_check_id(const struct dbc_kind *k, const char *id, sbx_err *err)
{
	if (!id || !*id)
		return sbx_err_set(err, SBX_E_INVALID, "%s id must be a non-empty string", k->what);
	return 0;
}

int dbc_insert_record(const struct dbc_kind *k, const json_t *rec, const char **id, json_t **copy,
		      sbx_err *err)
{
	const json_t *v;

	if (!json_is_object(rec))
		return sbx_err_set(err, SBX_E_INVALID, "%s must be a JSON object", k->what);
	v = json_object_get(rec, "id");
	if (!json_is_string(v) || json_string_length(v) == 0)
		return sbx_err_set(err, SBX_E_INVALID, "%s lacks a non-empty string 'id'", k->what);
	*id = json_string_value(v);
	if (k->needs_session_id && !json_is_string(json_object_get(rec, "session_id")))
		return sbx_err_set(err, SBX_E_INVALID, "%s '%s' lacks a string 'session_id'",
				   k->what, *id);
	*copy = json_copy((json_t *)rec); /* shallow: only "version" is replaced */
	if (!*copy || json_object_set_new(*copy, "version", json_integer(1)) != 0) {
		json_decref(*copy);
		*copy = NULL;
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	return 0;
}

int dbc_check_update(const struct dbc_kind *k, const char *id, const json_t *changes, sbx_err *err)
{
	int ret = dbc_check_id(k, id, err);

	if (ret == 0 && !json_is_object(changes))
		ret = sbx_err_set(err, SBX_E_INVALID, "%s changes must be a JSON object", k->what);
	return ret;
}

json_int_t dbc_doc_version(const json_t *rec)
{
	const json_t *v = json_object_get(rec, "version");

	return json_is_integer(v) ? json_integer_value(v) : 0;
}

int dbc_merge(const struct dbc_kind *k, const char *id, json_t *cur, const json_t *changes,
	      const char *expect_status, json_int_t version, sbx_err *err)
{
	const char *key, *status;
	json_t *v;

	if (expect_status) {
		status = json_string_value(json_object_get(cur, "status"));
		if (!status || strcmp(status, expect_status) != 0)
			return sbx_err_set(err, SBX_E_CONFLICT, "%s '%s' has status '%s', not '%s'",
					   k->what, id, status ? status : "(none)", expect_status);
	}
	json_object_foreach ((json_t *)changes, key, v) {
		if (strcmp(key, "id") == 0 || strcmp(key, "version") == 0)
			continue;
		if (json_object_set(cur, key, v) != 0)
			return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	json_object_set_new(cur, "version", json_integer(version));
	if (k->needs_session_id && !json_is_string(json_object_get(cur, "session_id")))
		return sbx_err_set(err, SBX_E_INVALID, "%s '%s' needs a string 'session_id'",
				   k->what, id);
	return 0;
}

int dbc_serialise(const struct dbc_kind *k, const char *id, const json_t *rec, char **doc,
		  sbx_err *err)
{
	*doc = json_dumps(rec, JSON_COMPACT);
	if (!*doc)
		return sbx_err_set(err, SBX_E_INVALID, "%s '%s' cannot be serialised as JSON",
				   k->what, id);
	return 0;
}

int dbc_load_doc(const char *text, size_t len, const char *what, json_t **out, sbx_err *err)
{
	json_error_t jerr;
	json_t *v;

	v = text ? json_loadb(text, len, JSON_ALLOW_NUL, &jerr) : NULL;
	if (!json_is_object(v)) {
		json_decref(v);
		return sbx_err_set(err, SBX_E_INTERNAL, "stored %s record is not a JSON object",
				   what);
	}
	*out = v;
	return 0;
}

int dbc_not_found(const struct dbc_kind *k, const char *id, sbx_err *err)
{
	return sbx_err_set(err, SBX_E_NOTFOUND, "%s '%s' not found", k->what, id);
}

int dbc_exists(const struct dbc_kind *k, const char *id, sbx_err *err)
{
	return sbx_err_set(err, SBX_E_CONFLICT, "%s '%s' already exists", k->what, id);
}

/* ---- list queries ------------------------------------------------------------------ */

static const struct dbc_filter session_filters[] = {
    {"status", DBC_EQ, DBC_F_STATUS},
    {"statuses", DBC_IN, DBC_F_STATUS},
    {"template_id", DBC_EQ, DBC_F_TEMPLATE_ID},
    {"tenant", DBC_EQ, DBC_F_TENANT},
    {"runtime_instance", DBC_EQ, DBC_F_RUNTIME_INSTANCE},
    {"last_activity_before", DBC_BEFORE, DBC_F_ACTIVITY},
    {NULL, 0, 0},
};

static const struct dbc_filter execution_filters[] = {
    {"session_id", DBC_EQ, DBC_F_SESSION_ID},
    {"statuses", DBC_IN, DBC_F_STATUS},
    {"tenant", DBC_EQ, DBC_F_TENANT},
    {NULL, 0, 0},
};

const struct dbc_list dbc_session_list = {"session_list", session_filters};
const struct dbc_list dbc_execution_list = {"execution_list", execution_filters};

/* Whether v has the type filter f compares. */
static int value_fits(const struct dbc_filter *f, const json_t *v)
{
	size_t i;
	json_t *s;

	switch (f->type) {
	case DBC_EQ:
		return json_is_string(v);
	case DBC_BEFORE:
		return json_is_integer(v);
	case DBC_IN:
		if (!json_is_array(v))
			return 0;
		json_array_foreach ((json_t *)v, i, s)
			if (!json_is_string(s))
				return 0;
		return 1;
	}
	return 0;
}

int dbc_list_query(const struct dbc_list *l, const json_t *query, struct dbc_query *q, sbx_err *err)
{
	const char *key;
	json_t *v;

	q->n = 0;
	q->limit = DBC_LIST_DEFAULT_LIMIT;
	q->offset = 0;
	if (!query)
		return 0;
	if (!json_is_object(query))
		return sbx_err_set(err, SBX_E_INVALID, "%s query must be a JSON object", l->what);
	json_object_foreach ((json_t *)query, key, v) {
		const struct dbc_filter *f = l->filters;

		if (strcmp(key, "limit") == 0 || strcmp(key, "offset") == 0) {
			int is_limit = key[0] == 'l';
			json_int_t n = json_integer_value(v);

			if (!json_is_integer(v) || n < (is_limit ? 1 : 0) ||
			    (is_limit && n > DBC_LIST_MAX_LIMIT))
				return sbx_err_set(err, SBX_E_INVALID,
						   "%s query: '%s' must be an integer %s", l->what,
						   key, is_limit ? "in 1..1000" : ">= 0");
			*(is_limit ? &q->limit : &q->offset) = n;
			continue;
		}
		while (f->key && strcmp(f->key, key) != 0)
			f++;
		if (!f->key)
			return sbx_err_set(err, SBX_E_INVALID, "%s query: unknown member '%s'",
					   l->what, key);
		if (json_is_null(v))
			continue;
		if (!value_fits(f, v))
			return sbx_err_set(err, SBX_E_INVALID, "%s query: '%s' must be %s", l->what,
					   key,
					   f->type == DBC_EQ       ? "a string"
					   : f->type == DBC_BEFORE ? "an integer (ms)"
								   : "an array of strings");
		/* An object's keys are distinct, so there is at most one per filter. */
		if (q->n == DBC_MAX_CONDS)
			return sbx_err_set(err, SBX_E_INTERNAL, "%s query: too many conditions",
					   l->what);
		q->cond[q->n].f = f;
		q->cond[q->n].v = v;
		q->n++;
	}
	return 0;
}

int dbc_where(const struct dbc_query *q, const char *const expr[DBC_F__COUNT], char **sql,
	      sbx_err *err)
{
	size_t len = 0;
	FILE *f;
	int ok;

	*sql = NULL;
	f = open_memstream(sql, &len);
	if (!f)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	fputs(" WHERE 1", f);
	for (unsigned i = 0; i < q->n; i++) {
		const char *e = expr[q->cond[i].f->field];
		size_t nv = json_array_size(q->cond[i].v);

		switch (q->cond[i].f->type) {
		case DBC_EQ:
			fprintf(f, " AND %s = ?", e);
			break;
		case DBC_BEFORE:
			fprintf(f, " AND %s < ?", e);
			break;
		case DBC_IN:
			if (nv == 0) {
				fputs(" AND 0", f);
				break;
			}
			fprintf(f, " AND %s IN (?", e);
			for (size_t j = 1; j < nv; j++)
				fputs(", ?", f);
			fputs(")", f);
			break;
		}
	}
	ok = !ferror(f);
	if (fclose(f) != 0 || !ok) {
		free(*sql);
		*sql = NULL;
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	return 0;
}

size_t dbc_query_values(const struct dbc_query *q, const json_t **vals)
{
	size_t n = 0, j;
	json_t *s;

	for (unsigned i = 0; i < q->n; i++) {
		if (q->cond[i].f->type != DBC_IN) {
			if (vals)
				vals[n] = q->cond[i].v;
			n++;
			continue;
		}
		json_array_foreach ((json_t *)q->cond[i].v, j, s) {
			if (vals)
				vals[n] = s;
			n++;
		}
	}
	return n;
}

int dbc_page(json_t *items, long long total, json_t **page, sbx_err *err)
{
	*page = json_pack("{s:O, s:I}", "items", items, "total", (json_int_t)total);
	if (!*page)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	return 0;
}

int dbc_template_query(const json_t *query, const char **tenant, sbx_err *err)
{
	const char *key;
	json_t *v;

	*tenant = NULL;
	if (query && !json_is_object(query))
		return sbx_err_set(err, SBX_E_INVALID, "template_list query must be a JSON object");
	json_object_foreach ((json_t *)query, key, v) {
		if (strcmp(key, "tenant") != 0)
			return sbx_err_set(err, SBX_E_INVALID,
					   "template_list query: unknown member '%s'", key);
		if (!json_is_null(v) && !json_is_string(v))
			return sbx_err_set(err, SBX_E_INVALID,
					   "template_list query: 'tenant' must be a string");
		*tenant = json_string_value(v);
	}
	return 0;
}

/* ---- leases ------------------------------------------------------------------------ */

int dbc_lease_acquire_args(const char *name, const char *holder, int64_t ttl_ms, sbx_err *err)
{
	if (!name || !*name || !holder || !*holder || ttl_ms <= 0)
		return sbx_err_set(err, SBX_E_INVALID,
				   "lease_acquire needs a name, a holder and a positive ttl_ms");
	return 0;
}

int dbc_lease_release_args(const char *name, const char *holder, sbx_err *err)
{
	if (!name || !*name || !holder || !*holder)
		return sbx_err_set(err, SBX_E_INVALID, "lease_release needs a name and a holder");
	return 0;
}

int64_t dbc_lease_expiry(int64_t now, int64_t ttl_ms)
{
	return now > INT64_MAX - ttl_ms ? INT64_MAX : now + ttl_ms;
}

int dbc_lease_held(const char *name, const char *holder, int64_t expires_at, int64_t now,
		   sbx_err *err)
{
	return sbx_err_set(err, SBX_E_CONFLICT, "lease '%s' is held by '%s' for another %lld ms",
			   name, holder, (long long)(expires_at - now));
}
