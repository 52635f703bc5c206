/*
 * db/sqlite: the embedded state store. Owns the instance (config, per-thread SQLite
 * connections with their prepared statements) and the db.h methods: records as JSON
 * documents with indexed columns, compare-and-set updates, list queries and leases.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include <sandbox/core.h>
#include <sandbox/db.h>

#include "plugins/db/common/dbcommon.h"
#include "sqlite_int.h"

enum stmt_id {
	ST_BEGIN_IMMEDIATE,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_S_INSERT,
	ST_S_GET,
	ST_S_UPDATE,
	ST_S_DELETE,
	ST_S_DELETE_EXECS,
	ST_E_INSERT,
	ST_E_GET,
	ST_E_UPDATE,
	ST_T_INSERT,
	ST_T_GET,
	ST_T_UPDATE,
	ST_T_DELETE,
	ST_L_GET,
	ST_L_PUT,
	ST_L_DELETE,
	ST_HEALTH,
	ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_S_INSERT] = "INSERT INTO sessions(id, tenant, template_id, status, runtime_instance,"
		    " created_at, updated_at, last_activity_at, completed_at, version, doc)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_S_GET] = "SELECT doc FROM sessions WHERE id = ?1",
    [ST_S_UPDATE] = "UPDATE sessions SET tenant = ?2, template_id = ?3, status = ?4,"
		    " runtime_instance = ?5, created_at = ?6, updated_at = ?7,"
		    " last_activity_at = ?8, completed_at = ?9, version = ?10, doc = ?11"
		    " WHERE id = ?1",
    [ST_S_DELETE] = "DELETE FROM sessions WHERE id = ?1",
    [ST_S_DELETE_EXECS] = "DELETE FROM executions WHERE session_id = ?1",
    [ST_E_INSERT] = "INSERT INTO executions(id, session_id, tenant, status, created_at,"
		    " started_at, completed_at, version, doc)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_E_GET] = "SELECT doc FROM executions WHERE id = ?1",
    [ST_E_UPDATE] = "UPDATE executions SET session_id = ?2, tenant = ?3, status = ?4,"
		    " created_at = ?5, started_at = ?6, completed_at = ?7, version = ?8,"
		    " doc = ?9 WHERE id = ?1",
    [ST_T_INSERT] = "INSERT INTO templates(id, tenant, created_at, version, doc)"
		    " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_T_GET] = "SELECT doc FROM templates WHERE id = ?1",
    [ST_T_UPDATE] = "UPDATE templates SET tenant = ?2, created_at = ?3, version = ?4,"
		    " doc = ?5 WHERE id = ?1",
    [ST_T_DELETE] = "DELETE FROM templates WHERE id = ?1",
    [ST_L_GET] = "SELECT holder, expires_at FROM leases WHERE name = ?1",
    [ST_L_PUT] = "INSERT INTO leases(name, holder, expires_at) VALUES (?1, ?2, ?3)"
		 " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
		 " expires_at = excluded.expires_at",
    [ST_L_DELETE] = "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
    [ST_HEALTH] = "SELECT MAX(version) FROM schema_version",
};

struct sqdb;

/* One SQLite connection, used by exactly one thread at a time. */
struct conn {
	struct sqdb *d;
	sqlite3 *h;
	sqlite3_stmt *st[ST__COUNT]; /* prepared on first use */
	struct conn *prev, *next;    /* in d->conns, under d->lock */
};

struct sqdb {
	const struct sbx_core_api *core;
	char *name;
	char *path;
	int busy_timeout_ms;
	int sync_full;
	pthread_key_t key; /* this instance's connection on the calling thread */
	int key_ok;
	pthread_mutex_t lock; /* guards conns */
	struct conn *conns;   /* every open connection, so destroy can close them */
	/* Serialises this process's writers. SQLite allows one writer at a time anyway, and a
	 * writer that finds the lock taken sleeps in the busy handler (1..100 ms, not woken on
	 * release); queueing on a mutex instead hands the lock over immediately. Other
	 * processes on the same file still meet the busy timeout. */
	pthread_mutex_t wlock;
	/* Every write runs on this one connection (under wlock): being the only writer, its
	 * page cache is never invalidated by another connection's commit, so writes do not
	 * re-read the pages they touch. Reads keep their per-thread connections. */
	struct conn *wconn;
	pthread_key_t wkey; /* set to wconn on the thread that holds wlock */
	int wkey_ok;
};

