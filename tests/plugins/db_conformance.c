/*
 * Conformance test for db modules (db.h): every method, its filters, ordering, error
 * codes, compare-and-set under contention, leases and restart survival. TAP output.
 * Usage: db_conformance [module [config-json]] (or $SBX_DB_MODULE, $SBX_DB_CONFIG);
 * defaults to the freshly built db_sqlite.la in a scratch data directory. Ids and tenants
 * carry a random run prefix, so it can run against a shared database (MariaDB).
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <sandbox/db.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

#define NRACERS 8
#define BIG     (2u << 20)

static const struct sbx_core_api *core;
static const struct sbx_db_plugin *db;
static json_t *config;
static char run[24];

/* "<run>-<name>" in one of a ring of static buffers (test-only convenience). */
static const char *ID(const char *name)
{
	static char ring[64][96];
	static int next;
	char *b = ring[next++ % 64];

	snprintf(b, sizeof ring[0], "%s-%s", run, name);
	return b;
}

static void *open_instance(void)
{
	void *inst = NULL;
	sbx_err err;

	sbx_err_clear(&err);
	if (db->life.create(core, "conformance", config, &inst, &err) != 0) {
		diag("create failed: %s", err.message);
		return NULL;
	}
	if (db->life.start && db->life.start(inst, &err) != 0) {
		diag("start failed: %s", err.message);
		db->life.destroy(inst);
		return NULL;
	}
	return inst;
}

static void close_instance(void *inst)
{
	if (!inst)
		return;
	if (db->life.stop)
		db->life.stop(inst);
	db->life.destroy(inst);
}

/* True when page.items (or an array) holds exactly the given ids, in order. */
static int ids_are(const json_t *page, int n, ...)
{
	const json_t *items = json_is_array(page) ? page : json_object_get(page, "items");
	va_list ap;
	int good = json_is_array(items) && json_array_size(items) == (size_t)n;

	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *want = va_arg(ap, const char *);
		const char *got =
		    json_string_value(json_object_get(json_array_get(items, i), "id"));

		if (!got || strcmp(got, want) != 0)
			good = 0;
	}
	va_end(ap);
	if (!good) {
		char *s = json_dumps(items, JSON_COMPACT);

		diag("got items: %.400s", s ? s : "(null)");
		free(s);
	}
	return good;
}

static json_int_t total_of(const json_t *page)
{
	return json_integer_value(json_object_get(page, "total"));
}

static int contains_id(const json_t *arr, const char *id)
{
	size_t i;
	json_t *v;

	json_array_foreach (arr, i, v) {
		const char *got = json_string_value(json_object_get(v, "id"));

		if (got && strcmp(got, id) == 0)
			return 1;
	}
	return 0;
}

/* Runs session_list with a query built from fmt (json_pack); returns the page or NULL. */
static json_t *slist(void *inst, int *rc, const char *fmt, ...)
{
	json_t *q, *page = NULL;
	va_list ap;
	sbx_err err;

	va_start(ap, fmt);
	q = json_vpack_ex(NULL, 0, fmt, ap);
	va_end(ap);
	*rc = db->session_list(inst, q, &page, &err);
	if (*rc != 0)
		diag("session_list: %d %s", *rc, err.message);
	json_decref(q);
	return page;
}

static json_t *xlist(void *inst, int *rc, const char *fmt, ...)
{
	json_t *q, *page = NULL;
	va_list ap;
	sbx_err err;

	va_start(ap, fmt);
	q = json_vpack_ex(NULL, 0, fmt, ap);
	va_end(ap);
	*rc = db->execution_list(inst, q, &page, &err);
	if (*rc != 0)
		diag("execution_list: %d %s", *rc, err.message);
	json_decref(q);
	return page;
}

static json_int_t version_of(const json_t *rec)
{
	return json_integer_value(json_object_get(rec, "version"));
}

static int64_t base;

