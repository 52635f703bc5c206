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

#include "sqlite_int.h"

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT     1000

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

/* A record kind: its table, statements and indexed columns (bound from ?2 on, in this
 * order, followed by version and doc). */
struct col {
	const char *name;
	int is_time; /* integer ms, else string */
};

struct kind {
	const char *what; /* "session", for messages */
	int st_insert, st_get, st_update;
	const struct col *cols;
	int ncols;
};

static const struct col session_cols[] = {
    {"tenant", 0},     {"template_id", 0}, {"status", 0},           {"runtime_instance", 0},
    {"created_at", 1}, {"updated_at", 1},  {"last_activity_at", 1}, {"completed_at", 1},
};
static const struct col execution_cols[] = {
    {"session_id", 0}, {"tenant", 0},     {"status", 0},
    {"created_at", 1}, {"started_at", 1}, {"completed_at", 1},
};
static const struct col template_cols[] = {
    {"tenant", 0},
    {"created_at", 1},
};

static const struct kind k_session = {"session",   ST_S_INSERT,  ST_S_GET,
				      ST_S_UPDATE, session_cols, 8};
static const struct kind k_execution = {"execution", ST_E_INSERT,    ST_E_GET,
					ST_E_UPDATE, execution_cols, 6};
static const struct kind k_template = {"template",  ST_T_INSERT,   ST_T_GET,
				       ST_T_UPDATE, template_cols, 2};

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

/* Binds member `col` of rec at idx: null/absent -> NULL, else string or integer ms. */
static int bind_member(sqlite3_stmt *st, int idx, const json_t *rec, const struct col *col,
		       const char *what, sbx_err *err)
{
	const json_t *v = json_object_get(rec, col->name);
	int ret = 0;

	if (!v || json_is_null(v)) {
		sqlite3_bind_null(st, idx);
	} else if (!col->is_time && json_is_string(v)) {
		sqlite3_bind_text(st, idx, json_string_value(v), (int)json_string_length(v),
				  SQLITE_TRANSIENT);
	} else if (col->is_time && json_is_integer(v)) {
		sqlite3_bind_int64(st, idx, (sqlite3_int64)json_integer_value(v));
	} else {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s member '%s' must be %s or null", what,
				  col->name, col->is_time ? "an integer (ms)" : "a string");
	}
	return ret;
}

/* Binds ?1 id, ?2.. the kind's columns, then version and doc (rec serialised). */
static int bind_record(sqlite3_stmt *st, const struct kind *k, const char *id, const json_t *rec,
		       json_int_t version, sbx_err *err)
{
	char *doc = NULL;
	int ret = 0, idx = 1;

	sqlite3_bind_text(st, idx++, id, -1, SQLITE_TRANSIENT);
	for (int i = 0; i < k->ncols; i++) {
		ret = bind_member(st, idx++, rec, &k->cols[i], k->what, err);
		if (ret < 0)
			goto out;
	}
	sqlite3_bind_int64(st, idx++, (sqlite3_int64)version);
	doc = json_dumps(rec, JSON_COMPACT);
	if (!doc) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s '%s' cannot be serialised as JSON",
				  k->what, id);
		goto out;
	}
	/* SQLITE_TRANSIENT copies; a multi-MiB document is copied once more, which keeps
	 * ownership simple (doc is freed below whatever happens). */
	sqlite3_bind_text(st, idx, doc, -1, SQLITE_TRANSIENT);
out:
	free(doc);
	return ret;
}

static int check_record(const struct kind *k, const json_t *rec, const char **id, sbx_err *err)
{
	const json_t *v;
	int ret = 0;

	if (!json_is_object(rec)) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s must be a JSON object", k->what);
		goto out;
	}
	v = json_object_get(rec, "id");
	if (!json_is_string(v) || json_string_length(v) == 0) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s lacks a non-empty string 'id'", k->what);
		goto out;
	}
	*id = json_string_value(v);
	if (k == &k_execution && !json_is_string(json_object_get(rec, "session_id"))) {
		ret = sbx_err_set(err, SBX_E_INVALID, "execution '%s' lacks a string 'session_id'",
				  *id);
		goto out;
	}
