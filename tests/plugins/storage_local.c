/*
 * Tests of the storage module `local` (storage.h) through the built module file: object
 * round trips, listing order and pages, deletes, key rules, symbolic links, streaming of a
 * 50 MiB object in bounded memory and atomic replacement under concurrent puts. TAP.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <sandbox/storage.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

static const struct sbx_storage_plugin *sp;
static void *inst;
static char root[4200];

/* ---- readers and writers --------------------------------------------------------- */

struct membuf {
	const char *data;
	size_t len, off;
	size_t chunk; /* max bytes per read call */
};

static long mem_read(void *ctx, void *buf, size_t cap)
{
	struct membuf *m = ctx;
	size_t n = m->len - m->off;

	if (n > cap)
		n = cap;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->data + m->off, n);
	m->off += n;
	return (long)n;
}

struct collect {
	char *buf;
	size_t len, cap;
};

static int collect_write(void *ctx, const void *data, size_t len)
{
	struct collect *c = ctx;

	if (c->len + len > c->cap) {
		size_t ncap = (c->len + len) * 2;
		char *nb = realloc(c->buf, ncap);

		if (!nb)
			return -1;
		c->buf = nb;
		c->cap = ncap;
	}
	memcpy(c->buf + c->len, data, len);
	c->len += len;
	return 0;
}

static int fail_write(void *ctx, const void *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return -1;
}

static int put_str(const char *key, const char *s, const char *ct)
{
	struct membuf m = {.data = s, .len = strlen(s)};
	sbx_err err;
	int rc = sp->put(inst, key, mem_read, &m, (long long)m.len, ct, &err);

	if (rc != 0)
		diag("put %s: %d %s", key, rc, err.message);
	return rc;
}

/* Object content as a malloc'd NUL-terminated string, or NULL. */
static char *get_str(const char *key, int *rc)
{
	struct collect c = {0};
	sbx_err err;

	*rc = sp->get(inst, key, collect_write, &c, &err);
	if (*rc != 0) {
		free(c.buf);
		return NULL;
	}
	collect_write(&c, "", 1);
	return c.buf;
}

/* Keys of a list page, joined with spaces, into out. */
static void page_keys(const json_t *page, char *out, size_t cap)
{
	size_t i;
	json_t *m;

	out[0] = '\0';
	json_array_foreach (json_object_get(page, "items"), i, m) {
		if (i)
			strncat(out, " ", cap - strlen(out) - 1);
		strncat(out, json_string_value(json_object_get(m, "key")), cap - strlen(out) - 1);
	}
}

static int list_is(const char *prefix, const char *cursor, int limit, const char *want,
		   const char *want_next)
{
	json_t *page = NULL;
	char keys[2048];
	const char *next;
	sbx_err err;
	int rc, good;

	rc = sp->list(inst, prefix, cursor, limit, &page, &err);
	if (rc != 0) {
		diag("list %s: %d %s", prefix ? prefix : "(null)", rc, err.message);
		return 0;
	}
	page_keys(page, keys, sizeof keys);
	next = json_string_value(json_object_get(page, "next"));
	good = strcmp(keys, want) == 0 &&
	       (want_next ? next && strcmp(next, want_next) == 0 : next == NULL);
	if (!good)
		diag("list %s after %s: got [%s] next=%s", prefix, cursor ? cursor : "-", keys,
		     next ? next : "(none)");
	json_decref(page);
	return good;
}

static int count_temp(const char *path, const struct stat *st, int flag, struct FTW *ftw);
static int temps;