/* A record kind: its statements (dbcommon's kind has its indexed columns, bound from ?2
 * on in that order, followed by version and doc). */
struct kind {
	const struct dbc_kind *rec;
	int st_insert, st_get, st_update;
};

static const struct kind k_session = {&dbc_session, ST_S_INSERT, ST_S_GET, ST_S_UPDATE};
static const struct kind k_execution = {&dbc_execution, ST_E_INSERT, ST_E_GET, ST_E_UPDATE};
static const struct kind k_template = {&dbc_template, ST_T_INSERT, ST_T_GET, ST_T_UPDATE};

int sq_error(sqlite3 *db, int rc, sbx_err *err, const char *what)
{
	int code;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_READONLY:
	case SQLITE_NOMEM:
	case SQLITE_PROTOCOL:
		code = SBX_E_UNAVAILABLE;
		break;
	default:
		code = SBX_E_INTERNAL;
	}
	return sbx_err_set(err, code, "sqlite: %s: %s", what,
			   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* ---- connections --------------------------------------------------------------- */

static void conn_close(struct conn *c)
{
	struct sqdb *d;

	if (!c)
		return;
	d = c->d;
	pthread_mutex_lock(&d->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close_v2(c->h);
	free(c);
}

/* pthread key destructor: a thread that called us without thread_fini exits. */
static void conn_tls_free(void *p)
{
	conn_close(p);
}

static int conn_open(struct sqdb *d, struct conn **out, sbx_err *err)
{
	struct conn *c;
	char pragmas[128];
	int rc, ret = 0;

	c = calloc(1, sizeof *c);
	if (!c) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	c->d = d;
	/* NOMUTEX: each connection is confined to one thread. */
	rc = sqlite3_open_v2(
	    d->path, &c->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE, "sqlite: cannot open '%s': %s", d->path,
				  c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_extended_result_codes(c->h, 1);
	sqlite3_busy_timeout(c->h, d->busy_timeout_ms);
	snprintf(pragmas, sizeof pragmas, "PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF",
		 d->sync_full ? "FULL" : "NORMAL");
	rc = sqlite3_exec(c->h, pragmas, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = sq_error(c->h, rc, err, "setting connection pragmas");
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	c->next = d->conns;
	if (d->conns)
		d->conns->prev = c;
	d->conns = c;
	pthread_mutex_unlock(&d->lock);
	*out = c;
	c = NULL;
out:
	if (c) {
		sqlite3_close_v2(c->h);
		free(c);
	}
	return ret;
}

/* The calling thread's connection, opened on first use when thread_init was not called. */
static int conn_get(struct sqdb *d, struct conn **out, sbx_err *err)
{
	struct conn *c = d->wkey_ok ? pthread_getspecific(d->wkey) : NULL;
	int ret = 0;

	if (!c)
		c = pthread_getspecific(d->key);
	if (!c) {
		ret = conn_open(d, &c, err);
		if (ret < 0)
			goto out;
		if (pthread_setspecific(d->key, c) != 0) {
			conn_close(c);
			ret = sbx_err_set(err, SBX_E_INTERNAL, "pthread_setspecific failed");
			goto out;
		}
	}
	*out = c;
out:
	return ret;
}

/* A prepared statement of c, reset and ready for binding. */
static int stmt(struct conn *c, enum stmt_id id, sqlite3_stmt **out, sbx_err *err)
{
	int rc, ret = 0;

	if (!c->st[id]) {
		rc = sqlite3_prepare_v3(c->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					&c->st[id], NULL);
		if (rc != SQLITE_OK) {
			ret = sq_error(c->h, rc, err, "preparing a statement");
			goto out;
		}
	}
	*out = c->st[id];
out:
	return ret;
}

static void stmt_done(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* Runs a statement without results (BEGIN, COMMIT, ...). */
static int exec_simple(struct conn *c, enum stmt_id id, sbx_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	ret = stmt(c, id, &st, err);
	if (ret < 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		ret = sq_error(c->h, rc, err, stmt_sql[id]);
out:
	stmt_done(st);
	return ret;
}

static void rollback(struct conn *c)
{
	if (!sqlite3_get_autocommit(c->h))
		exec_simple(c, ST_ROLLBACK, NULL);
}

/* ---- records ------------------------------------------------------------------- */

/* Binds ?1 id, ?2.. the kind's columns, then version and doc (rec serialised). */
static int bind_record(sqlite3_stmt *st, const struct kind *k, const char *id, const json_t *rec,
		       json_int_t version, sbx_err *err)
{
	struct dbc_val vals[DBC_MAX_COLS];
	char *doc = NULL;
	int ret, idx = 1;

	ret = dbc_columns(k->rec, rec, vals, err);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, idx++, id, -1, SQLITE_TRANSIENT);
	for (int i = 0; i < k->rec->ncols; i++, idx++) {
		if (vals[i].type == DBC_STR)
			sqlite3_bind_text(st, idx, vals[i].s, (int)vals[i].len, SQLITE_TRANSIENT);
		else if (vals[i].type == DBC_I64)
			sqlite3_bind_int64(st, idx, (sqlite3_int64)vals[i].i);
		else
			sqlite3_bind_null(st, idx);
	}
	sqlite3_bind_int64(st, idx++, (sqlite3_int64)version);
	ret = dbc_serialise(k->rec, id, rec, &doc, err);
	if (ret < 0)
		goto out;
	/* SQLITE_TRANSIENT copies; a multi-MiB document is copied once more, which keeps
	 * ownership simple (doc is freed below whatever happens). */
	sqlite3_bind_text(st, idx, doc, -1, SQLITE_TRANSIENT);
out:
	free(doc);
	return ret;
}

static int rec_insert(struct sqdb *d, const struct kind *k, const json_t *rec, sbx_err *err)
{
	struct conn *c;
	sqlite3_stmt *st = NULL;
	json_t *copy = NULL;
	const char *id = NULL;
	int rc, ret;

	ret = dbc_insert_record(k->rec, rec, &id, &copy, err);
	if (ret < 0)
		goto out;
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = stmt(c, k->st_insert, &st, err);
	if (ret < 0)
		goto out;
	ret = bind_record(st, k, id, copy, 1, err);
	if (ret < 0)
		goto out;
	rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		ret = dbc_exists(k->rec, id, err);
	else if (rc != SQLITE_DONE)
		ret = sq_error(c->h, rc, err, "inserting a record");
out:
	stmt_done(st);
	json_decref(copy);
	return ret;
}

static int load_doc(sqlite3_stmt *st, int col, const char *what, json_t **out, sbx_err *err)
{
	const char *text = (const char *)sqlite3_column_text(st, col);

	return dbc_load_doc(text, (size_t)sqlite3_column_bytes(st, col), what, out, err);
}

/* Reads record `id` on connection c into *out (new reference). */
static int rec_read(struct conn *c, const struct kind *k, const char *id, json_t **out,
		    sbx_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	ret = stmt(c, k->st_get, &st, err);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = load_doc(st, 0, k->rec->what, out, err);
	else if (rc == SQLITE_DONE)
		ret = dbc_not_found(k->rec, id, err);
	else
		ret = sq_error(c->h, rc, err, "reading a record");
out:
	stmt_done(st);
	return ret;
}

static int rec_get(struct sqdb *d, const struct kind *k, const char *id, json_t **out, sbx_err *err)
{
	struct conn *c;
	int ret;

	/* A call without an output is refused as if the id were missing. */
	ret = dbc_check_id(k->rec, out ? id : NULL, err);
	if (ret < 0)
		goto out;
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = rec_read(c, k, id, out, err);
out:
	return ret;
}

/*
 * Merge `changes` into record `id` under BEGIN IMMEDIATE: the write lock is taken before
 * the status is read, so of concurrent compare-and-sets on the same status exactly one
 * sees it and wins; the others wait (busy_timeout) and then see the new status.
 */
static int rec_update(struct sqdb *d, const struct kind *k, const char *id, const json_t *changes,
		      const char *expect_status, json_t **out, sbx_err *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *cur = NULL;
	json_int_t version;
	int rc, ret;

	ret = dbc_check_update(k->rec, id, changes, err);
	if (ret < 0)
		goto out;
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = exec_simple(c, ST_BEGIN_IMMEDIATE, err);
	if (ret < 0)
		goto out;
	ret = rec_read(c, k, id, &cur, err);
	if (ret < 0)
		goto out;
	/* The stored document carries the version (the merge never takes the caller's). */
	version = dbc_doc_version(cur) + 1;
	ret = dbc_merge(k->rec, id, cur, changes, expect_status, version, err);
	if (ret < 0)
		goto out;
	ret = stmt(c, k->st_update, &st, err);
	if (ret < 0)
		goto out;
	ret = bind_record(st, k, id, cur, version, err);
	if (ret < 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		ret = sq_error(c->h, rc, err, "updating a record");
		goto out;
	}
	stmt_done(st);
	st = NULL;
	ret = exec_simple(c, ST_COMMIT, err);
	if (ret < 0)
		goto out;
	if (out) {
		*out = cur;
		cur = NULL;
	}
out:
	stmt_done(st);
	if (c)
		rollback(c);
	json_decref(cur);
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
    /* A session never used counts as idle since its creation. */
    [DBC_F_ACTIVITY] = "COALESCE(last_activity_at, created_at)",
};

static void bind_params(sqlite3_stmt *st, const json_t *const *vals, size_t nvals)
{
	for (size_t i = 0; i < nvals; i++) {
		if (json_is_string(vals[i]))
			sqlite3_bind_text(st, (int)i + 1, json_string_value(vals[i]),
					  (int)json_string_length(vals[i]), SQLITE_TRANSIENT);
		else
			sqlite3_bind_int64(st, (int)i + 1, json_integer_value(vals[i]));
	}
}

/* SELECT rows of `table` matching query, in one read transaction so that total and items
 * agree. `table` is static; query is borrowed. */
static int rec_list(struct sqdb *d, const struct dbc_list *l, const char *table,
		    const json_t *query, json_t **page, sbx_err *err)
{
	struct dbc_query q;
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	const json_t **vals = NULL;
	json_t *items = json_array();
	char *wsql = NULL, *sql = NULL;
	long long total = 0;
	size_t nvals = 0;
	int rc, ret;

	ret = dbc_list_query(l, query, &q, err);
	if (ret == 0)
		ret = dbc_where(&q, field_sql, &wsql, err);
	if (ret < 0)
		goto out;
	nvals = dbc_query_values(&q, NULL);
	vals = calloc(nvals ? nvals : 1, sizeof *vals);
	if (!vals || !items || !page) {
		ret = sbx_err_set(err, page ? SBX_E_INTERNAL : SBX_E_INVALID,
				  page ? "out of memory" : "no output page");
		goto out;
	}
	dbc_query_values(&q, vals);
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = exec_simple(c, ST_BEGIN, err);
	if (ret < 0)
		goto out;

	sql = sqlite3_mprintf("SELECT COUNT(*) FROM %s%s", table, wsql);
	rc = sql ? sqlite3_prepare_v2(c->h, sql, -1, &st, NULL) : SQLITE_NOMEM;
	if (rc != SQLITE_OK) {
		ret = sq_error(c->h, rc, err, "preparing a count");
		goto out;
	}
	bind_params(st, vals, nvals);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = sq_error(c->h, rc, err, "counting records");
		goto out;
	}
	total = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	sqlite3_free(sql);

	sql = sqlite3_mprintf("SELECT doc FROM %s%s ORDER BY created_at DESC, id ASC"
			      " LIMIT %lld OFFSET %lld",
			      table, wsql, q.limit, q.offset);
	rc = sql ? sqlite3_prepare_v2(c->h, sql, -1, &st, NULL) : SQLITE_NOMEM;
	if (rc != SQLITE_OK) {
		ret = sq_error(c->h, rc, err, "preparing a list");
		goto out;
	}
	bind_params(st, vals, nvals);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *rec;

		ret = load_doc(st, 0, l->what, &rec, err);
		if (ret < 0)
			goto out;
		json_array_append_new(items, rec);
	}
	if (rc != SQLITE_DONE) {
		ret = sq_error(c->h, rc, err, "listing records");
		goto out;
	}
	ret = exec_simple(c, ST_COMMIT, err);
	if (ret < 0)
		goto out;
	ret = dbc_page(items, total, page, err);
out:
	sqlite3_finalize(st);
	if (c)
		rollback(c);
	free(wsql);
	sqlite3_free(sql);
	free(vals);
	json_decref(items);
	return ret;
}

/* ---- db.h methods -------------------------------------------------------------- */

/* Runs statement `id`, a DELETE whose ?1 is key, on c; *changed is the rows it removed. */
static int delete_rows(struct conn *c, enum stmt_id id, const char *key, const char *what,
		       int *changed, sbx_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	ret = stmt(c, id, &st, err);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		ret = sq_error(c->h, rc, err, what);
	else if (changed)
		*changed = sqlite3_changes(c->h);
out:
	stmt_done(st);
	return ret;
}

static int session_insert_unlocked(void *inst, const json_t *session, sbx_err *err)
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

static int session_update_unlocked(void *inst, const char *id, const json_t *changes,
				   const char *expect_status, json_t **out, sbx_err *err)
{
	return rec_update(inst, &k_session, id, changes, expect_status, out, err);
}

/* Deletes a session and its executions in one transaction. */
static int session_delete_unlocked(void *inst, const char *id, sbx_err *err)
{
	struct sqdb *d = inst;
	struct conn *c = NULL;
	int ret, changed = 0;

	ret = dbc_check_id(&dbc_session, id, err);
	if (ret < 0)
		goto out;
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = exec_simple(c, ST_BEGIN_IMMEDIATE, err);
	if (ret < 0)
		goto out;
	ret = delete_rows(c, ST_S_DELETE, id, "deleting a session", &changed, err);
	if (ret < 0)
		goto out;
	if (changed == 0) {
		ret = dbc_not_found(&dbc_session, id, err);
		goto out;
	}
	ret = delete_rows(c, ST_S_DELETE_EXECS, id, "deleting a session's executions", NULL, err);
	if (ret < 0)
		goto out;
	ret = exec_simple(c, ST_COMMIT, err);
out:
	if (c)
		rollback(c);
	return ret;
}

static int execution_insert_unlocked(void *inst, const json_t *execution, sbx_err *err)
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

static int execution_update_unlocked(void *inst, const char *id, const json_t *changes,
				     const char *expect_status, json_t **out, sbx_err *err)
{
	return rec_update(inst, &k_execution, id, changes, expect_status, out, err);
}

static int template_insert_unlocked(void *inst, const json_t *tmpl, sbx_err *err)
{
	return rec_insert(inst, &k_template, tmpl, err);
}

static int template_get(void *inst, const char *id, json_t **tmpl, sbx_err *err)
{
	return rec_get(inst, &k_template, id, tmpl, err);
}

/* query {"tenant"?: t}: t's templates plus the global ones (tenant null); all without. */
static int template_list(void *inst, const json_t *query, json_t **items, sbx_err *err)
{
	struct sqdb *d = inst;
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	const char *tenant = NULL;
	json_t *arr = json_array();
	int rc, ret = 0;

	ret = dbc_template_query(query, &tenant, err);
	if (ret < 0)
		goto out;
	if (!arr || !items) {
		ret = sbx_err_set(err, items ? SBX_E_INTERNAL : SBX_E_INVALID,
				  items ? "out of memory" : "no output array");
		goto out;
	}
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	rc = sqlite3_prepare_v2(c->h,
				tenant ? "SELECT doc FROM templates WHERE tenant = ?1 OR tenant IS "
					 "NULL ORDER BY id"
				       : "SELECT doc FROM templates ORDER BY id",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		ret = sq_error(c->h, rc, err, "preparing the template list");
		goto out;
	}
	if (tenant)
		sqlite3_bind_text(st, 1, tenant, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *rec;

		ret = load_doc(st, 0, dbc_template.what, &rec, err);
		if (ret < 0)
			goto out;
		json_array_append_new(arr, rec);
	}
	if (rc != SQLITE_DONE) {
		ret = sq_error(c->h, rc, err, "listing templates");
		goto out;
	}
	*items = arr;
	arr = NULL;
out:
	sqlite3_finalize(st);
	json_decref(arr);
	return ret;
}

static int template_update_unlocked(void *inst, const char *id, const json_t *changes, json_t **out,
				    sbx_err *err)
{
	return rec_update(inst, &k_template, id, changes, NULL, out, err);
}

static int template_delete_unlocked(void *inst, const char *id, sbx_err *err)
{
	struct sqdb *d = inst;
	struct conn *c;
	int ret, changed = 0;

	ret = dbc_check_id(&dbc_template, id, err);
	if (ret < 0)
		goto out;
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = delete_rows(c, ST_T_DELETE, id, "deleting a template", &changed, err);
	if (ret == 0 && changed == 0)
		ret = dbc_not_found(&dbc_template, id, err);
out:
	return ret;
}

/* Takes or renews lease `name` under BEGIN IMMEDIATE, using the core's wall clock: all
 * replicas sharing the database must have synchronised clocks (as with any lease). */
static int lease_acquire_unlocked(void *inst, const char *name, const char *holder, int64_t ttl_ms,
				  sbx_err *err)
{
	struct sqdb *d = inst;
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int64_t now;
	int rc, ret;

	ret = dbc_lease_acquire_args(name, holder, ttl_ms, err);
	if (ret < 0)
		goto out;
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = exec_simple(c, ST_BEGIN_IMMEDIATE, err);
	if (ret < 0)
		goto out;
	now = d->core->now_ms();
	ret = stmt(c, ST_L_GET, &st, err);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *cur = (const char *)sqlite3_column_text(st, 0);
		int64_t exp = sqlite3_column_int64(st, 1);

		if (cur && strcmp(cur, holder) != 0 && exp > now) {
			ret = dbc_lease_held(name, cur, exp, now, err);
			goto out;
		}
	} else if (rc != SQLITE_DONE) {
		ret = sq_error(c->h, rc, err, "reading a lease");
		goto out;
	}
	stmt_done(st);
	ret = stmt(c, ST_L_PUT, &st, err);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, holder, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, dbc_lease_expiry(now, ttl_ms));
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		ret = sq_error(c->h, rc, err, "writing a lease");
		goto out;
	}
	stmt_done(st);
	st = NULL;
	ret = exec_simple(c, ST_COMMIT, err);
out:
	stmt_done(st);
	if (c)
		rollback(c);
	return ret;
}

