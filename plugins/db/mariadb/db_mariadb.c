/*
 * db/mariadb: the shared state store for several sbxd replicas. Owns the instance
 * (strict config, lifecycle) and the db.h methods: records as JSON documents with indexed
 * columns, compare-and-set updates on a version column, list queries and leases.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <mysql.h>
#include <mysqld_error.h>

#include <sandbox/core.h>
#include <sandbox/db.h>

#include "plugins/db/common/dbcommon.h"
#include "mariadb_int.h"

/* Compare-and-set rounds lost to concurrent writers before giving up. */
#define UPDATE_MAX_ROUNDS 32

const char *const md_stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "START TRANSACTION",
    [ST_BEGIN_RO] = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_S_INSERT] = "INSERT INTO sessions(id, tenant, template_id, status, runtime_instance,"
		    " created_at, updated_at, last_activity_at, completed_at, version, doc)"
		    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_S_GET] = "SELECT version, doc FROM sessions WHERE id = ?",
    [ST_S_UPDATE] = "UPDATE sessions SET tenant = ?, template_id = ?, status = ?,"
		    " runtime_instance = ?, created_at = ?, updated_at = ?,"
		    " last_activity_at = ?, completed_at = ?, version = ?, doc = ?"
		    " WHERE id = ? AND version = ?",
    [ST_S_DELETE] = "DELETE FROM sessions WHERE id = ?",
    [ST_S_DELETE_EXECS] = "DELETE FROM executions WHERE session_id = ?",
    [ST_E_INSERT] = "INSERT INTO executions(id, session_id, tenant, status, created_at,"
		    " started_at, completed_at, version, doc)"
		    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_E_GET] = "SELECT version, doc FROM executions WHERE id = ?",
    [ST_E_UPDATE] = "UPDATE executions SET session_id = ?, tenant = ?, status = ?,"
		    " created_at = ?, started_at = ?, completed_at = ?, version = ?, doc = ?"
		    " WHERE id = ? AND version = ?",
    [ST_T_INSERT] = "INSERT INTO templates(id, tenant, created_at, version, doc)"
		    " VALUES (?, ?, ?, ?, ?)",
    [ST_T_GET] = "SELECT version, doc FROM templates WHERE id = ?",
    [ST_T_UPDATE] = "UPDATE templates SET tenant = ?, created_at = ?, version = ?, doc = ?"
		    " WHERE id = ? AND version = ?",
    [ST_T_DELETE] = "DELETE FROM templates WHERE id = ?",
    [ST_T_LIST] = "SELECT doc FROM templates ORDER BY id",
    [ST_T_LIST_TENANT] = "SELECT doc FROM templates WHERE tenant = ? OR tenant IS NULL"
			 " ORDER BY id",
    /* holder is assigned first, so the expiry assignment sees whether it was taken. */
    [ST_L_UPSERT] = "INSERT INTO leases(name, holder, expires_at) VALUES (?, ?, ?)"
		    " ON DUPLICATE KEY UPDATE"
		    " holder = IF(holder = VALUES(holder) OR expires_at <= ?,"
		    " VALUES(holder), holder),"
		    " expires_at = IF(holder = VALUES(holder), VALUES(expires_at), expires_at)",
    [ST_L_GET] = "SELECT holder, expires_at FROM leases WHERE name = ?",
    [ST_L_DELETE] = "DELETE FROM leases WHERE name = ? AND holder = ?",
    [ST_HEALTH] = "SELECT 1, VERSION(), (SELECT MAX(version) FROM schema_version)",
};

/* A record kind: its statements (dbcommon's kind has its indexed columns, bound in that
 * order, then version and doc). */
struct kind {
	const struct dbc_kind *rec;
	int st_insert, st_get, st_update;
};

static const struct kind k_session = {&dbc_session, ST_S_INSERT, ST_S_GET, ST_S_UPDATE};
static const struct kind k_execution = {&dbc_execution, ST_E_INSERT, ST_E_GET, ST_E_UPDATE};
static const struct kind k_template = {&dbc_template, ST_T_INSERT, ST_T_GET, ST_T_UPDATE};

static struct md_param p_str(const char *s)
{
	return (struct md_param){.type = MP_STR, .s = s, .len = (unsigned long)strlen(s)};
}

static struct md_param p_i64(long long i)
{
	return (struct md_param){.type = MP_I64, .i = i};
}

/* A string or integer list query value as a parameter (borrowed). */
static struct md_param p_json(const json_t *v)
{
	if (json_is_string(v))
		return (struct md_param){.type = MP_STR,
					 .s = json_string_value(v),
					 .len = (unsigned long)json_string_length(v)};
	return p_i64((long long)json_integer_value(v));
}