static int count_temp(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	temps += strchr(path + ftw->base, '#') != NULL;
	return 0;
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_roundtrip(void)
{
	json_t *meta = NULL;
	sbx_err err;
	char *s;
	int rc;
	int64_t now = fakecore_api()->now_ms();

	ok(put_str("a/b/c.txt", "hello world", "text/plain") == 0, "put stores an object");
	s = get_str("a/b/c.txt", &rc);
	ok(rc == 0 && s && strcmp(s, "hello world") == 0, "get streams back the same bytes");
	free(s);
	rc = sp->head(inst, "a/b/c.txt", &meta, &err);
	ok(rc == 0 && json_integer_value(json_object_get(meta, "size")) == 11 &&
	       strcmp(json_string_value(json_object_get(meta, "key")), "a/b/c.txt") == 0,
	   "head reports key and size");
	ok(meta && json_is_string(json_object_get(meta, "content_type")) &&
	       strcmp(json_string_value(json_object_get(meta, "content_type")), "text/plain") == 0,
	   "head reports the content type given to put");
	ok(meta && llabs(json_integer_value(json_object_get(meta, "modified_at")) - now) < 10000,
	   "head reports modified_at in milliseconds since the epoch");
	json_decref(meta);

	ok(put_str("a/b/c.txt", "v2", NULL) == 0, "put replaces an existing object");
	s = get_str("a/b/c.txt", &rc);
	ok(s && strcmp(s, "v2") == 0, "get returns the replacement");
	free(s);
	meta = NULL;
	sp->head(inst, "a/b/c.txt", &meta, &err);
	ok(meta && !json_object_get(meta, "content_type"),
	   "a replacement without content type has none");
	json_decref(meta);

	{
		struct membuf m = {.data = "streamed until eof", .len = 18, .chunk = 5};

		rc = sp->put(inst, "eof/obj", mem_read, &m, -1, NULL, &err);
		s = get_str("eof/obj", &rc);
		ok(s && strcmp(s, "streamed until eof") == 0,
		   "put with size -1 reads until the reader returns 0");
		free(s);
	}
	{
		struct membuf m = {.data = "short", .len = 5};

		rc = sp->put(inst, "short/obj", mem_read, &m, 100, NULL, &err);
		meta = NULL;
		ok(rc == -SBX_E_INVALID &&
		       sp->head(inst, "short/obj", &meta, &err) == -SBX_E_NOTFOUND,
		   "a body shorter than the announced size fails and stores nothing");
	}
	s = get_str("no/such", &rc);
	ok(rc == -SBX_E_NOTFOUND && !s, "get of a missing object is SBX_E_NOTFOUND");
	meta = NULL;
	ok(sp->head(inst, "a/b", &meta, &err) == -SBX_E_NOTFOUND,
	   "a directory of objects is not itself an object");
	{
		struct collect c = {0};

		ok(sp->get(inst, "a/b/c.txt", fail_write, &c, &err) == -SBX_E_INTERNAL,
		   "a failing writer aborts get with SBX_E_INTERNAL");
	}
	ok(put_str("a/b/c.txt/d", "x", NULL) == -SBX_E_CONFLICT,
	   "a key below an existing object is SBX_E_CONFLICT");
}

static void test_list(void)
{
	const char *keys[] = {"l/b", "l/a/y/z", "l/ab", "l/a-b", "l/a/x", "l/a.c", "l/c"};
	json_t *page = NULL;
	sbx_err err;
	int n = 0;

	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		n += put_str(keys[i], keys[i], NULL) == 0;
	ok(n == 7, "objects for listing stored");
	ok(list_is("l/", NULL, 1000, "l/a-b l/a.c l/a/x l/a/y/z l/ab l/b l/c", NULL),
	   "list returns keys in byte order across directories");
	ok(list_is("l/", NULL, 3, "l/a-b l/a.c l/a/x", "l/a/x"),
	   "list page 1 holds `limit` keys and a next cursor");
	ok(list_is("l/", "l/a/x", 3, "l/a/y/z l/ab l/b", "l/b"), "list continues after the cursor");
	ok(list_is("l/", "l/b", 3, "l/c", NULL), "the last page has no next cursor");
	ok(list_is("l/a", NULL, 100, "l/a-b l/a.c l/a/x l/a/y/z l/ab", NULL),
	   "a prefix may end inside a path component");
	ok(list_is("l/a/", NULL, 100, "l/a/x l/a/y/z", NULL), "a prefix can name a directory");
	ok(list_is("nothing/here/", NULL, 10, "", NULL), "a prefix with no objects lists nothing");
	ok(sp->list(inst, "l/", NULL, 0, &page, &err) == -SBX_E_INVALID,
	   "list limit 0 is SBX_E_INVALID");

	ok(sp->del(inst, "l/b", &err) == 0 && list_is("l/b", NULL, 10, "", NULL),
	   "del removes an object");
	ok(sp->del(inst, "l/b", &err) == 0, "del of a missing object is 0");
	ok(sp->del(inst, "zz/yy/xx", &err) == 0, "del under a missing directory is 0");
	ok(sp->del_prefix(inst, "l/a", &err) == 0 && list_is("l/", NULL, 10, "l/c", NULL),
	   "del_prefix removes every object under the prefix and nothing else");
	{
		struct stat st;
		char p[4400];

		snprintf(p, sizeof p, "%s/l/a", root);
		ok(lstat(p, &st) < 0 && errno == ENOENT, "del_prefix removes emptied directories");
	}
	ok(sp->del_prefix(inst, "", &err) == -SBX_E_INVALID, "del_prefix of \"\" is SBX_E_INVALID");
	ok(sp->del_prefix(inst, "none/", &err) == 0, "del_prefix of a missing prefix is 0");
}

static void test_keys(void)
{
	const char *bad[] = {"../x", "/abs", "",      "a/../b", "a//b",  "a b",
			     "a/",   "./a",  "a/./b", "a\\b",   "ok/..", "x#y"};
	char longkey[1100], okkey[1025];
	struct membuf m = {.data = "x", .len = 1};
	json_t *meta = NULL;
	sbx_err err;
	int refused = 0;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rp, rg, rh, rd;

		m.off = 0;
		rp = sp->put(inst, bad[i], mem_read, &m, 1, NULL, &err);
		rg = sp->get(inst, bad[i], collect_write, &(struct collect){0}, &err);
		rh = sp->head(inst, bad[i], &meta, &err);
		rd = sp->del(inst, bad[i], &err);
		if (rp == -SBX_E_INVALID && rg == -SBX_E_INVALID && rh == -SBX_E_INVALID &&
		    rd == -SBX_E_INVALID)
			refused++;
		else
			diag("key '%s' not refused: put %d get %d head %d del %d", bad[i], rp, rg,
			     rh, rd);
	}
	ok(refused == (int)(sizeof bad / sizeof bad[0]),
	   "invalid keys (.., absolute, empty, bad characters, empty or . components) are "
	   "SBX_E_INVALID for put, get, head and del");
	memset(longkey, 'k', 1025);
	longkey[1025] = '\0';
	m.off = 0;
	ok(sp->put(inst, longkey, mem_read, &m, 1, NULL, &err) == -SBX_E_INVALID,
	   "a 1025-byte key is SBX_E_INVALID");
	for (int i = 0; i < 1024; i++)
		okkey[i] = i % 201 == 200 ? '/' : 'k';
	okkey[1024] = '\0';
	m.off = 0;
	ok(sp->put(inst, okkey, mem_read, &m, 1, NULL, &err) == 0, "a 1024-byte key is accepted");
	ok(sp->list(inst, "../", NULL, 10, &meta, &err) == -SBX_E_INVALID,
	   "a list prefix with .. is SBX_E_INVALID");
}

