/*
 * db/mariadb: the versioned schema. Migrations are appended below, never edited, and
 * applied at create under a named server lock so that replicas starting together take
 * turns; a database written by a newer sbxd is refused.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <mysqld_error.h>

#include "mariadb_int.h"

/*
 * Migration i brings the schema from version i to i + 1. MariaDB commits DDL implicitly,
 * so a migration cannot be one transaction: each statement must be idempotent (IF NOT
 * EXISTS, ADD COLUMN IF NOT EXISTS, ...) so that one interrupted half-way, or run by two
 * Galera nodes at once (GET_LOCK is node-local there), is simply run again.
 *
 * Every row keeps the full record in `doc` (compact JSON, LONGBLOB: stored and returned
 * byte for byte, up to the server's max_allowed_packet); the other columns mirror the
 * members db.h filters on. Ids and filter strings are VARBINARY: compared byte-wise (as
 * the sqlite module does), no collation padding or case folding.
 */
static const char *const m1[] = {
    "CREATE TABLE IF NOT EXISTS sessions ("
    " id VARBINARY(255) NOT NULL PRIMARY KEY,"
    " tenant VARBINARY(255) NULL,"
    " template_id VARBINARY(255) NULL,"
    " status VARBINARY(255) NULL,"
    " runtime_instance VARBINARY(255) NULL,"
    " created_at BIGINT NULL,"
    " updated_at BIGINT NULL,"
    " last_activity_at BIGINT NULL,"
    " completed_at BIGINT NULL,"
    " activity_at BIGINT AS (COALESCE(last_activity_at, created_at)) VIRTUAL,"
    " version BIGINT NOT NULL,"
    " doc LONGBLOB NOT NULL,"
    " KEY sessions_created (created_at DESC, id),"
    " KEY sessions_tenant (tenant, created_at DESC),"
    " KEY sessions_status (status, created_at DESC),"
    " KEY sessions_template (template_id, created_at DESC),"
    " KEY sessions_runtime (runtime_instance, status),"
    " KEY sessions_activity (activity_at)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS executions ("
    " id VARBINARY(255) NOT NULL PRIMARY KEY,"
    " session_id VARBINARY(255) NULL,"
    " tenant VARBINARY(255) NULL,"
    " status VARBINARY(255) NULL,"
    " created_at BIGINT NULL,"
    " started_at BIGINT NULL,"
    " completed_at BIGINT NULL,"
    " version BIGINT NOT NULL,"
    " doc LONGBLOB NOT NULL,"
    " KEY executions_session (session_id, created_at DESC),"
    " KEY executions_tenant (tenant, created_at DESC),"
    " KEY executions_status (status, created_at DESC),"
    " KEY executions_created (created_at DESC, id)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS templates ("
    " id VARBINARY(255) NOT NULL PRIMARY KEY,"
    " tenant VARBINARY(255) NULL,"
    " created_at BIGINT NULL,"
    " version BIGINT NOT NULL,"
    " doc LONGBLOB NOT NULL,"
    " KEY templates_tenant (tenant, id)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS leases ("
    " name VARBINARY(255) NOT NULL PRIMARY KEY,"
    " holder VARBINARY(255) NOT NULL,"
    " expires_at BIGINT NOT NULL"
    ") ENGINE=InnoDB",
    NULL,
};

static const char *const *const migrations[] = {m1};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int schema_latest(void)
{
	return N_MIGRATIONS;
}

static int run_simple(struct conn *c, const char *sql, sbx_err *err, const char *what)
{
	struct md_q q = {0};
	int ret = md_run(c, -1, sql, NULL, 0, &q, err, what);

	md_end(&q);
	return ret;
}