static void test_sessions(void *inst)
{
	sbx_err err;
	json_t *s, *got = NULL, *page;
	int rc;
	struct {
		const char *id, *tenant, *tmpl, *status, *rt;
		int64_t created, activity;
	} rows[] = {
	    {"s1", "t1", "tA", "running", "r1", 1, 100},
	    {"s2", "t1", "tB", "creating", "r1", 2, -1},
	    {"s3", "t1", "tA", "completed", "r2", 3, 300},
	    {"s4", "t2", "tA", "running", "r2", 4, 50},
	    {"s5", "t1", "tA", "running", "r1", 3, 500},
	};
	int inserted = 0;

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		s = json_pack(
		    "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:n, s:{s:[i,i], s:s}}", "id",
		    ID(rows[i].id), "tenant", ID(rows[i].tenant), "template_id", ID(rows[i].tmpl),
		    "status", rows[i].status, "runtime_instance", ID(rows[i].rt), "created_at",
		    (json_int_t)(base + rows[i].created), "updated_at",
		    (json_int_t)(base + rows[i].created), "last_activity_at",
		    rows[i].activity < 0 ? json_null() : json_integer(base + rows[i].activity),
		    "completed_at", "custom", "nested", 1, 2, "note", "kept verbatim");
		inserted += db->session_insert(inst, s, &err) == 0;
		if (i == 0) {
			rc = db->session_get(inst, ID("s1"), &got, &err);
			ok(rc == 0, "session_get returns an inserted session");
			ok(got && version_of(got) == 1, "an inserted session has version 1");
			if (got)
				json_object_del(got, "version");
			ok(got && json_equal(got, s),
			   "session_get returns every member unchanged, unknown and null ones too");
			json_decref(got);
			got = NULL;
		}
		json_decref(s);
	}
	ok(inserted == 5, "session_insert stores five sessions");

	s = json_pack("{s:s, s:s}", "id", ID("s1"), "status", "creating");
	rc = db->session_insert(inst, s, &err);
	ok(rc == -SBX_E_CONFLICT, "inserting a duplicate session id is SBX_E_CONFLICT");
	json_decref(s);
	rc = db->session_get(inst, ID("missing"), &got, &err);
	ok(rc == -SBX_E_NOTFOUND && got == NULL,
	   "getting a missing session is SBX_E_NOTFOUND and returns nothing");
	s = json_pack("{s:s}", "status", "creating");
	sbx_err_clear(&err);
	rc = db->session_insert(inst, s, &err);
	ok(rc == -SBX_E_INVALID && err.message[0], "a session without id is SBX_E_INVALID");
	json_decref(s);
	s = json_pack("[s]", "x");
	ok(db->session_insert(inst, s, &err) == -SBX_E_INVALID,
	   "a session that is not an object is SBX_E_INVALID");
	json_decref(s);

	/* Lists (scoped to this run by tenant). */
	page = slist(inst, &rc, "{s:s}", "tenant", ID("t1"));
	ok(rc == 0 && total_of(page) == 4, "session_list by tenant counts only that tenant");
	ok(ids_are(page, 4, ID("s3"), ID("s5"), ID("s2"), ID("s1")),
	   "session_list is newest first, ties by id ascending");
	json_decref(page);
	page = slist(inst, &rc, "{s:s, s:s}", "tenant", ID("t1"), "status", "running");
	ok(rc == 0 && total_of(page) == 2 && ids_are(page, 2, ID("s5"), ID("s1")),
	   "session_list filters by status");
	json_decref(page);
	page = slist(inst, &rc, "{s:s, s:[s,s]}", "tenant", ID("t1"), "statuses", "creating",
		     "completed");
	ok(rc == 0 && total_of(page) == 2 && ids_are(page, 2, ID("s3"), ID("s2")),
	   "session_list filters by a set of statuses");
	json_decref(page);
	page = slist(inst, &rc, "{s:s, s:[]}", "tenant", ID("t1"), "statuses");
	ok(rc == 0 && total_of(page) == 0, "an empty statuses set matches nothing");
	json_decref(page);
	page = slist(inst, &rc, "{s:s}", "template_id", ID("tA"));
	ok(rc == 0 && total_of(page) == 4 &&
	       ids_are(page, 4, ID("s4"), ID("s3"), ID("s5"), ID("s1")),
	   "session_list filters by template_id across tenants");
	json_decref(page);
	page = slist(inst, &rc, "{s:s}", "runtime_instance", ID("r2"));
	ok(rc == 0 && total_of(page) == 2 && ids_are(page, 2, ID("s4"), ID("s3")),
	   "session_list filters by runtime_instance");
	json_decref(page);
	page = slist(inst, &rc, "{s:s, s:I}", "tenant", ID("t1"), "last_activity_before",
		     (json_int_t)(base + 200));
	ok(rc == 0 && total_of(page) == 2 && ids_are(page, 2, ID("s2"), ID("s1")),
	   "last_activity_before selects idle sessions; a never-active one counts from "
	   "created_at");
	json_decref(page);
	page = slist(inst, &rc, "{s:s, s:s, s:s, s:s}", "tenant", ID("t1"), "template_id", ID("tA"),
		     "status", "running", "runtime_instance", ID("r1"));
	ok(rc == 0 && total_of(page) == 2 && ids_are(page, 2, ID("s5"), ID("s1")),
	   "session_list combines filters with AND");
	json_decref(page);

	page = slist(inst, &rc, "{s:s, s:i, s:i}", "tenant", ID("t1"), "limit", 2, "offset", 0);
	ok(rc == 0 && total_of(page) == 4 && ids_are(page, 2, ID("s3"), ID("s5")),
	   "session_list page 1 holds `limit` items and the full total");
	json_decref(page);
	page = slist(inst, &rc, "{s:s, s:i, s:i}", "tenant", ID("t1"), "limit", 2, "offset", 2);
	ok(rc == 0 && total_of(page) == 4 && ids_are(page, 2, ID("s2"), ID("s1")),
	   "session_list page 2 continues at offset");
	json_decref(page);
	page = slist(inst, &rc, "{s:s, s:i, s:i}", "tenant", ID("t1"), "limit", 2, "offset", 4);
	ok(rc == 0 && total_of(page) == 4 && ids_are(page, 0),
	   "session_list past the end is empty with the total");
	json_decref(page);
	page = slist(inst, &rc, "{s:i}", "limit", 0);
	ok(rc == -SBX_E_INVALID && !page, "session_list limit 0 is SBX_E_INVALID");
	page = slist(inst, &rc, "{s:i}", "limit", 1001);
	ok(rc == -SBX_E_INVALID && !page, "session_list limit 1001 is SBX_E_INVALID");
	page = slist(inst, &rc, "{s:s}", "colour", "red");
	ok(rc == -SBX_E_INVALID && !page, "session_list with an unknown member is SBX_E_INVALID");

	/* Updates. */
	{
		json_t *ch = json_pack("{s:s, s:n, s:i, s:i, s:s, s:I}", "status", "running",
				       "runtime_instance", "extra", 5, "version", 99, "id",
				       "hijack", "updated_at", (json_int_t)(base + 10));
		json_t *out = NULL;

		rc = db->session_update(inst, ID("s2"), ch, NULL, &out, &err);
		ok(rc == 0 && out && version_of(out) == 2,
		   "session_update increments version and ignores a version in changes");
		ok(out && json_is_null(json_object_get(out, "runtime_instance")) &&
		       json_integer_value(json_object_get(out, "extra")) == 5 &&
		       strcmp(json_string_value(json_object_get(out, "id")), ID("s2")) == 0 &&
		       strcmp(json_string_value(json_object_get(out, "tenant")), ID("t1")) == 0,
		   "session_update merges members, stores null as null, keeps id and the rest");
		json_decref(out);
		out = NULL;
		rc = db->session_get(inst, ID("s2"), &out, &err);
		ok(rc == 0 && version_of(out) == 2 &&
		       strcmp(json_string_value(json_object_get(out, "status")), "running") == 0,
		   "session_get sees the update");
		json_decref(out);
		page = slist(inst, &rc, "{s:s}", "runtime_instance", ID("r1"));
		ok(rc == 0 && ids_are(page, 2, ID("s5"), ID("s1")),
		   "indexed filters follow updated members");
		json_decref(page);
		page = slist(inst, &rc, "{s:s, s:s}", "tenant", ID("t1"), "status", "running");
		ok(rc == 0 && total_of(page) == 3,
		   "a status change moves the session between lists");
		json_decref(page);

		out = NULL;
		rc = db->session_update(inst, ID("s2"), ch, "creating", &out, &err);
		ok(rc == -SBX_E_CONFLICT && !out,
		   "session_update with an unmet expect_status is SBX_E_CONFLICT");
		db->session_get(inst, ID("s2"), &out, &err);
		ok(out && version_of(out) == 2, "a failed compare-and-set changes nothing");
		json_decref(out);
		rc = db->session_update(inst, ID("s2"), ch, "running", NULL, &err);
		ok(rc == 0, "session_update with a met expect_status succeeds (out may be NULL)");
		rc = db->session_update(inst, ID("missing"), ch, NULL, NULL, &err);
		ok(rc == -SBX_E_NOTFOUND, "updating a missing session is SBX_E_NOTFOUND");
		json_decref(ch);
		ch = json_pack("[]");
		rc = db->session_update(inst, ID("s2"), ch, NULL, NULL, &err);
		ok(rc == -SBX_E_INVALID, "session_update with non-object changes is SBX_E_INVALID");
		json_decref(ch);
	}
}

