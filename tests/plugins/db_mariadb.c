/*
 * Tests specific to the db module `mariadb` (the shared behaviour is in db_conformance.c,
 * which db_mariadb.sh runs first): concurrent and locked migrations, a newer schema,
 * password_file, strict config, an 8 MiB output, and losing the server (killed, paused)
 * and getting it back without re-creating the instance. TAP.
 *
 * Run by db_mariadb.sh, which starts a private mariadbd and sets:
 *   SBX_DB_MODULE      path of db_mariadb.la
 *   SBX_DB_CONFIG      JSON config reaching database SBX_MARIADB_PREFIX "main"
 *   SBX_MARIADB_PREFIX database name prefix the test user may create (e.g. "sbxt_")
 *   SBX_MARIADB_ADMIN  the server's unix socket, where root has no password
 *   SBX_MARIADB_STOP, SBX_MARIADB_START, SBX_MARIADB_PAUSE, SBX_MARIADB_RESUME
 *                      shell commands acting on the server by PID
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <mysql.h>

#include <sandbox/db.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

#define BIG8 (8u << 20)

static const struct sbx_core_api *core;
static const struct sbx_db_plugin *db;
static json_t *base;
static const char *prefix;
static char run[16];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The base config with `db` as database and then the given overrides ("key", json_t*
 * stolen, ..., NULL; a NULL value deletes the key). */
static json_t *config_with(const char *dbname, ...)
{
	json_t *cfg = json_deep_copy(base);
	char name[128];
	va_list ap;
	const char *k;

	if (dbname) {
		snprintf(name, sizeof name, "%s%s", prefix, dbname);
		json_object_set_new(cfg, "database", json_string(name));
	}
	va_start(ap, dbname);
	while ((k = va_arg(ap, const char *))) {
		json_t *v = va_arg(ap, json_t *);

		if (v)
			json_object_set_new(cfg, k, v);
		else
			json_object_del(cfg, k);
	}
	va_end(ap);
	return cfg;
}

static int create_with(json_t *cfg, void **inst, sbx_err *err)
{
	int rc;

	*inst = NULL;
	sbx_err_clear(err);
	rc = db->life.create(core, "mariadb-test", cfg, inst, err);
	json_decref(cfg);
	return rc;
}

/* ---- admin connection (root over the unix socket) ------------------------------ */

static MYSQL *admin;

static int admin_open(void)
{
	admin = mysql_init(NULL);
	if (!admin || !mysql_real_connect(admin, "localhost", "root", NULL, NULL, 0,
					  getenv("SBX_MARIADB_ADMIN"), 0)) {
		diag("admin connect: %s", admin ? mysql_error(admin) : "mysql_init");
		return -1;
	}
	return 0;
}