static void test_symlinks(void)
{
	char outside[4300], link1[4400], link2[4400], path[4400];
	struct stat st;
	json_t *meta = NULL;
	sbx_err err;
	char *s;
	int rc, fd;

	snprintf(outside, sizeof outside, "%s/outside", fakecore_data_dir());
	mkdir(outside, 0755);
	snprintf(path, sizeof path, "%s/secret", outside);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		(void)!write(fd, "secret", 6);
		close(fd);
	}
	mkdir(root, 0755);
	snprintf(link1, sizeof link1, "%s/linkdir", root);
	snprintf(link2, sizeof link2, "%s/linkfile", root);
	ok(symlink(outside, link1) == 0 && symlink(path, link2) == 0,
	   "symbolic links pointing out of the directory are planted");
	s = get_str("linkdir/secret", &rc);
	ok(rc == -SBX_E_NOTFOUND && !s, "get does not follow a directory symlink out of dir");
	s = get_str("linkfile", &rc);
	ok(rc == -SBX_E_NOTFOUND && !s, "get does not follow a file symlink out of dir");
	ok(sp->head(inst, "linkfile", &meta, &err) == -SBX_E_NOTFOUND,
	   "head does not follow a file symlink");
	rc = put_str("linkdir/new", "x", NULL);
	snprintf(path, sizeof path, "%s/new", outside);
	ok(rc < 0 && lstat(path, &st) < 0,
	   "put through a directory symlink writes nothing outside");
	ok(list_is("link", NULL, 10, "", NULL), "list skips symbolic links");
	ok(sp->del_prefix(inst, "linkdir/", &err) == 0 &&
	       sp->del(inst, "linkdir/secret", &err) == 0,
	   "deletes through a symlink succeed without touching the target");
	snprintf(path, sizeof path, "%s/secret", outside);
	ok(lstat(path, &st) == 0, "the file outside dir is still there");
	ok(put_str("linkfile", "replaced", NULL) == 0 && lstat(path, &st) == 0 && st.st_size == 6,
	   "put over a file symlink replaces the link, not its target");
	unlink(link1);
}