struct racer {
	void *inst;
	int idx;
	int rc;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	json_t *ch = json_pack("{s:s, s:i}", "status", "running", "winner", r->idx);
	sbx_err err;

	/* Half the threads announce themselves, half rely on lazy connections. */
	if (r->idx % 2 == 0 && db->life.thread_init)
		db->life.thread_init(r->inst);
	r->rc = db->session_update(r->inst, ID("race"), ch, "creating", NULL, &err);
	if (r->rc != 0 && r->rc != -SBX_E_CONFLICT)
		diag("racer %d: %d %s", r->idx, r->rc, err.message);
	if (r->idx % 2 == 0 && db->life.thread_fini)
		db->life.thread_fini(r->inst);
	json_decref(ch);
	return NULL;
}

static void test_race(void *inst)
{
	struct racer r[NRACERS];
	pthread_t t[NRACERS];
	json_t *s, *got = NULL;
	sbx_err err;
	int wins = 0, conflicts = 0, winner = -1;

	s = json_pack("{s:s, s:s, s:s, s:I}", "id", ID("race"), "tenant", ID("t3"), "status",
		      "creating", "created_at", (json_int_t)base);
	db->session_insert(inst, s, &err);
	json_decref(s);
	for (int i = 0; i < NRACERS; i++) {
		r[i] = (struct racer){.inst = inst, .idx = i};
		pthread_create(&t[i], NULL, race, &r[i]);
	}
	for (int i = 0; i < NRACERS; i++) {
		pthread_join(t[i], NULL);
		if (r[i].rc == 0) {
			wins++;
			winner = i;
		} else if (r[i].rc == -SBX_E_CONFLICT) {
			conflicts++;
		}
	}
	ok(wins == 1 && conflicts == NRACERS - 1,
	   "of %d threads racing one compare-and-set exactly one wins, the rest get CONFLICT "
	   "(wins=%d conflicts=%d)",
	   NRACERS, wins, conflicts);
	db->session_get(inst, ID("race"), &got, &err);
	ok(got && version_of(got) == 2 &&
	       json_integer_value(json_object_get(got, "winner")) == winner,
	   "the stored record is the winner's, updated once");
	json_decref(got);
}