out:
	return ret;
}

static int rec_insert(struct sqdb *d, const struct kind *k, const json_t *rec, sbx_err *err)
{
	struct conn *c;
	sqlite3_stmt *st = NULL;
	json_t *copy = NULL;
	const char *id = NULL;
	int rc, ret;

	ret = check_record(k, rec, &id, err);
	if (ret < 0)
		goto out;
	copy = json_copy((json_t *)rec); /* shallow: only "version" is replaced */
	if (!copy || json_object_set_new(copy, "version", json_integer(1)) != 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
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
		ret = sbx_err_set(err, SBX_E_CONFLICT, "%s '%s' already exists", k->what, id);
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
	int len = sqlite3_column_bytes(st, col);
	json_error_t jerr;
	json_t *v;
	int ret = 0;

	v = text ? json_loadb(text, (size_t)len, JSON_ALLOW_NUL, &jerr) : NULL;
	if (!json_is_object(v)) {
		json_decref(v);
		ret =
		    sbx_err_set(err, SBX_E_INTERNAL, "stored %s record is not a JSON object", what);
		goto out;
	}
	*out = v;
out:
	return ret;
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
		ret = load_doc(st, 0, k->what, out, err);
	else if (rc == SQLITE_DONE)
		ret = sbx_err_set(err, SBX_E_NOTFOUND, "%s '%s' not found", k->what, id);
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

	if (!id || !*id || !out) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s id must be a non-empty string", k->what);
		goto out;
	}
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
	const char *key;
	const char *status;
	json_t *v;
	json_int_t version;
	int rc, ret;

	if (!id || !*id) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s id must be a non-empty string", k->what);
		goto out;
	}
	if (!json_is_object(changes)) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s changes must be a JSON object", k->what);
		goto out;
	}
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = exec_simple(c, ST_BEGIN_IMMEDIATE, err);
	if (ret < 0)
		goto out;
	ret = rec_read(c, k, id, &cur, err);
	if (ret < 0)
		goto out;
	if (expect_status) {
		status = json_string_value(json_object_get(cur, "status"));
		if (!status || strcmp(status, expect_status) != 0) {
			ret = sbx_err_set(err, SBX_E_CONFLICT, "%s '%s' has status '%s', not '%s'",
					  k->what, id, status ? status : "(none)", expect_status);
			goto out;
		}
	}
	json_object_foreach ((json_t *)changes, key, v) {
		if (strcmp(key, "id") == 0 || strcmp(key, "version") == 0)
			continue;
		if (json_object_set(cur, key, v) != 0) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
			goto out;
		}
	}
	v = json_object_get(cur, "version");
	version = (json_is_integer(v) ? json_integer_value(v) : 0) + 1;
	json_object_set_new(cur, "version", json_integer(version));
	if (k == &k_execution && !json_is_string(json_object_get(cur, "session_id"))) {
		ret = sbx_err_set(err, SBX_E_INVALID, "execution '%s' needs a string 'session_id'",
				  id);
		goto out;
	}
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

enum ftype { F_STR, F_STRS, F_BEFORE };

struct filter {
	const char *key;
	enum ftype type;
	const char *expr; /* SQL expression compared */
};

static const struct filter session_filters[] = {
    {"status", F_STR, "status"},
    {"statuses", F_STRS, "status"},
    {"template_id", F_STR, "template_id"},
    {"tenant", F_STR, "tenant"},
    {"runtime_instance", F_STR, "runtime_instance"},
    /* A session never used counts as idle since its creation. */
    {"last_activity_before", F_BEFORE, "COALESCE(last_activity_at, created_at)"},
    {NULL, 0, NULL},
};

static const struct filter execution_filters[] = {
    {"session_id", F_STR, "session_id"},
    {"statuses", F_STRS, "status"},
    {"tenant", F_STR, "tenant"},
    {NULL, 0, NULL},
};

/* Appends the WHERE clause for query to sql and its parameters (strings, integers) to
 * params, in order. Unknown members and wrong types are SBX_E_INVALID. */