/* Runs a statement (test-only text; no untrusted input). */
static int admin_sql(const char *fmt, ...)
{
	char sql[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	if (mysql_query(admin, sql) != 0) {
		diag("admin: %s: %s", sql, mysql_error(admin));
		return -1;
	}
	mysql_free_result(mysql_store_result(admin));
	return 0;
}

static long long admin_int(const char *fmt, ...)
{
	char sql[1024];
	MYSQL_RES *res;
	MYSQL_ROW row;
	long long v = -1;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	if (mysql_query(admin, sql) != 0) {
		diag("admin: %s: %s", sql, mysql_error(admin));
		return -1;
	}
	res = mysql_store_result(admin);
	if (res && (row = mysql_fetch_row(res)) && row[0])
		v = atoll(row[0]);
	mysql_free_result(res);
	return v;
}

static int sh(const char *env)
{
	const char *cmd = getenv(env);
	int rc;

	if (!cmd)
		return -1;
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ---- migrations ---------------------------------------------------------------- */

#define NREPLICAS 3

static void test_concurrent_migrations(void)
{
	pid_t kids[NREPLICAS];
	int go[2], okc = 0, st;
	void *inst = NULL;
	json_t *detail = NULL;
	sbx_err err;

	admin_sql("DROP DATABASE IF EXISTS %smig", prefix);
	admin_sql("CREATE DATABASE %smig", prefix);
	if (pipe(go) != 0)
		return;
	for (int i = 0; i < NREPLICAS; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			char c;
			int rc;

			close(go[1]);
			/* Wait until every replica is forked, then all start at once. */
			if (read(go[0], &c, 1) < 0)
				_exit(3);
			rc = create_with(config_with("mig", NULL), &inst, &err);
			if (rc != 0)
				fprintf(stderr, "replica %d: %s\n", i, err.message);
			/* _exit: no destroy, no COM_QUIT on sockets shared with the parent. */
			_exit(rc == 0 ? 0 : 1);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < NREPLICAS; i++)
		if (waitpid(kids[i], &st, 0) == kids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			okc++;
	ok(okc == NREPLICAS, "%d replicas created at the same time on an empty database all start",
	   NREPLICAS);
	ok(admin_int("SELECT COUNT(*) FROM %smig.schema_version", prefix) == 1 &&
	       admin_int("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
			 "'%smig' AND table_name IN ('sessions','executions','templates','leases')",
			 prefix) == 4,
	   "the schema was migrated once: one schema_version row, every table");
	if (create_with(config_with("mig", NULL), &inst, &err) == 0) {
		ok(db->health(inst, &detail, &err) == 0 &&
		       json_integer_value(json_object_get(detail, "schema_version")) == 1,
		   "a later replica finds the schema current (health reports schema_version 1)");
		json_decref(detail);
		db->life.destroy(inst);
	} else {
		ok(0, "a later replica finds the schema current: %s", err.message);
	}
}

/* Another session holds the migration lock: create waits migrate_timeout_s, then fails
 * UNAVAILABLE; once the lock is free it migrates. */
static void test_migration_lock(void)
{
	MYSQL *holder = mysql_init(NULL);
	char lockq[160], unlockq[160];
	void *inst = NULL;
	sbx_err err;
	int64_t t0;
	int rc;

	snprintf(lockq, sizeof lockq, "SELECT GET_LOCK('sbxd_migrate:%slock', 10)", prefix);
	snprintf(unlockq, sizeof unlockq, "SELECT RELEASE_LOCK('sbxd_migrate:%slock')", prefix);
	admin_sql("DROP DATABASE IF EXISTS %slock", prefix);
	admin_sql("CREATE DATABASE %slock", prefix);
	if (!holder ||
	    !mysql_real_connect(holder, "localhost", "root", NULL, NULL, 0,
				getenv("SBX_MARIADB_ADMIN"), 0) ||
	    mysql_query(holder, lockq) != 0) {
		ok(0, "hold the migration lock from another session");
		goto out;
	}
	mysql_free_result(mysql_store_result(holder));
	t0 = now_ms();
	rc = create_with(config_with("lock", "migrate_timeout_s", json_integer(1), NULL), &inst,
			 &err);
	ok(rc == -SBX_E_UNAVAILABLE && strstr(err.message, "migration lock") &&
	       now_ms() - t0 >= 900 && now_ms() - t0 < 5000,
	   "while another replica holds the migration lock, create waits migrate_timeout_s and "
	   "fails UNAVAILABLE (%lld ms: %s)",
	   (long long)(now_ms() - t0), err.message);
	if (rc == 0)
		db->life.destroy(inst);
	ok(admin_int("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
		     "'%slock'",
		     prefix) == 0,
	   "nothing was migrated without the lock");
	mysql_query(holder, unlockq);
	mysql_free_result(mysql_store_result(holder));
	rc = create_with(config_with("lock", NULL), &inst, &err);
	ok(rc == 0, "once the lock is released, create migrates (%s)", err.message);
	if (rc == 0)
		db->life.destroy(inst);
out:
	if (holder)
		mysql_close(holder);
}

static void test_newer_schema(void)
{
	void *inst = NULL;
	sbx_err err;
	int rc;

	admin_sql("DROP DATABASE IF EXISTS %snewer", prefix);
	admin_sql("CREATE DATABASE %snewer", prefix);
	admin_sql("CREATE TABLE %snewer.schema_version (version INT NOT NULL PRIMARY KEY,"
		  " applied_at BIGINT NOT NULL)",
		  prefix);
	admin_sql("INSERT INTO %snewer.schema_version VALUES (1, 0), (99, 0)", prefix);
	rc = create_with(config_with("newer", NULL), &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "newer sbxd") && strstr(err.message, "99"),
	   "a database with a newer schema is refused with a clear message (%s)", err.message);
	if (rc == 0)
		db->life.destroy(inst);
}

/* ---- config -------------------------------------------------------------------- */

static void test_config(void)
{
	const char *pwfile = getenv("SBX_MARIADB_PWFILE");
	char badpw[4096];
	void *inst = NULL;
	sbx_err err;
	FILE *f;
	int rc;

	rc = create_with(config_with("main", "colour", json_string("red"), NULL), &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "'colour'") && !inst,
	   "an unknown config key is SBX_E_INVALID naming it (%s)", err.message);
	rc = create_with(config_with("main", "port", json_string("3306"), NULL), &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "'port'"),
	   "a config value of the wrong type is SBX_E_INVALID naming the key (%s)", err.message);
	rc = create_with(config_with("main", "read_timeout_s", json_integer(0), NULL), &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "read_timeout_s"),
	   "a zero read timeout is refused (%s)", err.message);
	rc = create_with(config_with("main", "password", json_string("x"), NULL), &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "not both"),
	   "password and password_file together are refused (%s)", err.message);
	rc = create_with(config_with("main", "password_file", json_string("/nonexistent/pw"), NULL),
			 &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "/nonexistent/pw"),
	   "an unreadable password_file is SBX_E_INVALID naming the file (%s)", err.message);
	rc = create_with(config_with("main", "tls_cert", json_string("/x.pem"), NULL), &inst, &err);
	ok(rc == -SBX_E_INVALID && strstr(err.message, "tls_key"),
	   "tls_cert without tls_key is refused (%s)", err.message);

	/* The password file is the one db_mariadb.sh wrote: it works (create above used it),
	 * a wrong one is refused without the password appearing anywhere. */
	snprintf(badpw, sizeof badpw, "%s/badpw", fakecore_data_dir());
	f = fopen(badpw, "w");
	if (f) {
		fputs("Wr0ng-Secret-7731\n", f);
		fclose(f);
	}
	rc = create_with(config_with("main", "password_file", json_string(badpw), NULL), &inst,
			 &err);
	ok(rc == -SBX_E_UNAVAILABLE && strstr(err.message, "Access denied") &&
	       !strstr(err.message, "Wr0ng-Secret"),
	   "a wrong password in password_file fails create without showing it (%s)", err.message);
	if (pwfile) {
		char pw[256] = "";

		f = fopen(pwfile, "r");
		if (f && fgets(pw, sizeof pw, f))
			pw[strcspn(pw, "\r\n")] = '\0';
		if (f)
			fclose(f);
		rc = create_with(
		    config_with("main", "password_file", NULL, "password", json_string(pw), NULL),
		    &inst, &err);
		ok(rc == 0, "an inline password works too (discouraged) (%s)", err.message);
		if (rc == 0)
			db->life.destroy(inst);
	}
	rc = create_with(config_with("main", NULL), &inst, &err);
	ok(rc == 0, "password_file in the config authenticates (%s)", err.message);
	if (rc == 0)
		db->life.destroy(inst);
}