static char *big_text(char fill)
{
	char *b = malloc(BIG + 1);

	for (size_t i = 0; i < BIG; i++)
		b[i] = i % 64 == 63 ? '\n' : (char)(fill + (char)(i % 23));
	b[BIG] = '\0';
	return b;
}

static void test_executions(void *inst)
{
	const char *st[] = {"completed", "failed", "running", "pending"};
	json_t *e, *got = NULL, *page;
	sbx_err err;
	int rc, n = 0;
	char *out, *errtext;

	for (int i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof name, "e%d", i + 1);
		e = json_pack("{s:s, s:s, s:s, s:s, s:I, s:n, s:s, s:[i]}", "id", ID(name),
			      "session_id", ID("s1"), "tenant", ID("t1"), "status", st[i],
			      "created_at", (json_int_t)(base + i), "completed_at", "code",
			      "print(1)", "return_value", i);
		n += db->execution_insert(inst, e, &err) == 0;
		json_decref(e);
	}
	e = json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", ID("e5"), "session_id", ID("s3"), "tenant",
		      ID("t1"), "status", "completed", "created_at", (json_int_t)(base + 9));
	n += db->execution_insert(inst, e, &err) == 0;
	ok(n == 5, "execution_insert stores five executions");
	ok(db->execution_insert(inst, e, &err) == -SBX_E_CONFLICT,
	   "inserting a duplicate execution id is SBX_E_CONFLICT");
	json_decref(e);
	e = json_pack("{s:s}", "id", ID("e-orphan"));
	ok(db->execution_insert(inst, e, &err) == -SBX_E_INVALID,
	   "an execution without session_id is SBX_E_INVALID");
	json_decref(e);
	ok(db->execution_get(inst, ID("nope"), &got, &err) == -SBX_E_NOTFOUND && !got,
	   "getting a missing execution is SBX_E_NOTFOUND");

	page = xlist(inst, &rc, "{s:s}", "session_id", ID("s1"));
	ok(rc == 0 && total_of(page) == 4 &&
	       ids_are(page, 4, ID("e4"), ID("e3"), ID("e2"), ID("e1")),
	   "execution_list by session is newest first with the session's total");
	json_decref(page);
	page = xlist(inst, &rc, "{s:s, s:i, s:i}", "session_id", ID("s1"), "limit", 1, "offset", 1);
	ok(rc == 0 && total_of(page) == 4 && ids_are(page, 1, ID("e3")),
	   "execution_list paginates with limit and offset");
	json_decref(page);
	page = xlist(inst, &rc, "{s:s, s:[s,s]}", "session_id", ID("s1"), "statuses", "pending",
		     "running");
	ok(rc == 0 && total_of(page) == 2 && ids_are(page, 2, ID("e4"), ID("e3")),
	   "execution_list filters by a set of statuses");
	json_decref(page);
	page = xlist(inst, &rc, "{s:s}", "tenant", ID("t1"));
	ok(rc == 0 && total_of(page) == 5 &&
	       ids_are(page, 5, ID("e5"), ID("e4"), ID("e3"), ID("e2"), ID("e1")),
	   "execution_list filters by tenant across sessions");
	json_decref(page);
	page = xlist(inst, &rc, "{s:s}", "status", "pending");
	ok(rc == -SBX_E_INVALID, "execution_list with a member db.h does not define is INVALID");
	json_decref(page);

	{
		json_t *ch = json_pack("{s:s}", "status", "running");

		rc = db->execution_update(inst, ID("e4"), ch, "pending", NULL, &err);
		ok(rc == 0, "execution_update compare-and-set from pending succeeds");
		rc = db->execution_update(inst, ID("e4"), ch, "pending", NULL, &err);
		ok(rc == -SBX_E_CONFLICT,
		   "a second execution_update expecting pending is SBX_E_CONFLICT");
		json_decref(ch);
	}

	/* Large outputs, whole. */
	out = big_text('A');
	errtext = big_text('a');
	e = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "id", ID("big"), "session_id",
		      ID("s3"), "tenant", ID("t1"), "status", "completed", "created_at",
		      (json_int_t)(base + 20), "stdout", out, "stderr", errtext);
	rc = db->execution_insert(inst, e, &err);
	ok(rc == 0, "an execution with 2 MiB stdout and stderr is stored");
	json_decref(e);
	got = NULL;
	db->execution_get(inst, ID("big"), &got, &err);
	ok(got && json_string_length(json_object_get(got, "stdout")) == BIG &&
	       memcmp(json_string_value(json_object_get(got, "stdout")), out, BIG) == 0 &&
	       memcmp(json_string_value(json_object_get(got, "stderr")), errtext, BIG) == 0,
	   "2 MiB stdout and stderr come back byte for byte");
	json_decref(got);
	{
		json_t *ch = json_pack("{s:s}", "stdout", errtext);

		got = NULL;
		rc = db->execution_update(inst, ID("big"), ch, NULL, &got, &err);
		ok(rc == 0 && got &&
		       strcmp(json_string_value(json_object_get(got, "stdout")), errtext) == 0,
		   "execution_update replaces a 2 MiB stdout whole");
		json_decref(got);
		json_decref(ch);
	}
	free(out);
	free(errtext);

	/* Cascade. */
	rc = db->session_delete(inst, ID("s1"), &err);
	ok(rc == 0, "session_delete removes a session");
	got = NULL;
	ok(db->session_get(inst, ID("s1"), &got, &err) == -SBX_E_NOTFOUND,
	   "a deleted session is gone");
	rc = db->execution_get(inst, ID("e2"), &got, &err);
	page = xlist(inst, &n, "{s:s}", "session_id", ID("s1"));
	ok(rc == -SBX_E_NOTFOUND && n == 0 && total_of(page) == 0,
	   "session_delete removes the session's executions");
	json_decref(page);
	rc = db->execution_get(inst, ID("e5"), &got, &err);
	ok(rc == 0, "session_delete leaves other sessions' executions");
	json_decref(got);
	ok(db->session_delete(inst, ID("s1"), &err) == -SBX_E_NOTFOUND,
	   "deleting a missing session is SBX_E_NOTFOUND");
}