static int lease_release_unlocked(void *inst, const char *name, const char *holder, sbx_err *err)
{
	struct sqdb *d = inst;
	struct conn *c;
	sqlite3_stmt *st = NULL;
	int rc, ret;

	ret = dbc_lease_release_args(name, holder, err);
	if (ret < 0)
		goto out;
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = stmt(c, ST_L_DELETE, &st, err);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, holder, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		ret = sq_error(c->h, rc, err, "releasing a lease");
out:
	stmt_done(st);
	return ret;
}

/* A real query on the calling thread's connection. */
static int health(void *inst, json_t **detail, sbx_err *err)
{
	struct sqdb *d = inst;
	struct conn *c;
	sqlite3_stmt *st = NULL;
	int rc, ret, version = 0;

	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = stmt(c, ST_HEALTH, &st, err);
	if (ret < 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = sq_error(c->h, rc, err, "health query");
		goto out;
	}
	version = sqlite3_column_int(st, 0);
	if (detail)
		*detail = json_pack("{s:s, s:i}", "path", d->path, "schema_version", version);
out:
	stmt_done(st);
	return ret;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void destroy(void *inst)
{
	struct sqdb *d = inst;

	if (!d)
		return;
	/* Deleting the key first means no destructor runs later on a freed instance. */
	if (d->key_ok)
		pthread_key_delete(d->key);
	if (d->wkey_ok)
		pthread_key_delete(d->wkey);
	while (d->conns)
		conn_close(d->conns);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->wlock);
	free(d->name);
	free(d->path);
	free(d);
}