/* ---- records ------------------------------------------------------------------- */

/* Fills p with the kind's columns from rec: null/absent -> NULL, else string or ms. */
static int col_params(const struct kind *k, const json_t *rec, struct md_param *p, sbx_err *err)
{
	struct dbc_val vals[DBC_MAX_COLS];
	int ret = dbc_columns(k->rec, rec, vals, err);

	for (int i = 0; ret == 0 && i < k->rec->ncols; i++) {
		if (vals[i].type == DBC_STR)
			p[i] = (struct md_param){
			    .type = MP_STR, .s = vals[i].s, .len = (unsigned long)vals[i].len};
		else if (vals[i].type == DBC_I64)
			p[i] = p_i64(vals[i].i);
		else
			p[i] = (struct md_param){.type = MP_NULL};
	}
	return ret;
}

static int rec_insert(struct mdb *d, const struct kind *k, const json_t *rec, sbx_err *err)
{
	struct md_param p[DBC_MAX_COLS + 3];
	struct conn *c = NULL;
	struct md_q q = {0};
	json_t *copy = NULL;
	const char *id = NULL;
	char *doc = NULL;
	int ret, np = 0;

	ret = dbc_insert_record(k->rec, rec, &id, &copy, err);
	if (ret < 0)
		goto out;
	p[np++] = p_str(id);
	ret = col_params(k, copy, p + np, err);
	if (ret < 0)
		goto out;
	np += k->rec->ncols;
	p[np++] = p_i64(1);
	ret = dbc_serialise(k->rec, id, copy, &doc, err);
	if (ret < 0)
		goto out;
	p[np++] = (struct md_param){.type = MP_BLOB, .s = doc, .len = (unsigned long)strlen(doc)};
	for (int attempt = 0;; attempt++) {
		ret = md_conn(d, &c, err);
		if (ret == 0)
			ret = md_run(c, k->st_insert, NULL, p, (unsigned)np, &q, err, "inserting");
		md_end(&q);
		if (!md_again(c, ret, 0, attempt))
			break;
	}
	if (ret == -SBX_E_CONFLICT && c && c->last_errno == ER_DUP_ENTRY)
		ret = dbc_exists(k->rec, id, err);
out:
	free(doc);
	json_decref(copy);
	return ret;
}

static int load_doc(const struct md_col *col, const char *what, json_t **out, sbx_err *err)
{
	return dbc_load_doc(col->buf, col->len, what, out, err);
}

/* Reads record `id` into *out (new reference) and its version column. */
static int rec_read(struct conn *c, const struct kind *k, const char *id, json_t **out,
		    long long *version, sbx_err *err)
{
	struct md_param p = p_str(id);
	struct md_col cols[2] = {{.type = MC_I64}, {.type = MC_BLOB}};
	struct md_q q = {0};
	int ret;

	ret = md_run(c, k->st_get, NULL, &p, 1, &q, err, "reading a record");
	if (ret < 0)
		goto out;
	ret = md_row(&q, cols, 2, err, "reading a record");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = dbc_not_found(k->rec, id, err);
		goto out;
	}
	if (version)
		*version = cols[0].i;
	ret = load_doc(&cols[1], k->rec->what, out, err);
	free(cols[1].buf);
out:
	md_end(&q);
	return ret;
}

static int rec_get(struct mdb *d, const struct kind *k, const char *id, json_t **out, sbx_err *err)
{
	struct conn *c = NULL;
	int ret;

	/* A call without an output is refused as if the id were missing. */
	ret = dbc_check_id(k->rec, out ? id : NULL, err);
	if (ret < 0)
		return ret;
	for (int attempt = 0;; attempt++) {
		ret = md_conn(d, &c, err);
		if (ret == 0)
			ret = rec_read(c, k, id, out, NULL, err);
		if (!md_again(c, ret, 1, attempt))
			break;
	}
	return ret;
}

/*
 * One compare-and-set round: read the record and its version, check the status, merge,
 * and UPDATE ... WHERE id = ? AND version = ?. The version guard makes the write atomic
 * with the read: of concurrent writers that read the same version exactly one changes
 * the row (InnoDB re-evaluates the WHERE on the latest committed row; Galera certifies
 * the others away). Returns 1 when another writer got in between (read again).
 * *wrote tells whether the UPDATE was sent (a lost connection then leaves it unknown).
 */