static void test_templates(void *inst)
{
	json_t *t, *items = NULL, *got = NULL, *q;
	sbx_err err;
	int n = 0, rc;

	t = json_pack("{s:s, s:n, s:s, s:s}", "id", ID("tpl-g1"), "tenant", "name", "global one",
		      "image_url", "img:1");
	n += db->template_insert(inst, t, &err) == 0;
	ok(db->template_insert(inst, t, &err) == -SBX_E_CONFLICT,
	   "inserting a duplicate template id is SBX_E_CONFLICT");
	json_decref(t);
	t = json_pack("{s:s, s:s}", "id", ID("tpl-g2"), "image_url", "img:2");
	n += db->template_insert(inst, t, &err) == 0;
	json_decref(t);
	t = json_pack("{s:s, s:s, s:s}", "id", ID("tpl-a1"), "tenant", ID("t1"), "image_url",
		      "img:3");
	n += db->template_insert(inst, t, &err) == 0;
	json_decref(t);
	t = json_pack("{s:s, s:s, s:s}", "id", ID("tpl-b1"), "tenant", ID("t2"), "image_url",
		      "img:4");
	n += db->template_insert(inst, t, &err) == 0;
	json_decref(t);
	ok(n == 4, "template_insert stores global and tenant templates");

	rc = db->template_get(inst, ID("tpl-g1"), &got, &err);
	ok(rc == 0 && got && json_is_null(json_object_get(got, "tenant")) && version_of(got) == 1 &&
	       strcmp(json_string_value(json_object_get(got, "name")), "global one") == 0,
	   "template_get returns the template with version 1");
	json_decref(got);
	got = NULL;
	ok(db->template_get(inst, ID("tpl-none"), &got, &err) == -SBX_E_NOTFOUND,
	   "getting a missing template is SBX_E_NOTFOUND");

	q = json_pack("{s:s}", "tenant", ID("t1"));
	rc = db->template_list(inst, q, &items, &err);
	ok(rc == 0 && contains_id(items, ID("tpl-a1")) && contains_id(items, ID("tpl-g1")) &&
	       contains_id(items, ID("tpl-g2")) && !contains_id(items, ID("tpl-b1")),
	   "template_list for a tenant returns its templates and the global ones only");
	{
		/* Order by id: our ids a1 < b1 < g1 < g2 appear in that relative order. */
		int pos[3] = {-1, -1, -1}, k = 0;
		size_t i;
		json_t *v;

		json_array_foreach (items, i, v) {
			const char *id = json_string_value(json_object_get(v, "id"));

			if (k < 3 && id && strncmp(id, run, strlen(run)) == 0)
				pos[k++] = (int)i;
			if (i > 0 && strcmp(id, json_string_value(json_object_get(
						    json_array_get(items, i - 1), "id"))) < 0)
				pos[0] = -2;
		}
		ok(pos[0] >= 0 && pos[0] < pos[1] && pos[1] < pos[2],
		   "template_list is ordered by id");
	}
	json_decref(items);
	json_decref(q);
	items = NULL;
	rc = db->template_list(inst, NULL, &items, &err);
	ok(rc == 0 && contains_id(items, ID("tpl-b1")) && contains_id(items, ID("tpl-a1")),
	   "template_list without a tenant returns all templates");
	json_decref(items);

	q = json_pack("{s:s, s:n}", "name", "renamed", "image_url");
	got = NULL;
	rc = db->template_update(inst, ID("tpl-a1"), q, &got, &err);
	ok(rc == 0 && got && version_of(got) == 2 &&
	       strcmp(json_string_value(json_object_get(got, "name")), "renamed") == 0 &&
	       json_is_null(json_object_get(got, "image_url")),
	   "template_update merges changes and increments version");
	json_decref(got);
	ok(db->template_update(inst, ID("tpl-none"), q, NULL, &err) == -SBX_E_NOTFOUND,
	   "updating a missing template is SBX_E_NOTFOUND");
	json_decref(q);
	ok(db->template_delete(inst, ID("tpl-b1"), &err) == 0,
	   "template_delete removes a template");
	got = NULL;
	ok(db->template_get(inst, ID("tpl-b1"), &got, &err) == -SBX_E_NOTFOUND,
	   "a deleted template is gone");
	ok(db->template_delete(inst, ID("tpl-b1"), &err) == -SBX_E_NOTFOUND,
	   "deleting a missing template is SBX_E_NOTFOUND");
}