/* ---- large output -------------------------------------------------------------- */

static void test_big_output(void *inst)
{
	char *out = malloc(BIG8 + 1), id[64], sid[64];
	json_t *e, *got = NULL, *ch;
	sbx_err err;
	int rc;
	int64_t t0;

	/* Every byte class JSON escapes or passes: newlines, quotes, backslashes, UTF-8. */
	for (size_t i = 0; i < BIG8; i++)
		out[i] = "abc\n\"\\\t xyz01234"[i % 16];
	memcpy(out + 100, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
	out[BIG8] = '\0';
	snprintf(id, sizeof id, "%s-big8", run);
	snprintf(sid, sizeof sid, "%s-s", run);
	e = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "id", id, "session_id", sid, "status",
		      "completed", "created_at", (json_int_t)core->now_ms(), "stdout", out,
		      "return_value", "ok");
	t0 = now_ms();
	rc = db->execution_insert(inst, e, &err);
	ok(rc == 0, "an execution with 8 MiB stdout is stored (%lld ms) %s",
	   (long long)(now_ms() - t0), rc ? err.message : "");
	json_decref(e);
	t0 = now_ms();
	rc = db->execution_get(inst, id, &got, &err);
	ok(rc == 0 && json_string_length(json_object_get(got, "stdout")) == BIG8 &&
	       memcmp(json_string_value(json_object_get(got, "stdout")), out, BIG8) == 0,
	   "8 MiB stdout comes back byte for byte (%lld ms) %s", (long long)(now_ms() - t0),
	   rc ? err.message : "");
	json_decref(got);
	got = NULL;
	out[0] = 'Z';
	ch = json_pack("{s:s}", "stderr", out);
	rc = db->execution_update(inst, id, ch, "completed", &got, &err);
	json_decref(ch);
	json_decref(got);
	got = NULL;
	rc = rc ? rc : db->execution_get(inst, id, &got, &err);
	ok(rc == 0 && json_string_length(json_object_get(got, "stderr")) == BIG8 &&
	       json_string_length(json_object_get(got, "stdout")) == BIG8 &&
	       json_string_value(json_object_get(got, "stderr"))[0] == 'Z',
	   "an update adding 8 MiB stderr keeps both outputs whole (16 MiB record)");
	json_decref(got);
	free(out);

	/* Past the server's max_allowed_packet (64M in db_mariadb.sh): a clear error before
	 * sending, and the connection is unharmed. */
	out = malloc((65u << 20) + 1);
	memset(out, 'q', 65u << 20);
	out[65u << 20] = '\0';
	snprintf(id, sizeof id, "%s-toobig", run);
	e = json_pack("{s:s, s:s, s:s}", "id", id, "session_id", sid, "stdout", out);
	free(out);
	sbx_err_clear(&err);
	rc = db->execution_insert(inst, e, &err);
	json_decref(e);
	ok(rc == -SBX_E_TOOLARGE && strstr(err.message, "max_allowed_packet"),
	   "a record above the server's max_allowed_packet is SBX_E_TOOLARGE naming the setting "
	   "(%s)",
	   err.message);
	snprintf(id, sizeof id, "%s-big8", run);
	got = NULL;
	ok(db->execution_get(inst, id, &got, &err) == 0, "and the connection still works");
	json_decref(got);
}

