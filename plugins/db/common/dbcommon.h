/*
 * db/common: what the db modules sqlite and mariadb share, as the convenience library
 * libdbcommon.la (not installed): the db.h domain rules that hold whatever the database
 * (record kinds and their indexed members, record checks, the *_update merge, list query
 * validation, pages, lease arguments), without SQL. Nothing here is exported.
 */
#ifndef SBX_DB_COMMON_H
#define SBX_DB_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <sandbox/err.h>

/* ---- record kinds ------------------------------------------------------------------ */

/* A member a module keeps in an indexed column. */
struct dbc_col {
	const char *name;
	int is_time; /* integer ms, else string */
};

#define DBC_MAX_COLS 8

/* A record kind: its name in messages and its indexed members, in column order. */
struct dbc_kind {
	const char *what; /* "session" */
	const struct dbc_col *cols;
	int ncols;
	int needs_session_id; /* the record must carry a string "session_id" */
};

extern const struct dbc_kind dbc_session, dbc_execution, dbc_template;

/* An indexed member's value, borrowed from the record. */
enum { DBC_NULL, DBC_STR, DBC_I64 };
struct dbc_val {
	int type;
	const char *s; /* DBC_STR */
	size_t len;    /* DBC_STR */
	long long i;   /* DBC_I64 */
};

/* Fills vals[0..k->ncols) from rec: absent or null -> DBC_NULL, else a string or integer ms
 * as the column wants (SBX_E_INVALID otherwise). The strings are rec's. */
int dbc_columns(const struct dbc_kind *k, const json_t *rec, struct dbc_val *vals, sbx_err *err);

/* ---- record checks and documents --------------------------------------------------- */

/* "<kind> id must be a non-empty string" unless id is. */
int dbc_check_id(const struct dbc_kind *k, const char *id, sbx_err *err);

/* For *_insert: checks rec (an object with a non-empty string "id", and a "session_id"
 * where the kind needs one) and makes *copy, a shallow copy with "version" 1. On success
 * *id points into rec and the caller releases *copy. */
int dbc_insert_record(const struct dbc_kind *k, const json_t *rec, const char **id, json_t **copy,
		      sbx_err *err);

/* For *_update: checks id and that changes is an object. */
int dbc_check_update(const struct dbc_kind *k, const char *id, const json_t *changes, sbx_err *err);

/* The record's "version" member, 0 when it has none. */
json_int_t dbc_doc_version(const json_t *rec);

/*
 * The *_update merge into cur, the stored record `id`: SBX_E_CONFLICT unless its status
 * equals expect_status (when non-NULL); then the top-level members of changes are set (a
 * null stays null) except "id" and "version", "version" becomes `version`, and a kind that
 * needs a "session_id" must still have one.
 */
int dbc_merge(const struct dbc_kind *k, const char *id, json_t *cur, const json_t *changes,
	      const char *expect_status, json_int_t version, sbx_err *err);

/* rec as compact JSON in *doc (malloc'd, the caller frees it). */
int dbc_serialise(const struct dbc_kind *k, const char *id, const json_t *rec, char **doc,
		  sbx_err *err);

/* Parses a stored document (len bytes, NULL for SQL NULL) into *out, which must be an
 * object; SBX_E_INTERNAL otherwise. */
int dbc_load_doc(const char *text, size_t len, const char *what, json_t **out, sbx_err *err);

/* Fills err with "<kind> '<id>' not found" / "already exists"; returns the negated code. */
int dbc_not_found(const struct dbc_kind *k, const char *id, sbx_err *err);
int dbc_exists(const struct dbc_kind *k, const char *id, sbx_err *err);

/* ---- list queries ------------------------------------------------------------------ */

#define DBC_LIST_DEFAULT_LIMIT 100
#define DBC_LIST_MAX_LIMIT     1000

/* The fields a list query can compare; each module maps them to its SQL expressions. */
enum dbc_field {
	DBC_F_STATUS,
	DBC_F_TEMPLATE_ID,
	DBC_F_TENANT,
	DBC_F_RUNTIME_INSTANCE,
	DBC_F_SESSION_ID,
	DBC_F_ACTIVITY, /* last_activity_at, or created_at for a session never used */
	DBC_F__COUNT
};

/* How a member compares: equal to a string, among strings, or an integer (ms) above. */
enum dbc_ftype { DBC_EQ, DBC_IN, DBC_BEFORE };

struct dbc_filter {
	const char *key;
	enum dbc_ftype type;
	enum dbc_field field;
};

/* The list query kinds: "session_list", "execution_list". */
struct dbc_list {
	const char *what;
	const struct dbc_filter *filters; /* ends with a NULL key */
};

extern const struct dbc_list dbc_session_list, dbc_execution_list;

#define DBC_MAX_CONDS 8

/* A validated list query: its conditions (members set to null are left out), in the
 * query's order, with their values borrowed from it (DBC_IN: a non-empty or empty array of
 * strings), and the page bounds. */
struct dbc_query {
	struct {
		const struct dbc_filter *f;
		const json_t *v;
	} cond[DBC_MAX_CONDS];
	unsigned n;
	long long limit, offset;
};

/* Validates query (NULL = no filter) for list l into q: unknown members, wrong types and
 * out-of-range limit/offset are SBX_E_INVALID. */
int dbc_list_query(const struct dbc_list *l, const json_t *query, struct dbc_query *q,
		   sbx_err *err);

/*
 * The WHERE clause of q in *sql (malloc'd, the caller frees it): " WHERE 1", then " AND
 * <expr> = ?", " AND <expr> < ?", " AND <expr> IN (?, ...)" or " AND 0" (an empty IN) per
 * condition, with expr[field] the module's SQL for each field. Both drivers take "?"
 * placeholders; bind dbc_query_values to them in order.
 */
int dbc_where(const struct dbc_query *q, const char *const expr[DBC_F__COUNT], char **sql,
	      sbx_err *err);

/* The values q compares with, in the order their placeholders appear: one per DBC_EQ or
 * DBC_BEFORE condition (a string or an integer), one per string of a DBC_IN array. Fills
 * vals when non-NULL and returns their number. */
size_t dbc_query_values(const struct dbc_query *q, const json_t **vals);

/* *page = {"items": items, "total": total} (items gains a reference). */
int dbc_page(json_t *items, long long total, json_t **page, sbx_err *err);

/* template_list: query {"tenant"?: t}; *tenant is t (borrowed) or NULL for every template. */
int dbc_template_query(const json_t *query, const char **tenant, sbx_err *err);

/* ---- leases ------------------------------------------------------------------------ */

int dbc_lease_acquire_args(const char *name, const char *holder, int64_t ttl_ms, sbx_err *err);
int dbc_lease_release_args(const char *name, const char *holder, sbx_err *err);

/* now + ttl_ms, saturated. */
int64_t dbc_lease_expiry(int64_t now, int64_t ttl_ms);

/* SBX_E_CONFLICT: lease `name` is held by `holder` until expires_at (ms). */
int dbc_lease_held(const char *name, const char *holder, int64_t expires_at, int64_t now,
		   sbx_err *err);

#endif