static int update_round(struct conn *c, const struct kind *k, const char *id, const json_t *changes,
			const char *expect_status, json_t **out, int *wrote, sbx_err *err)
{
	struct md_param p[DBC_MAX_COLS + 4];
	struct md_q q = {0};
	json_t *cur = NULL;
	long long oldv = 0;
	char *doc = NULL;
	int ret, np;

	*wrote = 0;
	ret = rec_read(c, k, id, &cur, &oldv, err);
	if (ret < 0)
		goto out;
	/* The version column is the one compared and set, whatever the document says. */
	ret = dbc_merge(k->rec, id, cur, changes, expect_status, oldv + 1, err);
	if (ret < 0)
		goto out;
	ret = col_params(k, cur, p, err);
	if (ret < 0)
		goto out;
	np = k->rec->ncols;
	p[np++] = p_i64(oldv + 1);
	ret = dbc_serialise(k->rec, id, cur, &doc, err);
	if (ret < 0)
		goto out;
	p[np++] = (struct md_param){.type = MP_BLOB, .s = doc, .len = (unsigned long)strlen(doc)};
	p[np++] = p_str(id);
	p[np++] = p_i64(oldv);
	*wrote = 1;
	ret = md_run(c, k->st_update, NULL, p, (unsigned)np, &q, err, "updating a record");
	if (ret < 0)
		goto out;
	if (md_affected(&q) != 1) {
		ret = 1;
		goto out;
	}
	if (out) {
		*out = cur;
		cur = NULL;
	}
out:
	md_end(&q);
	free(doc);
	json_decref(cur);
	return ret;
}

static int rec_update(struct mdb *d, const struct kind *k, const char *id, const json_t *changes,
		      const char *expect_status, json_t **out, sbx_err *err)
{
	struct conn *c = NULL;
	int ret, wrote = 0, rounds = 0;

	ret = dbc_check_update(k->rec, id, changes, err);
	if (ret < 0)
		return ret;
	for (int attempt = 0;; attempt++) {
		ret = md_conn(d, &c, err);
		if (ret == 0)
			ret = update_round(c, k, id, changes, expect_status, out, &wrote, err);
		if (ret == 1) {
			if (++rounds < UPDATE_MAX_ROUNDS) {
				attempt = -1;
				continue;
			}
			ret = sbx_err_set(err, SBX_E_CONFLICT,
					  "%s '%s' kept changing under %d concurrent updates; "
					  "retry",
					  k->rec->what, id, rounds);
		}
		if (!md_again(c, ret, !wrote, attempt))
			break;
	}
	return ret;
}

/* ---- list queries -------------------------------------------------------------- */

/* The SQL expression each list query field compares. */
static const char *const field_sql[DBC_F__COUNT] = {
    [DBC_F_STATUS] = "status",
    [DBC_F_TEMPLATE_ID] = "template_id",
    [DBC_F_TENANT] = "tenant",
    [DBC_F_RUNTIME_INSTANCE] = "runtime_instance",
    [DBC_F_SESSION_ID] = "session_id",
    /* activity_at is COALESCE(last_activity_at, created_at), indexed (schema.c). */
    [DBC_F_ACTIVITY] = "activity_at",
};

/* COUNT and SELECT in one read-only transaction with one snapshot, so total and items
 * agree. */
static int list_round(struct conn *c, const char *what, const char *count_sql, const char *list_sql,
		      struct md_param *p, unsigned np, json_t **page, sbx_err *err)
{
	struct md_col col = {.type = MC_I64}, dcol = {.type = MC_BLOB};
	struct md_q q = {0};
	json_t *items = json_array();
	long long total = 0;
	int ret;

	if (!items)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	ret = md_simple(c, ST_BEGIN_RO, err);
	if (ret < 0)
		goto out;
	ret = md_run(c, -1, count_sql, p, np - 2, &q, err, "counting records");
	if (ret < 0)
		goto out;
	ret = md_row(&q, &col, 1, err, "counting records");
	if (ret < 0)
		goto out;
	total = col.i;
	md_end(&q);
	ret = md_run(c, -1, list_sql, p, np, &q, err, "listing records");
	if (ret < 0)
		goto out;
	while ((ret = md_row(&q, &dcol, 1, err, "listing records")) > 0) {
		json_t *rec = NULL;

		ret = load_doc(&dcol, what, &rec, err);
		free(dcol.buf);
		if (ret < 0)
			goto out;
		json_array_append_new(items, rec);
	}
	if (ret < 0)
		goto out;
	md_end(&q);
	ret = md_simple(c, ST_COMMIT, err);
	if (ret < 0)
		goto out;
	ret = dbc_page(items, total, page, err);
out:
	md_end(&q);
	if (ret < 0)
		md_rollback(c);
	json_decref(items);
	return ret;
}