static void test_leases(void *inst)
{
	const char *L = ID("lease");
	const char *L2 = ID("lease-short");
	sbx_err err;

	ok(db->lease_acquire(inst, L, "A", 60000, &err) == 0, "a free lease is acquired");
	ok(db->lease_acquire(inst, L, "A", 60000, &err) == 0, "the holder renews its lease");
	sbx_err_clear(&err);
	ok(db->lease_acquire(inst, L, "B", 60000, &err) == -SBX_E_CONFLICT && err.message[0],
	   "another holder gets SBX_E_CONFLICT while the lease is unexpired");
	ok(db->lease_release(inst, L, "B", &err) == 0, "release by a non-holder returns 0");
	ok(db->lease_acquire(inst, L, "B", 60000, &err) == -SBX_E_CONFLICT,
	   "release by a non-holder does not free the lease");
	ok(db->lease_release(inst, L, "A", &err) == 0, "the holder releases its lease");
	ok(db->lease_acquire(inst, L, "B", 60000, &err) == 0, "a released lease is free again");

	ok(db->lease_acquire(inst, L2, "A", 150, &err) == 0, "a short lease is acquired");
	ok(db->lease_acquire(inst, L2, "B", 150, &err) == -SBX_E_CONFLICT,
	   "a short lease blocks others before it expires");
	usleep(400 * 1000);
	ok(db->lease_acquire(inst, L2, "B", 60000, &err) == 0,
	   "another holder takes over an expired lease");
	ok(db->lease_acquire(inst, L2, "A", 60000, &err) == -SBX_E_CONFLICT,
	   "the previous holder lost the lease it let expire");
	ok(db->lease_acquire(inst, L2, "A", 0, &err) == -SBX_E_INVALID,
	   "a non-positive ttl is SBX_E_INVALID");
}