/* ---- losing the server --------------------------------------------------------- */

struct probe {
	void *inst;
	int rc;
	char msg[SBX_ERR_MSG_MAX];
	int64_t ms;
};

static void *probe_thread(void *arg)
{
	struct probe *p = arg;
	json_t *got = NULL;
	sbx_err err;
	int64_t t0 = now_ms();

	db->life.thread_init(p->inst);
	sbx_err_clear(&err);
	p->rc = db->session_get(p->inst, "no-such-session", &got, &err);
	p->ms = now_ms() - t0;
	snprintf(p->msg, sizeof p->msg, "%s", err.message);
	json_decref(got);
	db->life.thread_fini(p->inst);
	return NULL;
}

static json_t *session(const char *name)
{
	char id[64];

	snprintf(id, sizeof id, "%s-%s", run, name);
	return json_pack("{s:s, s:s, s:s, s:I}", "id", id, "tenant", run, "status", "creating",
			 "created_at", (json_int_t)core->now_ms());
}

static void test_server_down(void *inst, const char *server)
{
	json_t *s, *got = NULL, *detail = NULL;
	sbx_err err;
	int rc, fails = 0, slow = 0, named = 0;
	int64_t t0, t, worst = 0;
	char id[64];
	struct probe pr = {.inst = inst};
	pthread_t th;

	s = session("before");
	ok(db->session_insert(inst, s, &err) == 0, "a session is written while the server is up");
	json_decref(s);

	ok(sh("SBX_MARIADB_STOP") == 0, "mariadbd is killed (SIGKILL, by PID)");
	for (int i = 0; i < 20; i++) {
		t0 = now_ms();
		sbx_err_clear(&err);
		rc = db->session_get(inst, "anything", &got, &err);
		t = now_ms() - t0;
		fails += rc == -SBX_E_UNAVAILABLE;
		named += strstr(err.message, server) != NULL;
		worst = t > worst ? t : worst;
		slow += t > 3000;
		if (i == 0)
			diag("first call after the kill: %d in %lld ms: %s", rc, (long long)t,
			     err.message);
		usleep(50 * 1000);
	}
	ok(fails == 20 && slow == 0,
	   "while the server is down every get is SBX_E_UNAVAILABLE within the timeouts (worst "
	   "%lld ms)",
	   (long long)worst);
	ok(named == 20, "the message names the server (%s)", server);
	s = session("during");
	t0 = now_ms();
	rc = db->session_insert(inst, s, &err);
	ok(rc == -SBX_E_UNAVAILABLE && now_ms() - t0 < 3000,
	   "an insert while down is SBX_E_UNAVAILABLE (%lld ms)", (long long)(now_ms() - t0));
	json_decref(s);
	snprintf(id, sizeof id, "%s-before", run);
	s = json_pack("{s:s}", "status", "running");
	ok(db->session_update(inst, id, s, "creating", NULL, &err) == -SBX_E_UNAVAILABLE &&
	       db->lease_acquire(inst, id, "me", 1000, &err) == -SBX_E_UNAVAILABLE &&
	       db->health(inst, &detail, &err) == -SBX_E_UNAVAILABLE && !detail,
	   "updates, leases and health are SBX_E_UNAVAILABLE too");
	json_decref(s);
	pthread_create(&th, NULL, probe_thread, &pr);
	pthread_join(th, NULL);
	ok(pr.rc == -SBX_E_UNAVAILABLE && pr.ms < 3000,
	   "a new worker thread (thread_init while down) gets SBX_E_UNAVAILABLE in %lld ms",
	   (long long)pr.ms);

	ok(sh("SBX_MARIADB_START") == 0, "mariadbd is restarted on the same data directory");
	t0 = now_ms();
	do {
		json_decref(got);
		got = NULL;
		snprintf(id, sizeof id, "%s-before", run);
		rc = db->session_get(inst, id, &got, &err);
		if (rc != 0)
			usleep(100 * 1000);
	} while (rc != 0 && now_ms() - t0 < 10000);
	ok(rc == 0 && got, "the same instance works again by itself after %lld ms (backoff <= 5 s)",
	   (long long)(now_ms() - t0));
	json_decref(got);
	got = NULL;
	snprintf(id, sizeof id, "%s-during", run);
	ok(db->session_get(inst, id, &got, &err) == -SBX_E_NOTFOUND,
	   "the insert that failed while down left nothing behind");
	s = session("after");
	rc = db->session_insert(inst, s, &err);
	json_decref(s);
	snprintf(id, sizeof id, "%s-before", run);
	s = json_pack("{s:s}", "status", "running");
	sbx_err_clear(&err);
	rc = rc ? rc : db->session_update(inst, id, s, "creating", NULL, &err);
	ok(rc == 0, "writes and compare-and-set work again %s", err.message);
	json_decref(s);
	ok(db->health(inst, &detail, &err) == 0 &&
	       strstr(json_string_value(json_object_get(detail, "server_version")), "MariaDB"),
	   "health reports the server version again");
	json_decref(detail);
	pr.rc = 1;
	pthread_create(&th, NULL, probe_thread, &pr);
	pthread_join(th, NULL);
	ok(pr.rc == -SBX_E_NOTFOUND, "a new worker thread connects normally (%s)", pr.msg);
}