/* A reader producing `left` deterministic bytes, hashing them as it goes. */
struct gen {
	unsigned long long left, x;
	EVP_MD_CTX *md;
};

static long gen_read(void *ctx, void *buf, size_t cap)
{
	struct gen *g = ctx;
	unsigned char *p = buf;
	size_t n = cap < g->left ? cap : (size_t)g->left;

	for (size_t i = 0; i < n; i++) {
		g->x ^= g->x << 13;
		g->x ^= g->x >> 7;
		g->x ^= g->x << 17;
		p[i] = (unsigned char)g->x;
	}
	EVP_DigestUpdate(g->md, buf, n);
	g->left -= n;
	return (long)n;
}

struct hashsink {
	unsigned long long len;
	EVP_MD_CTX *md;
};

static int hash_write(void *ctx, const void *data, size_t len)
{
	struct hashsink *h = ctx;

	h->len += len;
	EVP_DigestUpdate(h->md, data, len);
	return 0;
}

static long max_rss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_big(void)
{
	const unsigned long long size = 50ull << 20;
	unsigned char d1[32], d2[32];
	struct gen g = {.left = size, .x = 88172645463325252ull, .md = EVP_MD_CTX_new()};
	struct hashsink h = {.md = EVP_MD_CTX_new()};
	json_t *meta = NULL;
	long rss0 = max_rss_kb(), rss1;
	sbx_err err;
	int rc;

	EVP_DigestInit_ex(g.md, EVP_sha256(), NULL);
	EVP_DigestInit_ex(h.md, EVP_sha256(), NULL);
	rc = sp->put(inst, "big/object.bin", gen_read, &g, (long long)size,
		     "application/octet-stream", &err);
	ok(rc == 0, "a 50 MiB object is put from a streaming reader");
	rc = sp->get(inst, "big/object.bin", hash_write, &h, &err);
	EVP_DigestFinal_ex(g.md, d1, NULL);
	EVP_DigestFinal_ex(h.md, d2, NULL);
	ok(rc == 0 && h.len == size && memcmp(d1, d2, 32) == 0,
	   "the 50 MiB object streams back intact (SHA-256 equal)");
	rss1 = max_rss_kb();
	ok(rss1 - rss0 < 16 * 1024,
	   "put and get of 50 MiB stay in bounded memory (peak RSS grew %ld KiB)", rss1 - rss0);
	sp->head(inst, "big/object.bin", &meta, &err);
	ok(meta && json_integer_value(json_object_get(meta, "size")) == (json_int_t)size,
	   "head reports the 50 MiB size");
	json_decref(meta);
	sp->del(inst, "big/object.bin", &err);
	EVP_MD_CTX_free(g.md);
	EVP_MD_CTX_free(h.md);
}

#define OBJ     (256 * 1024)
#define WRITERS 4
#define ROUNDS  25

struct writer {
	int id;
	int failures;
	int *done; /* incremented atomically when this writer finishes */
};