static void test_restart(void **instp)
{
	json_t *got = NULL;
	sbx_err err;

	close_instance(*instp);
	*instp = open_instance();
	ok(*instp != NULL, "a new instance opens the same database after destroy");
	if (!*instp)
		return;
	ok(db->session_get(*instp, ID("s3"), &got, &err) == 0 && got &&
	       strcmp(json_string_value(json_object_get(got, "template_id")), ID("tA")) == 0,
	   "sessions survive a restart");
	json_decref(got);
	got = NULL;
	ok(db->execution_get(*instp, ID("big"), &got, &err) == 0 && got &&
	       json_string_length(json_object_get(got, "stdout")) == BIG && version_of(got) == 2,
	   "executions (2 MiB output) survive a restart");
	json_decref(got);
	got = NULL;
	ok(db->template_get(*instp, ID("tpl-a1"), &got, &err) == 0 && version_of(got) == 2,
	   "templates survive a restart");
	json_decref(got);
	ok(db->lease_acquire(*instp, ID("lease"), "A", 60000, &err) == -SBX_E_CONFLICT,
	   "leases survive a restart");
}

static void test_config(void)
{
	json_t *bad = json_deep_copy(config);
	void *inst = NULL;
	sbx_err err;
	int rc;

	json_object_set_new(bad, "no_such_key", json_integer(1));
	sbx_err_clear(&err);
	rc = db->life.create(core, "conformance", bad, &inst, &err);
	ok(rc == -SBX_E_INVALID && !inst && strstr(err.message, "no_such_key"),
	   "an unknown config key is SBX_E_INVALID and the message names it (%s)", err.message);
	if (rc == 0)
		db->life.destroy(inst);
	json_decref(bad);
}