/* A hung server (SIGSTOP): calls end within connect/read timeouts, not hang. */
static void test_server_paused(void)
{
	void *inst = NULL;
	json_t *got = NULL;
	sbx_err err;
	int rc;
	int64_t t0, t;

	rc = create_with(config_with("main", "connect_timeout_s", json_integer(1), "read_timeout_s",
				     json_integer(1), "write_timeout_s", json_integer(1), NULL),
			 &inst, &err);
	if (rc != 0) {
		ok(0, "create with 1 s timeouts: %s", err.message);
		return;
	}
	ok(sh("SBX_MARIADB_PAUSE") == 0, "mariadbd is paused (SIGSTOP)");
	t0 = now_ms();
	rc = db->session_get(inst, "x", &got, &err);
	t = now_ms() - t0;
	ok(rc == -SBX_E_UNAVAILABLE && t < 4500,
	   "a call to a hung server is SBX_E_UNAVAILABLE after the timeouts (%lld ms: %s)",
	   (long long)t, err.message);
	t0 = now_ms();
	rc = db->session_get(inst, "x", &got, &err);
	t = now_ms() - t0;
	ok(rc == -SBX_E_UNAVAILABLE && t < 100,
	   "the next call fails fast while the reconnect backs off (%lld ms)", (long long)t);
	ok(sh("SBX_MARIADB_RESUME") == 0, "mariadbd is resumed (SIGCONT)");
	t0 = now_ms();
	do {
		rc = db->session_get(inst, "x", &got, &err);
		if (rc != -SBX_E_NOTFOUND)
			usleep(100 * 1000);
	} while (rc != -SBX_E_NOTFOUND && now_ms() - t0 < 10000);
	ok(rc == -SBX_E_NOTFOUND, "and recovers after it resumes (%lld ms)",
	   (long long)(now_ms() - t0));
	db->life.destroy(inst);
}