static void *writer(void *arg)
{
	struct writer *w = arg;
	char *buf = malloc(OBJ);
	sbx_err err;

	memset(buf, 'A' + w->id, OBJ);
	for (int r = 0; r < ROUNDS; r++) {
		struct membuf m = {.data = buf, .len = OBJ, .chunk = 8192};

		if (sp->put(inst, "race/obj", mem_read, &m, OBJ, NULL, &err) != 0) {
			diag("writer %d: %s", w->id, err.message);
			w->failures++;
		}
	}
	free(buf);
	__atomic_add_fetch(w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_concurrent(void)
{
	pthread_t t[WRITERS];
	struct writer w[WRITERS];
	int reads = 0, torn = 0, failures = 0, done = 0;

	put_str("race/obj", "initial", NULL);
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){.id = i, .done = &done};
		if (pthread_create(&t[i], NULL, writer, &w[i]) != 0) {
			w[i].failures = ROUNDS;
			__atomic_add_fetch(&done, 1, __ATOMIC_SEQ_CST);
			t[i] = 0;
		}
	}
	/* Read until the writers are done, bounded in time so a stuck writer fails the test
	 * instead of hanging the suite. */
	for (time_t end = time(NULL) + 120;
	     __atomic_load_n(&done, __ATOMIC_SEQ_CST) < WRITERS && time(NULL) < end;) {
		struct collect c = {0};
		sbx_err err;
		int rc = sp->get(inst, "race/obj", collect_write, &c, &err);

		if (rc == 0 && !(c.len == 7 && memcmp(c.buf, "initial", 7) == 0)) {
			reads++;
			if (c.len != OBJ)
				torn++;
			for (size_t i = 1; i < c.len && c.len == OBJ; i++)
				if (c.buf[i] != c.buf[0]) {
					torn++;
					break;
				}
		} else if (rc != 0) {
			diag("get during concurrent puts failed: %s", err.message);
			torn++;
		}
		free(c.buf);
	}
	ok(__atomic_load_n(&done, __ATOMIC_SEQ_CST) == WRITERS,
	   "concurrent writers finish within 120 s");
	for (int i = 0; i < WRITERS; i++) {
		if (t[i])
			pthread_join(t[i], NULL);
		failures += w[i].failures;
	}
	ok(failures == 0, "concurrent puts of one key all succeed");
	ok(torn == 0 && reads > 0,
	   "readers never see a partial or mixed object during concurrent puts (%d reads)", reads);
	temps = 0;
	nftw(root, count_temp, 16, FTW_PHYS);
	ok(temps == 0, "no temporary files are left behind");
}

static void test_misc(void)
{
	json_t *detail = NULL, *bad;
	void *other = NULL;
	sbx_err err;

	ok(sp->health && sp->health(inst, &detail, &err) == 0 &&
	       json_is_string(json_object_get(detail, "dir")),
	   "health writes to the directory and reports it");
	json_decref(detail);
	ok(!SBX_HAS_MEMBER(sp, struct sbx_storage_plugin, presign_get),
	   "presign_get is absent (local files have no credential-free URL)");
	bad = json_pack("{s:s, s:b, s:i}", "dir", root, "fsync", 0, "bogus_key", 1);
	sbx_err_clear(&err);
	ok(sp->life.create(fakecore_api(), "t", bad, &other, &err) == -SBX_E_INVALID &&
	       strstr(err.message, "bogus_key"),
	   "an unknown config key is SBX_E_INVALID naming it (%s)", err.message);
	json_decref(bad);
	bad = json_object();
	other = NULL;
	ok(sp->life.create(fakecore_api(), "t2", bad, &other, &err) == 0 && other,
	   "the default config uses <data_dir>/objects");
	if (other)
		sp->life.destroy(other);
	json_decref(bad);
}

int main(int argc, char **argv)
{
	const char *modpath = argc > 1 ? argv[1] : getenv("SBX_STORAGE_MODULE");
	char defmod[4096], errbuf[512];
	struct fakecore_module mod;
	json_t *cfg;
	sbx_err err;

	fakecore_api();
	if (!modpath) {
		const char *tb = getenv("top_builddir");

		snprintf(defmod, sizeof defmod, "%s/plugins/storage/local/storage_local.la",
			 tb ? tb : ".");
		modpath = defmod;
	}
	if (fakecore_module_open(modpath, SBX_KIND_STORAGE, sizeof(struct sbx_storage_plugin), &mod,
				 errbuf, sizeof errbuf) != 0) {
		printf("Bail out! %s\n", errbuf);
		return 1;
	}
	sp = (const struct sbx_storage_plugin *)mod.hdr;
	snprintf(root, sizeof root, "%s/objs", fakecore_data_dir());
	cfg = json_pack("{s:s, s:b}", "dir", root, "fsync", 1);
	ok(sp->life.create(fakecore_api(), "local-test", cfg, &inst, &err) == 0,
	   "create makes the object directory");
	json_decref(cfg);
	if (!inst) {
		printf("Bail out! %s\n", err.message);
		return 1;
	}
	test_roundtrip();
	test_list();
	test_keys();
	test_symlinks();
	test_big();
	test_concurrent();
	test_misc();
	sp->life.destroy(inst);
	fakecore_module_close(&mod);
	fakecore_cleanup();
	return tap_done();
}