static int rec_list(struct mdb *d, const struct dbc_list *l, const char *table, const json_t *query,
		    json_t **page, sbx_err *err)
{
	struct dbc_query q;
	struct conn *c = NULL;
	const json_t **vals = NULL;
	struct md_param *p = NULL;
	char *wsql = NULL, *count_sql = NULL, *list_sql = NULL;
	size_t nvals;
	unsigned np;
	int ret;

	ret = dbc_list_query(l, query, &q, err);
	if (ret == 0)
		ret = dbc_where(&q, field_sql, &wsql, err);
	if (ret < 0)
		goto out;
	if (!page) {
		ret = sbx_err_set(err, SBX_E_INVALID, "no output page");
		goto out;
	}
	nvals = dbc_query_values(&q, NULL);
	np = (unsigned)nvals + 2;
	vals = calloc(nvals ? nvals : 1, sizeof *vals);
	p = calloc(np, sizeof *p);
	if (!vals || !p || asprintf(&count_sql, "SELECT COUNT(*) FROM %s%s", table, wsql) < 0 ||
	    asprintf(&list_sql,
		     "SELECT doc FROM %s%s ORDER BY created_at DESC, id ASC LIMIT ? OFFSET ?",
		     table, wsql) < 0) {
		count_sql = list_sql = NULL;
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	dbc_query_values(&q, vals);
	for (size_t i = 0; i < nvals; i++)
		p[i] = p_json(vals[i]);
	p[np - 2] = p_i64(q.limit);
	p[np - 1] = p_i64(q.offset);
	for (int attempt = 0;; attempt++) {
		ret = md_conn(d, &c, err);
		if (ret == 0)
			ret = list_round(c, l->what, count_sql, list_sql, p, np, page, err);
		if (!md_again(c, ret, 1, attempt))
			break;
	}
out:
	free(wsql);
	free(count_sql);
	free(list_sql);
	free(p);
	free(vals);
	return ret;
}

/* ---- db.h methods -------------------------------------------------------------- */

static int session_insert(void *inst, const json_t *session, sbx_err *err)
{
	return rec_insert(inst, &k_session, session, err);
}

static int session_get(void *inst, const char *id, json_t **session, sbx_err *err)
{
	return rec_get(inst, &k_session, id, session, err);
}

static int session_list(void *inst, const json_t *query, json_t **page, sbx_err *err)
{
	return rec_list(inst, &dbc_session_list, "sessions", query, page, err);
}

static int session_update(void *inst, const char *id, const json_t *changes,
			  const char *expect_status, json_t **out, sbx_err *err)
{
	return rec_update(inst, &k_session, id, changes, expect_status, out, err);
}

/* The session row and its executions go in one transaction. */
static int delete_round(struct conn *c, const char *id, sbx_err *err)
{
	struct md_param p = p_str(id);
	struct md_q q = {0};
	int ret;

	ret = md_simple(c, ST_BEGIN, err);
	if (ret < 0)
		goto out;
	ret = md_run(c, ST_S_DELETE, NULL, &p, 1, &q, err, "deleting a session");
	if (ret < 0)
		goto out;
	if (md_affected(&q) == 0) {
		ret = dbc_not_found(&dbc_session, id, err);
		goto out;
	}
	md_end(&q);
	ret = md_run(c, ST_S_DELETE_EXECS, NULL, &p, 1, &q, err, "deleting a session's executions");
	if (ret < 0)
		goto out;
	md_end(&q);
	ret = md_simple(c, ST_COMMIT, err);
out:
	md_end(&q);
	if (ret < 0)
		md_rollback(c);
	return ret;
}

static int session_delete(void *inst, const char *id, sbx_err *err)
{
	struct conn *c = NULL;
	int ret;

	ret = dbc_check_id(&dbc_session, id, err);
	if (ret < 0)
		return ret;
	for (int attempt = 0;; attempt++) {
		ret = md_conn(inst, &c, err);
		if (ret == 0)
			ret = delete_round(c, id, err);
		if (!md_again(c, ret, 0, attempt))
			break;
	}
	return ret;
}

static int execution_insert(void *inst, const json_t *execution, sbx_err *err)
{
	return rec_insert(inst, &k_execution, execution, err);
}

static int execution_get(void *inst, const char *id, json_t **execution, sbx_err *err)
{
	return rec_get(inst, &k_execution, id, execution, err);
}

static int execution_list(void *inst, const json_t *query, json_t **page, sbx_err *err)
{
	return rec_list(inst, &dbc_execution_list, "executions", query, page, err);
}

static int execution_update(void *inst, const char *id, const json_t *changes,
			    const char *expect_status, json_t **out, sbx_err *err)
{
	return rec_update(inst, &k_execution, id, changes, expect_status, out, err);
}

static int template_insert(void *inst, const json_t *tmpl, sbx_err *err)
{
	return rec_insert(inst, &k_template, tmpl, err);
}

static int template_get(void *inst, const char *id, json_t **tmpl, sbx_err *err)
{
	return rec_get(inst, &k_template, id, tmpl, err);
}

static int tlist_round(struct conn *c, const char *tenant, json_t **items, sbx_err *err)
{
	struct md_param p = tenant ? p_str(tenant) : p_i64(0);
	struct md_col col = {.type = MC_BLOB};
	struct md_q q = {0};
	json_t *arr = json_array();
	int ret;

	if (!arr)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	ret = md_run(c, tenant ? ST_T_LIST_TENANT : ST_T_LIST, NULL, &p, tenant ? 1 : 0, &q, err,
		     "listing templates");
	if (ret < 0)
		goto out;
	while ((ret = md_row(&q, &col, 1, err, "listing templates")) > 0) {
		json_t *rec = NULL;

		ret = load_doc(&col, dbc_template.what, &rec, err);
		free(col.buf);
		if (ret < 0)
			goto out;
		json_array_append_new(arr, rec);
	}
	if (ret < 0)
		goto out;
	*items = arr;
	arr = NULL;
out:
	md_end(&q);
	json_decref(arr);
	return ret;
}

/* query {"tenant"?: t}: t's templates plus the global ones (tenant null); all without. */
static int template_list(void *inst, const json_t *query, json_t **items, sbx_err *err)
{
	struct conn *c = NULL;
	const char *tenant = NULL;
	int ret;

	ret = dbc_template_query(query, &tenant, err);
	if (ret < 0)
		return ret;
	if (!items)
		return sbx_err_set(err, SBX_E_INVALID, "no output array");
	for (int attempt = 0;; attempt++) {
		ret = md_conn(inst, &c, err);
		if (ret == 0)
			ret = tlist_round(c, tenant, items, err);
		if (!md_again(c, ret, 1, attempt))
			break;
	}
	return ret;
}

static int template_update(void *inst, const char *id, const json_t *changes, json_t **out,
			   sbx_err *err)
{
	return rec_update(inst, &k_template, id, changes, NULL, out, err);
}

static int template_delete(void *inst, const char *id, sbx_err *err)
{
	struct md_param p;
	struct conn *c = NULL;
	struct md_q q = {0};
	int ret;

	ret = dbc_check_id(&dbc_template, id, err);
	if (ret < 0)
		return ret;
	p = p_str(id);
	for (int attempt = 0;; attempt++) {
		ret = md_conn(inst, &c, err);
		if (ret == 0)
			ret = md_run(c, ST_T_DELETE, NULL, &p, 1, &q, err, "deleting a template");
		if (ret == 0 && md_affected(&q) == 0)
			ret = dbc_not_found(&dbc_template, id, err);
		md_end(&q);
		if (!md_again(c, ret, 0, attempt))
			break;
	}
	return ret;
}

/*
 * Takes or renews lease `name` with one atomic upsert that only changes the row when it
 * is free, expired or already ours (expiry by the core's wall clock, as db.h says), then
 * reads who holds it. Only our upsert can make us the holder, so reading ourselves back
 * means we have it; the read is on the same connection, after the upsert committed.
 */
static int lease_round(struct conn *c, const char *name, const char *holder, int64_t ttl_ms,
		       int *wrote, sbx_err *err)
{
	int64_t now = c->d->core->now_ms();
	struct md_param p[4] = {p_str(name), p_str(holder), p_i64(dbc_lease_expiry(now, ttl_ms)),
				p_i64(now)};
	struct md_col cols[2] = {{.type = MC_BLOB}, {.type = MC_I64}};
	struct md_q q = {0};
	int ret;

	*wrote = 1;
	ret = md_run(c, ST_L_UPSERT, NULL, p, 4, &q, err, "writing a lease");
	md_end(&q);
	if (ret < 0)
		goto out;
	ret = md_run(c, ST_L_GET, NULL, p, 1, &q, err, "reading a lease");
	if (ret < 0)
		goto out;
	ret = md_row(&q, cols, 2, err, "reading a lease");
	if (ret < 0)
		goto out;
	if (ret == 0) { /* released between our two statements */
		ret = sbx_err_set(err, SBX_E_CONFLICT, "lease '%s' changed hands; retry", name);
		goto out;
	}
	ret = 0;
	if (!cols[0].buf || strcmp(cols[0].buf, holder) != 0)
		ret = dbc_lease_held(name, cols[0].buf ? cols[0].buf : "?", cols[1].i, now, err);
	free(cols[0].buf);
out:
	md_end(&q);
	return ret;
}

static int lease_acquire(void *inst, const char *name, const char *holder, int64_t ttl_ms,
			 sbx_err *err)
{
	struct conn *c = NULL;
	int ret, wrote = 0;

	ret = dbc_lease_acquire_args(name, holder, ttl_ms, err);
	if (ret < 0)
		return ret;
	for (int attempt = 0;; attempt++) {
		ret = md_conn(inst, &c, err);
		if (ret == 0)
			ret = lease_round(c, name, holder, ttl_ms, &wrote, err);
		/* Renewing is idempotent: retrying after a lost connection is safe. */
		if (!md_again(c, ret, 1, attempt))
			break;
	}
	return ret;
}

static int lease_release(void *inst, const char *name, const char *holder, sbx_err *err)
{
	struct md_param p[2];
	struct conn *c = NULL;
	struct md_q q = {0};
	int ret;

	ret = dbc_lease_release_args(name, holder, err);
	if (ret < 0)
		return ret;
	p[0] = p_str(name);
	p[1] = p_str(holder);
	for (int attempt = 0;; attempt++) {
		ret = md_conn(inst, &c, err);
		if (ret == 0)
			ret = md_run(c, ST_L_DELETE, NULL, p, 2, &q, err, "releasing a lease");
		md_end(&q);
		/* Deleting is idempotent too. */
		if (!md_again(c, ret, 1, attempt))
			break;
	}
	return ret;
}

static int health_round(struct conn *c, json_t **detail, sbx_err *err)
{
	struct mdb *d = c->d;
	struct md_col cols[3] = {{.type = MC_I64}, {.type = MC_BLOB}, {.type = MC_I64}};
	struct md_q q = {0};
	int ret;

	ret = md_run(c, ST_HEALTH, NULL, NULL, 0, &q, err, "health query");
	if (ret < 0)
		goto out;
	ret = md_row(&q, cols, 3, err, "health query");
	if (ret < 0)
		goto out;
	if (ret == 0 || cols[0].i != 1) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "mariadb %s: health query returned no row",
				  d->server);
		goto out;
	}
	ret = 0;
	if (detail)
		*detail = json_pack("{s:s, s:s, s:s?, s:I, s:b}", "server", d->server, "database",
				    d->database, "server_version", cols[1].buf, "schema_version",
				    (json_int_t)cols[2].i, "tls", d->tls);
	free(cols[1].buf);
