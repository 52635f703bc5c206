/*
 * db/sqlite: the versioned schema. Migrations are appended to the table below, never
 * edited; schema_migrate() brings a database up to the newest one in one transaction and
 * refuses a database written by a newer sbxd.
 */
#include "config.h"

#include <sqlite3.h>

#include "sqlite_int.h"

/* Migration i brings the schema from version i to i + 1. Append only. */
static const char *const migrations[] = {
    /* 1: sessions, executions, templates, leases. Each row keeps the full record in
     * `doc` (JSON); the other columns mirror the members db.h filters on. */
    "CREATE TABLE sessions ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " tenant TEXT,"
    " template_id TEXT,"
    " status TEXT,"
    " runtime_instance TEXT,"
    " created_at INTEGER,"
    " updated_at INTEGER,"
    " last_activity_at INTEGER,"
    " completed_at INTEGER,"
    " version INTEGER NOT NULL,"
    " doc TEXT NOT NULL);"
    "CREATE INDEX sessions_created ON sessions(created_at DESC, id);"
    "CREATE INDEX sessions_tenant ON sessions(tenant, created_at DESC);"
    "CREATE INDEX sessions_status ON sessions(status, created_at DESC);"
    "CREATE INDEX sessions_template ON sessions(template_id, created_at DESC);"
    "CREATE INDEX sessions_runtime ON sessions(runtime_instance, status);"
    "CREATE INDEX sessions_activity ON sessions(COALESCE(last_activity_at, created_at));"
    "CREATE TABLE executions ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " session_id TEXT,"
    " tenant TEXT,"
    " status TEXT,"
    " created_at INTEGER,"
    " started_at INTEGER,"
    " completed_at INTEGER,"
    " version INTEGER NOT NULL,"
    " doc TEXT NOT NULL);"
    "CREATE INDEX executions_session ON executions(session_id, created_at DESC);"
    "CREATE INDEX executions_tenant ON executions(tenant, created_at DESC);"
    "CREATE INDEX executions_status ON executions(status, created_at DESC);"
    "CREATE INDEX executions_created ON executions(created_at DESC, id);"
    "CREATE TABLE templates ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " tenant TEXT,"
    " version INTEGER NOT NULL,"
    " doc TEXT NOT NULL,"
    " created_at INTEGER);"
    "CREATE INDEX templates_tenant ON templates(tenant, id);"
    "CREATE TABLE leases ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " holder TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL);",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int schema_latest(void)
{
	return N_MIGRATIONS;
}

static int read_version(sqlite3 *db, int *version, sbx_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	*version = 0;
	rc = sqlite3_prepare_v2(db, "SELECT MAX(version) FROM schema_version", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		ret = sq_error(db, rc, err, "reading schema_version");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*version = sqlite3_column_int(st, 0);
	} else if (rc != SQLITE_DONE) {
		ret = sq_error(db, rc, err, "reading schema_version");
		goto out;
	}
out:
	sqlite3_finalize(st);
	return ret;
}

/*
 * Migrates `db` to the latest schema inside one IMMEDIATE transaction, so two processes
 * starting on the same file do not both apply a migration. Main thread, at create.
 */
int schema_migrate(sqlite3 *db, const char *path, sbx_err *err)
{
	char *emsg = NULL;
	int rc, ret = 0, version = 0, in_tx = 0;

	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = sq_error(db, rc, err, "starting the migration transaction");
		goto out;
	}
	in_tx = 1;
	rc = sqlite3_exec(db,
			  "CREATE TABLE IF NOT EXISTS schema_version ("
			  " version INTEGER NOT NULL, applied_at INTEGER NOT NULL)",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = sq_error(db, rc, err, "creating schema_version");
		goto out;
	}
	ret = read_version(db, &version, err);
	if (ret < 0)
		goto out;
	if (version > N_MIGRATIONS) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "database '%s' has schema version %d but this sbxd knows only "
				  "up to %d: it was written by a newer sbxd; upgrade sbxd or "
				  "point db 'path' at another file",
				  path, version, N_MIGRATIONS);
		goto out;
	}
	for (int v = version; v < N_MIGRATIONS; v++) {
		char sql[160];

		rc = sqlite3_exec(db, migrations[v], NULL, NULL, &emsg);
		if (rc != SQLITE_OK) {
			ret = sbx_err_set(err, SBX_E_INTERNAL,
					  "database '%s': migration to schema version %d failed: "
					  "%s",
					  path, v + 1, emsg ? emsg : sqlite3_errstr(rc));
			goto out;
		}
		snprintf(sql, sizeof sql,
			 "INSERT INTO schema_version(version, applied_at) VALUES (%d, "
			 "CAST(strftime('%%s','now') AS INTEGER) * 1000)",
			 v + 1);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			ret = sq_error(db, rc, err, "recording the schema version");
			goto out;
		}
	}
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = sq_error(db, rc, err, "committing the migration");
		goto out;
	}
	in_tx = 0;
out:
	if (in_tx)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_free(emsg);
	return ret;
}