int main(int argc, char **argv)
{
	char defmod[4096], errbuf[512];
	const char *modpath = argc > 1 ? argv[1] : getenv("SBX_DB_MODULE");
	const char *cfg = argc > 2 ? argv[2] : getenv("SBX_DB_CONFIG");
	struct fakecore_module mod;
	unsigned char rnd[6];
	json_error_t jerr;
	void *inst;
	sbx_err err;
	json_t *detail = NULL;

	core = fakecore_api();
	if (!modpath) {
		const char *tb = getenv("top_builddir");

		snprintf(defmod, sizeof defmod, "%s/plugins/db/sqlite/db_sqlite.la", tb ? tb : ".");
		modpath = defmod;
	}
	config = json_loads(cfg ? cfg : "{}", 0, &jerr);
	if (!json_is_object(config)) {
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
	snprintf(run, sizeof run, "c%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
		 rnd[4], rnd[5]);
	base = core->now_ms();
	diag("module %s (%s %s), run %s", modpath, db->hdr.name, db->hdr.version, run);

	inst = open_instance();
	ok(inst != NULL, "create succeeds with the given config");
	if (!inst) {
		printf("Bail out! cannot create an instance\n");
		return 1;
	}
	if (db->health) {
		int rc = db->health(inst, &detail, &err);

		ok(rc == 0, "health answers with a real query");
		json_decref(detail);
	}
	test_sessions(inst);
	test_race(inst);
	test_executions(inst);
	test_templates(inst);
	test_leases(inst);
	test_restart(&inst);
	test_config();
	close_instance(inst);
	json_decref(config);
	fakecore_module_close(&mod);
	fakecore_cleanup();
	return tap_done();
}