out:
	md_end(&q);
	return ret;
}

/* A real query on the calling thread's connection; reports the server's version. */
static int health(void *inst, json_t **detail, sbx_err *err)
{
	struct conn *c = NULL;
	int ret;

	for (int attempt = 0;; attempt++) {
		ret = md_conn(inst, &c, err);
		if (ret == 0)
			ret = health_round(c, detail, err);
		if (!md_again(c, ret, 1, attempt))
			break;
	}
	return ret;
}

/* ---- config and lifecycle ------------------------------------------------------ */

/* mysql_library_init is process-wide and not thread-safe: it runs when the first instance
 * of the process is created and mysql_library_end when the last is destroyed (so that
 * unloading the module leaves nothing behind), whatever the number of instances. */
static pthread_mutex_t lib_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned lib_users;

static int lib_acquire(void)
{
	int rc = 0;

	pthread_mutex_lock(&lib_lock);
	if (lib_users == 0)
		rc = mysql_library_init(0, NULL, NULL);
	if (rc == 0)
		lib_users++;
	pthread_mutex_unlock(&lib_lock);
	return rc;
}

static void lib_release(void)
{
	pthread_mutex_lock(&lib_lock);
	if (lib_users > 0 && --lib_users == 0)
		mysql_library_end();
	pthread_mutex_unlock(&lib_lock);
}

