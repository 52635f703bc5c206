/*
 * Tests specific to the db module `sqlite` (the shared behaviour is in db_conformance.c):
 * its config keys, relative paths, WAL mode, and refusal of a database whose schema was
 * written by a newer sbxd. TAP.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include <sandbox/db.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

static const struct sbx_db_plugin *db;

static int create_with(const char *cfgjson, void **inst, sbx_err *err)
{
	json_t *cfg = json_loads(cfgjson, 0, NULL);
	int rc;

	*inst = NULL;
	sbx_err_clear(err);
	rc = db->life.create(fakecore_api(), "sqlite-test", cfg, inst, err);
	json_decref(cfg);
	return rc;
}

static int sql_text(const char *path, const char *sql, char *out, size_t cap)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1;

	out[0] = '\0';
	if (sqlite3_open(path, &h) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
		int r = sqlite3_step(st);

		if (r == SQLITE_ROW) {
			snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
			rc = 0;
		} else if (r == SQLITE_DONE) {
			rc = 0;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	return rc;
}

int main(int argc, char **argv)
{
	const char *modpath = argc > 1 ? argv[1] : NULL;
	char defmod[4096], errbuf[512], path[4200], val[64];
	struct fakecore_module mod;
	void *inst;
	sbx_err err;
	int rc;

	fakecore_api();
	if (!modpath) {
		const char *tb = getenv("top_builddir");

		snprintf(defmod, sizeof defmod, "%s/plugins/db/sqlite/db_sqlite.la", tb ? tb : ".");
		modpath = defmod;
	}
	if (fakecore_module_open(modpath, SBX_KIND_DB, sizeof(struct sbx_db_plugin), &mod, errbuf,
				 sizeof errbuf) != 0) {
		printf("Bail out! %s\n", errbuf);
		return 1;
	}
	db = (const struct sbx_db_plugin *)mod.hdr;

	rc = create_with("{\"path\": \"rel/x.db\"}", &inst, &err);
	ok(rc == -SBX_E_UNAVAILABLE && strstr(err.message, fakecore_data_dir()),
	   "a relative path is resolved under data_dir (missing subdirectory reported: %s)",
	   err.message);
	rc = create_with("{\"path\": \"mine.db\", \"synchronous\": \"normal\", "
			 "\"busy_timeout_ms\": 100}",
			 &inst, &err);
	snprintf(path, sizeof path, "%s/mine.db", fakecore_data_dir());
	ok(rc == 0 && access(path, F_OK) == 0,
	   "a relative path creates the database under data_dir, with every key accepted");
	if (inst)
		db->life.destroy(inst);
	sql_text(path, "PRAGMA journal_mode", val, sizeof val);
	ok(strcmp(val, "wal") == 0, "the database is in WAL mode");
	sql_text(path, "SELECT MAX(version) FROM schema_version", val, sizeof val);
	ok(strcmp(val, "1") == 0, "schema_version records the applied migration");

	rc = create_with("{\"synchronous\": \"sometimes\"}", &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "synchronous"),
	   "synchronous other than full or normal is SBX_E_INVALID");
	rc = create_with("{\"busy_timeout_ms\": \"soon\"}", &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "busy_timeout_ms"),
	   "a busy_timeout_ms of the wrong type is SBX_E_INVALID naming it (%s)", err.message);

	rc = create_with("{}", &inst, &err);
	ok(rc == 0, "the default path <data_dir>/sbxd.db is used without config");
	if (inst)
		db->life.destroy(inst);

	sql_text(path, "INSERT INTO schema_version(version, applied_at) VALUES (99, 0)", val,
		 sizeof val);
	rc = create_with("{\"path\": \"mine.db\"}", &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "newer sbxd") && !inst,
	   "a database written by a newer sbxd is refused with a clear error (%s)", err.message);

	fakecore_module_close(&mod);
	fakecore_cleanup();
	return tap_done();
}