static int parse_config(struct sqdb *d, const char *instance_name, const json_t *config,
			sbx_err *err)
{
	const char *path = NULL, *sync = NULL, *dir;
	json_error_t jerr;
	int bt = 5000, ret = 0;
	json_t *empty = NULL;

	if (!config)
		config = empty = json_object();
	/* jansson's type errors do not name the member: check types first. */
	if (json_is_object(config) && ((json_object_get(config, "path") &&
					!json_is_string(json_object_get(config, "path"))) ||
				       (json_object_get(config, "synchronous") &&
					!json_is_string(json_object_get(config, "synchronous"))))) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "db '%s' (sqlite): 'path' and 'synchronous' must be strings",
				  instance_name);
		goto out;
	}
	if (json_is_object(config) && json_object_get(config, "busy_timeout_ms") &&
	    !json_is_integer(json_object_get(config, "busy_timeout_ms"))) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "db '%s' (sqlite): 'busy_timeout_ms' must be an integer (ms)",
				  instance_name);
		goto out;
	}
	if (json_unpack_ex((json_t *)config, &jerr, JSON_STRICT, "{s?s, s?i, s?s}", "path", &path,
			   "busy_timeout_ms", &bt, "synchronous", &sync) != 0) {
		ret = sbx_err_set(err, SBX_E_INVALID, "db '%s' (sqlite): bad config: %s",
				  instance_name, jerr.text);
		goto out;
	}
	if (bt < 0) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "db '%s' (sqlite): busy_timeout_ms must be >= 0", instance_name);
		goto out;
	}
	d->busy_timeout_ms = bt;
	if (!sync || strcmp(sync, "full") == 0) {
		d->sync_full = 1;
	} else if (strcmp(sync, "normal") == 0) {
		d->sync_full = 0;
	} else {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "db '%s' (sqlite): synchronous must be \"full\" or \"normal\", "
				  "not \"%s\"",
				  instance_name, sync);
		goto out;
	}
	dir = d->core->data_dir ? d->core->data_dir() : NULL;
	if (path && path[0] == '/') {
		d->path = strdup(path);
	} else if (!dir) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "db '%s' (sqlite): no data directory; set an absolute 'path'",
				  instance_name);
		goto out;
	} else {
		const char *rel = path ? path : "sbxd.db";
		size_t n = strlen(dir) + strlen(rel) + 2;

		d->path = malloc(n);
		if (d->path)
			snprintf(d->path, n, "%s/%s", dir, rel);
	}
	if (!d->path)
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
out:
	json_decref(empty);
	return ret;
}