enum ctype { CT_STR, CT_UINT, CT_BOOL };

struct ckey {
	const char *key;
	enum ctype type;
	size_t off;
	unsigned min, max; /* CT_UINT */
};

#define S(m)         CT_STR, offsetof(struct mdb, m), 0, 0
#define U(m, lo, hi) CT_UINT, offsetof(struct mdb, m), lo, hi
#define B(m)         CT_BOOL, offsetof(struct mdb, m), 0, 0
static const struct ckey config_keys[] = {
    {"host", S(host)},
    {"port", U(port, 1, 65535)},
    {"socket", S(socket)},
    {"user", S(user)},
    {"password", S(password)},
    {"password_file", S(password_file)},
    {"database", S(database)},
    {"tls", B(tls)},
    {"tls_ca", S(tls_ca)},
    {"tls_cert", S(tls_cert)},
    {"tls_key", S(tls_key)},
    {"tls_verify_server_cert", B(tls_verify)},
    {"connect_timeout_s", U(connect_timeout_s, 1, 3600)},
    {"read_timeout_s", U(read_timeout_s, 1, 3600)},
    {"write_timeout_s", U(write_timeout_s, 1, 3600)},
    {"migrate_timeout_s", U(migrate_timeout_s, 1, 3600)},
    {NULL, 0, 0, 0, 0},
};
#undef S
#undef U
#undef B