/* SELECT returning one integer (NULL -> *v = null_value). */
static int query_int(struct conn *c, const char *sql, const struct md_param *p, unsigned np,
		     long long null_value, long long *v, sbx_err *err, const char *what)
{
	struct md_col col = {.type = MC_I64};
	struct md_q q = {0};
	int ret;

	ret = md_run(c, -1, sql, p, np, &q, err, what);
	if (ret < 0)
		goto out;
	ret = md_row(&q, &col, 1, err, what);
	if (ret < 0)
		goto out;
	*v = ret == 0 || col.null ? null_value : col.i;
	ret = 0;
out:
	md_end(&q);
	return ret;
}

/* Takes the migration lock of this database. 1 = held, 0 = the server has no usable
 * GET_LOCK (Galera), <0 = error or timeout. */
static int lock_take(struct conn *c, sbx_err *err)
{
	struct mdb *d = c->d;
	struct md_param p = {.type = MP_I64, .i = d->migrate_timeout_s};
	long long got = -1;
	int ret;

	ret = query_int(c, "SELECT GET_LOCK(CONCAT('sbxd_migrate:', LEFT(DATABASE(), 48)), ?)", &p,
			1, -1, &got, err, "taking the migration lock");
	if (ret < 0) {
		if (c->m && c->last_errno != 0 && c->last_errno < 2000) {
			d->core->log(d->name, SBX_LOG_WARN,
				     "event=db_migrate_unlocked server=%s reason=\"%s\"", d->server,
				     err ? err->message : "GET_LOCK failed");
			sbx_err_clear(err);
			return 0;
		}
		return ret;
	}
	if (got != 1)
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "mariadb %s: another sbxd held the schema migration lock for "
				   "more than migrate_timeout_s (%u s); retry, or raise it",
				   d->server, d->migrate_timeout_s);
	return 1;
}

int schema_migrate(struct conn *c, sbx_err *err)
{
	struct mdb *d = c->d;
	long long version = 0;
	int ret, locked;

	locked = ret = lock_take(c, err);
	if (ret < 0)
		goto out;
	ret = run_simple(c,
			 "CREATE TABLE IF NOT EXISTS schema_version ("
			 " version INT NOT NULL PRIMARY KEY,"
			 " applied_at BIGINT NOT NULL) ENGINE=InnoDB",
			 err, "creating schema_version");
	if (ret < 0)
		goto out;
	ret = query_int(c, "SELECT MAX(version) FROM schema_version", NULL, 0, 0, &version, err,
			"reading schema_version");
	if (ret < 0)
		goto out;
	if (version > N_MIGRATIONS) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "mariadb %s: the database has schema version %lld but this sbxd "
				  "knows only up to %d: it was written by a newer sbxd; upgrade "
				  "sbxd or point db 'database' at another database",
				  d->server, version, N_MIGRATIONS);
		goto out;
	}
	for (int v = (int)version; v < N_MIGRATIONS; v++) {
		struct md_param p[2] = {{.type = MP_I64, .i = v + 1},
					{.type = MP_I64, .i = d->core->now_ms()}};
		struct md_q q = {0};
		char what[64];

		snprintf(what, sizeof what, "migrating to schema version %d", v + 1);
		for (const char *const *s = migrations[v]; *s; s++) {
			ret = run_simple(c, *s, err, what);
			if (ret < 0)
				goto out;
		}
		ret = md_run(c, -1,
			     "INSERT IGNORE INTO schema_version(version, applied_at) VALUES (?, ?)",
			     p, 2, &q, err, "recording the schema version");
		md_end(&q);
		if (ret < 0)
			goto out;
		d->core->log(d->name, SBX_LOG_INFO, "event=db_migrated server=%s schema_version=%d",
			     d->server, v + 1);
	}
out:
	if (locked > 0 && c->m) {
		long long ignored;
		sbx_err e2;

		query_int(c, "SELECT RELEASE_LOCK(CONCAT('sbxd_migrate:', LEFT(DATABASE(), 48)))",
			  NULL, 0, 0, &ignored, &e2, "releasing the migration lock");
	}
	return ret;
}