/* Main thread, before other threads exist: parses config, opens the main thread's
 * connection, switches to WAL and migrates the schema. */
static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	struct sqdb *d;
	struct conn *c;
	sqlite3_stmt *st = NULL;
	int rc, ret;

	d = calloc(1, sizeof *d);
	if (!d) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	d->core = core;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->wlock, NULL);
	d->name = strdup(instance_name ? instance_name : "sqlite");
	if (!d->name) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	ret = parse_config(d, d->name, config, err);
	if (ret < 0)
		goto out;
	if (pthread_key_create(&d->key, conn_tls_free) != 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "pthread_key_create failed");
		goto out;
	}
	d->key_ok = 1;
	if (pthread_key_create(&d->wkey, NULL) != 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "pthread_key_create failed");
		goto out;
	}
	d->wkey_ok = 1;
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	rc = sqlite3_prepare_v2(c->h, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = sq_error(c->h, rc, err, "switching to WAL (is the file a SQLite database?)");
		goto out;
	}
	if (sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
		core->log(d->name, SBX_LOG_WARN, "event=db_wal_unavailable path=%s mode=%s",
			  d->path, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	st = NULL;
	ret = schema_migrate(c->h, d->path, err);
	if (ret < 0)
		goto out;
	core->log(d->name, SBX_LOG_INFO, "event=db_open path=%s schema_version=%d synchronous=%s",
		  d->path, schema_latest(), d->sync_full ? "full" : "normal");
	*inst = d;
	d = NULL;
out:
	sqlite3_finalize(st);
	destroy(d);
	return ret;
}

static void thread_init(void *inst)
{
	struct sqdb *d = inst;
	struct conn *c;
	sbx_err err;

	sbx_err_clear(&err);
	/* On failure the next call retries the open and reports the error itself. */
	if (conn_get(d, &c, &err) < 0)
		d->core->log(d->name, SBX_LOG_WARN, "event=db_thread_init_failed error=\"%s\"",
			     err.message);
}

static void thread_fini(void *inst)
{
	struct sqdb *d = inst;
	struct conn *c = pthread_getspecific(d->key);

	if (c) {
		pthread_setspecific(d->key, NULL);
		conn_close(c);
	}
}

/* ---- writers, serialised per instance (see sqdb.wlock) ---------------------------- */

/* With wlock held: route this thread's statements to the writer connection. */
static int writer_enter(struct sqdb *d, sbx_err *err)
{
	int ret;

	if (!d->wkey_ok)
		return 0;
	if (!d->wconn && (ret = conn_open(d, &d->wconn, err)) < 0)
		return ret;
	return pthread_setspecific(d->wkey, d->wconn) == 0
		   ? 0
		   : sbx_err_set(err, SBX_E_INTERNAL, "pthread_setspecific failed");
}

#define LOCKED_WRITER(name, params, args)                                                          \
	static int name params                                                                     \
	{                                                                                          \
		struct sqdb *d_ = inst;                                                            \
		int rc_;                                                                           \
		pthread_mutex_lock(&d_->wlock);                                                    \
		rc_ = writer_enter(d_, err);                                                       \
		if (rc_ == 0)                                                                      \
			rc_ = name##_unlocked args;                                                \
		if (d_->wkey_ok)                                                                   \
			pthread_setspecific(d_->wkey, NULL);                                       \
		pthread_mutex_unlock(&d_->wlock);                                                  \
		return rc_;                                                                        \
	}

LOCKED_WRITER(session_insert, (void *inst, const json_t *session, sbx_err *err),
	      (inst, session, err))
LOCKED_WRITER(session_update,
	      (void *inst, const char *id, const json_t *changes, const char *expect_status,
	       json_t **out, sbx_err *err),
	      (inst, id, changes, expect_status, out, err))
LOCKED_WRITER(session_delete, (void *inst, const char *id, sbx_err *err), (inst, id, err))
LOCKED_WRITER(execution_insert, (void *inst, const json_t *execution, sbx_err *err),
	      (inst, execution, err))
LOCKED_WRITER(execution_update,
	      (void *inst, const char *id, const json_t *changes, const char *expect_status,
	       json_t **out, sbx_err *err),
	      (inst, id, changes, expect_status, out, err))
LOCKED_WRITER(template_insert, (void *inst, const json_t *tmpl, sbx_err *err), (inst, tmpl, err))
LOCKED_WRITER(template_update,
	      (void *inst, const char *id, const json_t *changes, json_t **out, sbx_err *err),
	      (inst, id, changes, out, err))
LOCKED_WRITER(template_delete, (void *inst, const char *id, sbx_err *err), (inst, id, err))
LOCKED_WRITER(lease_acquire,
	      (void *inst, const char *name, const char *holder, int64_t ttl_ms, sbx_err *err),
	      (inst, name, holder, ttl_ms, err))
LOCKED_WRITER(lease_release, (void *inst, const char *name, const char *holder, sbx_err *err),
	      (inst, name, holder, err))

static const struct sbx_db_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_DB, struct sbx_db_plugin, "sqlite", "1.0.0",
			     "SQLite state store (embedded default)"),
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