static void destroy(void *inst)
{
	struct mdb *d = inst;

	if (!d)
		return;
	/* Deleting the key first means no destructor runs later on a freed instance. */
	if (d->key_ok)
		pthread_key_delete(d->key);
	md_close_all(d);
	pthread_mutex_destroy(&d->lock);
	if (d->lib_ok)
		lib_release();
	if (d->password)
		explicit_bzero(d->password, strlen(d->password));
	for (const struct ckey *k = config_keys; k->key; k++)
		if (k->type == CT_STR)
			free(*(char **)((char *)d + k->off));
	free(d->name);
	free(d);
}

static int check_password_file(struct mdb *d, sbx_err *err)
{
	struct stat sb;
	int fd;

	if (d->password_file[0] != '/')
		return sbx_err_set(err, SBX_E_INVALID,
				   "db '%s' (mariadb): password_file must be an absolute path",
				   d->name);
	fd = open(d->password_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sbx_err_set(err, SBX_E_INVALID,
				   "db '%s' (mariadb): cannot read password_file '%s': %s", d->name,
				   d->password_file, strerror(errno));
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 0077))
		d->core->log(d->name, SBX_LOG_WARN,
			     "event=db_password_file_open path=%s mode=%04o "
			     "hint=\"chmod 600: others can read it\"",
			     d->password_file, (unsigned)(sb.st_mode & 07777));
	close(fd);
	return 0;
}

static int parse_config(struct mdb *d, const json_t *config, sbx_err *err)
{
	const char *key;
	json_t *v;
	int tls_set = 0, verify_set = 0;

	d->port = 3306;
	d->connect_timeout_s = 5;
	d->read_timeout_s = 30;
	d->write_timeout_s = 30;
	d->migrate_timeout_s = 60;
	if (config && !json_is_object(config))
		return sbx_err_set(err, SBX_E_INVALID, "db '%s' (mariadb): config must be a group",
				   d->name);
	json_object_foreach ((json_t *)config, key, v) {
		const struct ckey *k = config_keys;
		void *dst;

		while (k->key && strcmp(k->key, key) != 0)
			k++;
		if (!k->key)
			return sbx_err_set(err, SBX_E_INVALID,
					   "db '%s' (mariadb): unknown config key '%s'", d->name,
					   key);
		dst = (char *)d + k->off;
		switch (k->type) {
		case CT_STR:
			if (!json_is_string(v) || json_string_length(v) == 0)
				return sbx_err_set(err, SBX_E_INVALID,
						   "db '%s' (mariadb): '%s' must be a non-empty "
						   "string",
						   d->name, key);
			*(char **)dst = strdup(json_string_value(v));
			if (!*(char **)dst)
				return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
			break;
		case CT_UINT:
			if (!json_is_integer(v) || json_integer_value(v) < k->min ||
			    json_integer_value(v) > k->max)
				return sbx_err_set(err, SBX_E_INVALID,
						   "db '%s' (mariadb): '%s' must be an integer in "
						   "%u..%u",
						   d->name, key, k->min, k->max);
			*(unsigned *)dst = (unsigned)json_integer_value(v);
			break;
		case CT_BOOL:
			if (!json_is_boolean(v))
				return sbx_err_set(err, SBX_E_INVALID,
						   "db '%s' (mariadb): '%s' must be true or false",
						   d->name, key);
			*(int *)dst = json_is_true(v);
			if (strcmp(key, "tls") == 0)
				tls_set = 1;
			else
				verify_set = 1;
			break;
		}
	}
	if (d->password && d->password_file)
		return sbx_err_set(err, SBX_E_INVALID,
				   "db '%s' (mariadb): set 'password_file' or 'password', not both",
				   d->name);
	if (d->tls_ca || d->tls_cert || d->tls_key) {
		if (tls_set && !d->tls)
			return sbx_err_set(err, SBX_E_INVALID,
					   "db '%s' (mariadb): tls_* files are set but 'tls' is "
					   "false",
					   d->name);
		d->tls = 1;
	}
	if (!!d->tls_cert != !!d->tls_key)
		return sbx_err_set(err, SBX_E_INVALID,
				   "db '%s' (mariadb): 'tls_cert' and 'tls_key' go together",
				   d->name);
	if (!verify_set)
		d->tls_verify = d->tls;
	if (!d->host && !(d->host = strdup("localhost")))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (!d->user && !(d->user = strdup("sbxd")))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (!d->database && !(d->database = strdup("sbxd")))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (d->password_file)
		return check_password_file(d, err);
	if (d->password)
		d->core->log(d->name, SBX_LOG_WARN,
			     "event=db_password_in_config hint=\"use password_file instead\"");
	return 0;
}