static int build_where(const char *what, const struct filter *filters, const json_t *query,
		       sqlite3_str *sql, json_t *params, long long *limit, long long *offset,
		       sbx_err *err)
{
	const char *key;
	json_t *v;
	int ret = 0;

	*limit = LIST_DEFAULT_LIMIT;
	*offset = 0;
	sqlite3_str_appendall(sql, " WHERE 1");
	if (!query)
		goto out;
	if (!json_is_object(query)) {
		ret = sbx_err_set(err, SBX_E_INVALID, "%s query must be a JSON object", what);
		goto out;
	}
	json_object_foreach ((json_t *)query, key, v) {
		const struct filter *f = filters;

		if (strcmp(key, "limit") == 0 || strcmp(key, "offset") == 0) {
			int is_limit = key[0] == 'l';
			json_int_t n = json_integer_value(v);

			if (!json_is_integer(v) || n < (is_limit ? 1 : 0) ||
			    (is_limit && n > LIST_MAX_LIMIT)) {
				ret = sbx_err_set(err, SBX_E_INVALID,
						  "%s query: '%s' must be an integer %s", what, key,
						  is_limit ? "in 1..1000" : ">= 0");
				goto out;
			}
			*(is_limit ? limit : offset) = n;
			continue;
		}
		while (f->key && strcmp(f->key, key) != 0)
			f++;
		if (!f->key) {
			ret = sbx_err_set(err, SBX_E_INVALID, "%s query: unknown member '%s'", what,
					  key);
			goto out;
		}
		if (json_is_null(v))
			continue;
		switch (f->type) {
		case F_STR:
			if (!json_is_string(v))
				goto bad_type;
			sqlite3_str_appendf(sql, " AND %s = ?", f->expr);
			json_array_append(params, v);
			break;
		case F_BEFORE:
			if (!json_is_integer(v))
				goto bad_type;
			sqlite3_str_appendf(sql, " AND %s < ?", f->expr);
			json_array_append(params, v);
			break;
		case F_STRS: {
			size_t i;
			json_t *s;

			if (!json_is_array(v))
				goto bad_type;
			if (json_array_size(v) == 0) {
				sqlite3_str_appendall(sql, " AND 0");
				break;
			}
			sqlite3_str_appendf(sql, " AND %s IN (", f->expr);
			json_array_foreach (v, i, s) {
				if (!json_is_string(s))
					goto bad_type;
				sqlite3_str_appendall(sql, i ? ", ?" : "?");
				json_array_append(params, s);
			}
			sqlite3_str_appendall(sql, ")");
			break;
		}
		}
		continue;
	bad_type:
		ret = sbx_err_set(err, SBX_E_INVALID, "%s query: '%s' must be %s", what, key,
				  f->type == F_STR      ? "a string"
				  : f->type == F_BEFORE ? "an integer (ms)"
							: "an array of strings");
		goto out;
	}
out:
	return ret;
}

static void bind_params(sqlite3_stmt *st, const json_t *params)
{
	size_t i;
	json_t *p;

	json_array_foreach (params, i, p) {
		if (json_is_string(p))
			sqlite3_bind_text(st, (int)i + 1, json_string_value(p),
					  (int)json_string_length(p), SQLITE_TRANSIENT);
		else
			sqlite3_bind_int64(st, (int)i + 1, json_integer_value(p));
	}
}

/* SELECT rows of `table` matching query, in one read transaction so that total and items
 * agree. `table` and `filters` are static; query is borrowed. */
