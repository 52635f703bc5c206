/*
 * db/mariadb: declarations shared by the module's files: the instance, the per-thread
 * connection with its reconnect state, and the prepared-statement helpers (conn.c) that
 * schema.c and db_mariadb.c run every query through. Nothing here is exported.
 */
#ifndef SBX_DB_MARIADB_INT_H
#define SBX_DB_MARIADB_INT_H

#include <pthread.h>
#include <stdint.h>

#include <mysql.h>

#include <sandbox/core.h>
#include <sandbox/err.h>

/* Statements kept prepared on every connection (db_mariadb.c holds their SQL). */
enum stmt_id {
	ST_BEGIN,
	ST_BEGIN_RO,
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
	ST_T_LIST,
	ST_T_LIST_TENANT,
	ST_L_UPSERT,
	ST_L_GET,
	ST_L_DELETE,
	ST_HEALTH,
	ST__COUNT
};

extern const char *const md_stmt_sql[ST__COUNT];

struct mdb {
	const struct sbx_core_api *core;
	char *name; /* instance name, for logs */
	/* config */
	char *host, *socket, *user, *password, *password_file, *database;
	unsigned port;
	int tls, tls_verify;
	char *tls_ca, *tls_cert, *tls_key;
	unsigned connect_timeout_s, read_timeout_s, write_timeout_s, migrate_timeout_s;
	char server[320]; /* "host:port/db" or "unix:path/db", named in every error */
	/* connections */
	pthread_key_t key; /* this instance's connection on the calling thread */
	int key_ok;
	int lib_ok;           /* holds a reference on mysql_library_init */
	pthread_mutex_t lock; /* guards conns */
	struct conn *conns;   /* every connection, so destroy can close them */
};

/* One thread's connection to the server; kept while disconnected to hold the backoff. */
struct conn {
	struct mdb *d;
	MYSQL *m;                        /* NULL while disconnected */
	MYSQL_STMT *st[ST__COUNT];       /* prepared on first use, dropped with m */
	int64_t retry_at;                /* monotonic ms before which no connect is attempted */
	int backoff_ms;                  /* the wait after the next failed attempt */
	int64_t used_at;                 /* monotonic ms of the last successful round trip */
	unsigned long max_packet;        /* the server's max_allowed_packet */
	int in_tx;                       /* a transaction is open */
	unsigned last_errno;             /* server/client errno of this call's failure, or 0 */
	int lost;                        /* this call lost an established connection */
	char down[SBX_ERR_MSG_MAX - 64]; /* why the last connect failed */
	struct conn *prev, *next;        /* in d->conns, under d->lock */
};

/* A query parameter. Strings and blobs are borrowed until md_run returns. */
enum { MP_NULL, MP_STR, MP_BLOB, MP_I64 };
struct md_param {
	int type;
	const char *s;
	unsigned long len;
	long long i;
};

/* A result column: MC_I64 into i, or MC_BLOB into a malloc'd, NUL-terminated buf that the
 * caller frees (NULL when SQL NULL). */
enum { MC_I64, MC_BLOB };
struct md_col {
	int type;
	long long i;
	char *buf;
	unsigned long len;
	my_bool null;
};

/* An executed statement: a cached one (id >= 0) or an ad-hoc one closed by md_end. */
struct md_q {
	struct conn *c;
	MYSQL_STMT *st;
	int adhoc;
};

/* The calling thread's connection, connecting when due (see conn.c for the backoff).
 * *out is set whenever the thread has a connection record, even on failure. */
int md_conn(struct mdb *d, struct conn **out, sbx_err *err);

/* True when the call that just failed with `ret` on c should be run again: once on a
 * fresh connection when `readonly` and an established connection was lost, and a few
 * times after a deadlock or a Galera certification failure (the transaction was rolled
 * back whole). `attempt` counts from 0. */
int md_again(struct conn *c, int ret, int readonly, int attempt);

/* Prepares (statement `id`, or `sql` when id < 0), binds np params and executes.
 * On success q holds the statement for md_row / md_affected; always call md_end. */
int md_run(struct conn *c, int id, const char *sql, const struct md_param *p, unsigned np,
	   struct md_q *q, sbx_err *err, const char *what);

/* Fetches the next row into cols (n columns). 1 = a row, 0 = no more rows, <0 error. */
int md_row(struct md_q *q, struct md_col *cols, unsigned n, sbx_err *err, const char *what);

unsigned long long md_affected(const struct md_q *q);

/* Drains and frees the result; closes an ad-hoc statement. Safe on a zeroed q. */
void md_end(struct md_q *q);

/* Runs a cached statement without parameters or results (BEGIN, COMMIT, ...). */
int md_simple(struct conn *c, int id, sbx_err *err);

/* Rolls back the open transaction, if any (best effort). */
void md_rollback(struct conn *c);

/* Fills err for a failure of statement st (or of c->m when st is NULL) while doing
 * `what`; drops the connection when it is unusable. Returns the negated code. */
int md_fail(struct conn *c, MYSQL_STMT *st, sbx_err *err, const char *what);

/* Closes every connection of d (destroy). */
void md_close_all(struct mdb *d);
void md_conn_free(void *conn);

/* schema.c: the newest schema version this build knows, and the migration run at
 * create on the main thread's connection. */
int schema_latest(void);
int schema_migrate(struct conn *c, sbx_err *err);

#endif