/* Main thread, before other threads exist: parses config, connects on the main thread
 * and migrates the schema. */
static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	struct mdb *d;
	struct conn *c = NULL;
	int ret;

	d = calloc(1, sizeof *d);
	if (!d) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	d->core = core;
	pthread_mutex_init(&d->lock, NULL);
	d->name = strdup(instance_name ? instance_name : "mariadb");
	if (!d->name) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	ret = parse_config(d, config, err);
	if (ret < 0)
		goto out;
	if (d->socket)
		snprintf(d->server, sizeof d->server, "unix:%s/%s", d->socket, d->database);
	else
		snprintf(d->server, sizeof d->server, "%s:%u/%s", d->host, d->port, d->database);
	if (lib_acquire() != 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "mariadb: mysql_library_init failed");
		goto out;
	}
	d->lib_ok = 1;
	if (pthread_key_create(&d->key, md_conn_free) != 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "pthread_key_create failed");
		goto out;
	}
	d->key_ok = 1;
	ret = md_conn(d, &c, err);
	if (ret < 0)
		goto out;
	ret = schema_migrate(c, err);
	if (ret < 0)
		goto out;
	core->log(d->name, SBX_LOG_INFO,
		  "event=db_open server=%s server_version=%s schema_version=%d tls=%s", d->server,
		  mysql_get_server_info(c->m), schema_latest(),
		  d->tls ? (d->tls_verify ? "verify" : "noverify") : "off");
	*inst = d;
	d = NULL;
out:
	destroy(d);
	return ret;
}

/* mysql_thread_init/end are per thread, not per instance; Connector/C 3 makes them
 * idempotent, so one instance's thread_fini does not disturb another's connection. */
static void thread_init(void *inst)
{
	struct mdb *d = inst;
	struct conn *c;
	sbx_err err;

	mysql_thread_init();
	sbx_err_clear(&err);
	/* On failure the next call retries (after the backoff) and reports the error. */
	if (md_conn(d, &c, &err) < 0)
		d->core->log(d->name, SBX_LOG_WARN, "event=db_thread_init_failed error=\"%s\"",
			     err.message);
}

static void thread_fini(void *inst)
{
	struct mdb *d = inst;
	struct conn *c = pthread_getspecific(d->key);

	if (c) {
		pthread_setspecific(d->key, NULL);
		md_conn_free(c);
	}
	mysql_thread_end();
}

static const struct sbx_db_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_DB, struct sbx_db_plugin, "mariadb", "1.0.0",
			     "MariaDB state store (shared by sbxd replicas)"),
    .life =
	{
	    .create = create,
	    .destroy = destroy,
	    .thread_init = thread_init,
	    .thread_fini = thread_fini,
	},
    .session_insert = session_insert,
    .session_get = session_get,
    .session_list = session_list,
    .session_update = session_update,
    .session_delete = session_delete,
    .execution_insert = execution_insert,
    .execution_get = execution_get,
    .execution_list = execution_list,
    .execution_update = execution_update,
    .template_insert = template_insert,
    .template_get = template_get,
    .template_list = template_list,
    .template_update = template_update,
    .template_delete = template_delete,
    .lease_acquire = lease_acquire,
    .lease_release = lease_release,
    .health = health,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
