/*
 * db/sqlite: declarations shared by the module's files (schema.c, db_sqlite.c).
 * Nothing here is exported: the module is built with -fvisibility=hidden.
 */
#ifndef SBX_DB_SQLITE_INT_H
#define SBX_DB_SQLITE_INT_H

#include <sqlite3.h>

#include <sandbox/err.h>

/* Fills err from a SQLite failure on `db` while doing `what`; returns the negated code.
 * Busy/locked/IO/open failures map to SBX_E_UNAVAILABLE, the rest to SBX_E_INTERNAL. */
int sq_error(sqlite3 *db, int rc, sbx_err *err, const char *what);

/* The newest schema version this build knows. */
int schema_latest(void);

/* Brings `db` up to schema_latest() in one transaction; refuses a newer database. */
int schema_migrate(sqlite3 *db, const char *path, sbx_err *err);

#endif