static int rec_list(struct sqdb *d, const char *what, const char *table,
		    const struct filter *filters, const json_t *query, json_t **page, sbx_err *err)
{
	struct conn *c = NULL;
	sqlite3_str *where = NULL;
	sqlite3_stmt *st = NULL;
	json_t *params = json_array(), *items = json_array();
	char *wsql = NULL, *sql = NULL;
	long long limit, offset, total = 0;
	int rc, ret;

	where = sqlite3_str_new(NULL);
	ret = build_where(what, filters, query, where, params, &limit, &offset, err);
	if (ret < 0)
		goto out;
	wsql = sqlite3_str_finish(where);
	where = NULL;
	if (!wsql || !params || !items || !page) {
		ret = sbx_err_set(err, page ? SBX_E_INTERNAL : SBX_E_INVALID,
				  page ? "out of memory" : "no output page");
		goto out;
	}
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
	bind_params(st, params);
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
			      table, wsql, limit, offset);
	rc = sql ? sqlite3_prepare_v2(c->h, sql, -1, &st, NULL) : SQLITE_NOMEM;
	if (rc != SQLITE_OK) {
		ret = sq_error(c->h, rc, err, "preparing a list");
		goto out;
	}
	bind_params(st, params);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *rec;

		ret = load_doc(st, 0, what, &rec, err);
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
	*page = json_pack("{s:O, s:I}", "items", items, "total", (json_int_t)total);
	if (!*page)
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
out:
	sqlite3_finalize(st);
	if (c)
		rollback(c);
	if (where)
		sqlite3_free(sqlite3_str_finish(where));
	sqlite3_free(wsql);
	sqlite3_free(sql);
	json_decref(params);
	json_decref(items);
	return ret;
}

/* ---- db.h methods -------------------------------------------------------------- */

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
	return rec_list(inst, "session_list", "sessions", session_filters, query, page, err);
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
	sqlite3_stmt *st = NULL;
	int rc, ret;

	if (!id || !*id) {
		ret = sbx_err_set(err, SBX_E_INVALID, "session id must be a non-empty string");
		goto out;
	}
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = exec_simple(c, ST_BEGIN_IMMEDIATE, err);
	if (ret < 0)
		goto out;
	ret = stmt(c, ST_S_DELETE, &st, err);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		ret = sq_error(c->h, rc, err, "deleting a session");
		goto out;
	}
	if (sqlite3_changes(c->h) == 0) {
		ret = sbx_err_set(err, SBX_E_NOTFOUND, "session '%s' not found", id);
		goto out;
	}
	stmt_done(st);
	ret = stmt(c, ST_S_DELETE_EXECS, &st, err);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		ret = sq_error(c->h, rc, err, "deleting a session's executions");
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
	return rec_list(inst, "execution_list", "executions", execution_filters, query, page, err);
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
	const char *tenant = NULL, *key;
	json_t *arr = json_array(), *v;
	int rc, ret = 0;

	if (query && !json_is_object(query)) {
		ret = sbx_err_set(err, SBX_E_INVALID, "template_list query must be a JSON object");
		goto out;
	}
	json_object_foreach ((json_t *)query, key, v) {
		if (strcmp(key, "tenant") != 0) {
			ret = sbx_err_set(err, SBX_E_INVALID,
					  "template_list query: unknown member '%s'", key);
			goto out;
		}
		if (!json_is_null(v) && !json_is_string(v)) {
			ret = sbx_err_set(err, SBX_E_INVALID,
					  "template_list query: 'tenant' must be a string");
			goto out;
		}
		tenant = json_string_value(v);
	}
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

		ret = load_doc(st, 0, "template", &rec, err);
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
	sqlite3_stmt *st = NULL;
	int rc, ret;

	if (!id || !*id) {
		ret = sbx_err_set(err, SBX_E_INVALID, "template id must be a non-empty string");
		goto out;
	}
	ret = conn_get(d, &c, err);
	if (ret < 0)
		goto out;
	ret = stmt(c, ST_T_DELETE, &st, err);
	if (ret < 0)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		ret = sq_error(c->h, rc, err, "deleting a template");
	else if (sqlite3_changes(c->h) == 0)
		ret = sbx_err_set(err, SBX_E_NOTFOUND, "template '%s' not found", id);
out:
	stmt_done(st);
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

	if (!name || !*name || !holder || !*holder || ttl_ms <= 0) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "lease_acquire needs a name, a holder and a positive ttl_ms");
		goto out;
	}
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
			ret = sbx_err_set(err, SBX_E_CONFLICT,
					  "lease '%s' is held by '%s' for another %lld ms", name,
					  cur, (long long)(exp - now));
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
	sqlite3_bind_int64(st, 3, now > INT64_MAX - ttl_ms ? INT64_MAX : now + ttl_ms);
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

	if (!name || !*name || !holder || !*holder) {
		ret = sbx_err_set(err, SBX_E_INVALID, "lease_release needs a name and a holder");
		goto out;
	}
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