int main(int argc, char **argv)
{
	const char *modpath = argc > 1 ? argv[1] : getenv("SBX_DB_MODULE");
	const char *cfg = argc > 2 ? argv[2] : getenv("SBX_DB_CONFIG");
	struct fakecore_module mod;
	unsigned char rnd[4];
	char errbuf[512], server[300];
	json_error_t jerr;
	void *inst = NULL;
	json_t *detail = NULL;
	sbx_err err;
	int rc;

	prefix = getenv("SBX_MARIADB_PREFIX");
	if (!modpath || !cfg || !prefix || !getenv("SBX_MARIADB_ADMIN")) {
		printf("1..0 # SKIP run me through tests/plugins/db_mariadb.sh\n");
		return 0;
	}
	signal(SIGPIPE, SIG_IGN); /* as sbxd does */
	core = fakecore_api();
	base = json_loads(cfg, 0, &jerr);
	if (!json_is_object(base)) {
		printf("Bail out! config is not a JSON object: %s\n", jerr.text);
		return 1;
	}
	if (fakecore_module_open(modpath, SBX_KIND_DB, sizeof(struct sbx_db_plugin), &mod, errbuf,
				 sizeof errbuf) != 0) {
		printf("Bail out! %s\n", errbuf);
		return 1;
	}
	db = (const struct sbx_db_plugin *)mod.hdr;
	core->random_bytes(rnd, sizeof rnd);
	snprintf(run, sizeof run, "m%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	if (mysql_library_init(0, NULL, NULL) != 0 || admin_open() != 0) {
		printf("Bail out! cannot reach the server as root over its socket\n");
		return 1;
	}

	/* Before any instance exists in this process: the replicas are forked from it. */
	test_concurrent_migrations();
	test_migration_lock();
	test_newer_schema();
	test_config();

	rc = create_with(config_with("main", NULL), &inst, &err);
	ok(rc == 0, "create with password_file over TCP (%s)", err.message);
	if (rc != 0) {
		printf("Bail out! cannot create the main instance\n");
		return 1;
	}
	rc = db->health(inst, &detail, &err);
	snprintf(server, sizeof server, "%s",
		 json_string_value(json_object_get(detail, "server")) ?: "?");
	ok(rc == 0 && strstr(json_string_value(json_object_get(detail, "server_version")) ?: "",
			     "MariaDB"),
	   "health runs a query and reports the server version (%s)",
	   json_string_value(json_object_get(detail, "server_version")) ?: err.message);
	json_decref(detail);
	test_big_output(inst);

	/* The admin connection does not survive the restarts below; it is not needed. */
	mysql_close(admin);
	admin = NULL;
	test_server_down(inst, server);
	test_server_paused();

	db->life.destroy(inst);
	json_decref(base);
	fakecore_module_close(&mod);
	fakecore_cleanup();
	mysql_library_end();
	return tap_done();
}
