/*
 * Tests of the storage modules `s3` and `minio` (storage.h) through the built module files,
 * against s3rver started by storage_s3.sh (which verifies SigV4 signatures and presigned-URL
 * expiry): round trips, ListObjectsV2 pages, deletes, a 200 MiB multipart object in bounded
 * memory, the error messages (credentials, bucket, endpoint, key), presigned URLs,
 * credentials from the environment and a credentials file, strict config, bucket bootstrap.
 * Offline unit tests (URL construction, AWS's published SigV4 example) run always. TAP.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include <sandbox/storage.h>

#include "plugins/storage/s3common/s3common.h"
#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

#define MIB (1024LL * 1024LL)

static const struct sbx_core_api *core;
static const char *endpoint, *lax_endpoint, *bucket, *ak, *sk;
static const char *wrong_sk = "Wrong-Secret-Value-0042";
static const char *file_sk = "File-Secret-Value-0077"; /* a wrong one, in a second profile */
static json_t *messages;   /* every error message seen, checked for secrets at the end */
static char logpath[4200]; /* what the modules log (stderr) goes here */

/* True when the modules logged a line containing needle. */
static int log_has(const char *needle)
{
	char line[4096];
	int found = 0;
	FILE *f = fopen(logpath, "r");

	while (f && !found && fgets(line, sizeof line, f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void note(const sbx_err *e)
{
	if (e->message[0])
		json_array_append_new(messages, json_string(e->message));
}

/* ---- readers and writers --------------------------------------------------------- */

struct membuf {
	const char *data;
	size_t len, off;
};

static long mem_read(void *ctx, void *buf, size_t cap)
{
	struct membuf *m = ctx;
	size_t n = m->len - m->off;

	if (n > cap)
		n = cap;
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

	if (c->len + len + 1 > c->cap) {
		size_t ncap = (c->len + len + 1) * 2;
		char *nb = realloc(c->buf, ncap);

		if (!nb)
			return -1;
		c->buf = nb;
		c->cap = ncap;
	}
	memcpy(c->buf + c->len, data, len);
	c->len += len;
	c->buf[c->len] = '\0';
	return 0;
}

/* Pseudo-random bytes made on the fly and hashed as they are handed out. */
struct gen {
	long long left;    /* bytes still to give */
	long long fail_at; /* return -1 once this many bytes were given (-1: never) */
	long long given;
	unsigned long long x;
	EVP_MD_CTX *md;
};

static long gen_read(void *ctx, void *buf, size_t cap)
{
	struct gen *g = ctx;
	unsigned char *p = buf;
	size_t n = cap;

	if (g->fail_at >= 0 && g->given >= g->fail_at)
		return -1;
	if ((long long)n > g->left)
		n = (size_t)g->left;
	for (size_t i = 0; i < n; i++) {
		if ((g->given + (long long)i) % 8 == 0) {
			g->x ^= g->x << 13;
			g->x ^= g->x >> 7;
			g->x ^= g->x << 17;
		}
		p[i] = (unsigned char)(g->x >> (8 * ((g->given + (long long)i) % 8)));
	}
	EVP_DigestUpdate(g->md, p, n);
	g->left -= (long long)n;
	g->given += (long long)n;
	return (long)n;
}

struct hashw {
	EVP_MD_CTX *md;
	long long n;
};

static int hash_write(void *ctx, const void *data, size_t len)
{
	struct hashw *h = ctx;

	EVP_DigestUpdate(h->md, data, len);
	h->n += (long long)len;
	return 0;
}

static int fail_write(void *ctx, const void *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return -1;
}

static long peak_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* ---- instances ------------------------------------------------------------------- */

struct mod {
	const char *name;
	const struct sbx_storage_plugin *sp;
	struct fakecore_module fm;
};

static struct mod mods[2] = {{.name = "minio"}, {.name = "s3"}};

/* A config for module m: endpoint, bucket, keys, prefix; `extra` (JSON) overrides. */
static json_t *config_for(const struct mod *m, const char *prefix, const char *extra)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:s}", "endpoint", endpoint, "bucket", bucket,
			      "access_key", ak, "secret_key", sk);

	if (strcmp(m->name, "s3") == 0)
		json_object_set_new(c, "path_style", json_true());
	if (prefix)
		json_object_set_new(c, "prefix", json_string(prefix));
	if (extra) {
		json_t *x = json_loads(extra, 0, NULL);
		const char *k;
		json_t *v;

		json_object_foreach (x, k, v) {
			if (json_is_null(v))
				json_object_del(c, k);
			else
				json_object_set(c, k, v);
		}
		json_decref(x);
	}
	return c;
}

static int make(const struct mod *m, const json_t *cfg, void **inst, sbx_err *err)
{
	int ret;

	sbx_err_clear(err);
	ret = m->sp->life.create(core, m->name, cfg, inst, err);
	note(err);
	return ret;
}

static int put_str(const struct mod *m, void *inst, const char *key, const char *s, long long size,
		   sbx_err *err)
{
	struct membuf mb = {.data = s, .len = strlen(s)};
	int ret;

	sbx_err_clear(err);
	ret = m->sp->put(inst, key, mem_read, &mb, size == -2 ? (long long)mb.len : size,
			 "text/plain", err);
	note(err);
	return ret;
}

static char *get_str(const struct mod *m, void *inst, const char *key, int *ret, sbx_err *err)
{
	struct collect c = {0};

	sbx_err_clear(err);
	*ret = m->sp->get(inst, key, collect_write, &c, err);
	note(err);
	if (*ret < 0) {
		free(c.buf);
		return NULL;
	}
	return c.buf ? c.buf : strdup("");
}

static size_t curl_collect(char *p, size_t sz, size_t nm, void *ud)
{
	return collect_write(ud, p, sz * nm) == 0 ? sz * nm : 0;
}

/* GET url without credentials; returns the HTTP status, the body into *body. */
static long fetch_body(const char *url, struct collect *body)
{
	CURL *h = curl_easy_init();
	long status = 0;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}

/* GET url without credentials; returns the HTTP status. */
static long fetch(const char *url)
{
	struct collect c = {0};
	long st = fetch_body(url, &c);

	free(c.buf);
	return st;
}

/* ---- the suite each module runs -------------------------------------------------- */

static void test_roundtrip(const struct mod *m, void *inst)
{
	sbx_err err;
	json_t *meta = NULL;
	char *got;
	int ret;

	ok(put_str(m, inst, "dir/hello.txt", "hello, s3", -2, &err) == 0,
	   "%s: put of a small object works (%s)", m->name, err.message);
	got = get_str(m, inst, "dir/hello.txt", &ret, &err);
	ok(ret == 0 && got && strcmp(got, "hello, s3") == 0, "%s: get returns the bytes put",
	   m->name);
	free(got);
	sbx_err_clear(&err);
	ret = m->sp->head(inst, "dir/hello.txt", &meta, &err);
	ok(ret == 0 && json_integer_value(json_object_get(meta, "size")) == 9 &&
	       strcmp(json_string_value(json_object_get(meta, "key")), "dir/hello.txt") == 0 &&
	       json_string_value(json_object_get(meta, "etag")) &&
	       strncmp(json_string_value(json_object_get(meta, "content_type")) ?: "", "text/plain",
		       10) == 0,
	   "%s: head gives key, size, etag and content type", m->name);
	ok(llabs((long long)json_integer_value(json_object_get(meta, "modified_at")) -
		 (long long)core->now_ms()) < 120000,
	   "%s: head's modified_at is about now (ms)", m->name);
	json_decref(meta);

	ok(put_str(m, inst, "dir/hello.txt", "replaced", -1, &err) == 0,
	   "%s: put of unknown size (-1) replaces an object", m->name);
	got = get_str(m, inst, "dir/hello.txt", &ret, &err);
	ok(ret == 0 && got && strcmp(got, "replaced") == 0, "%s: get sees the replacement",
	   m->name);
	free(got);
	ok(put_str(m, inst, "empty", "", 0, &err) == 0, "%s: put of an empty object", m->name);
	got = get_str(m, inst, "empty", &ret, &err);
	ok(ret == 0 && got && *got == '\0', "%s: get of an empty object gives 0 bytes", m->name);
	free(got);

	/* The transfer is aborted mid-body. S3 and MinIO then store nothing (IncompleteBody);
	 * s3rver may keep the partial body, so only the error is checked here. */
	ok(put_str(m, inst, "short", "abc", 10, &err) == -SBX_E_INVALID &&
	       strstr(err.message, "ended after 3 of 10 bytes"),
	   "%s: a body shorter than its size is refused (%s)", m->name, err.message);

	/* Missing objects and bad keys. */
	got = get_str(m, inst, "no/such/key", &ret, &err);
	ok(ret == -SBX_E_NOTFOUND && !got, "%s: get of a missing key is NOTFOUND (%s)", m->name,
	   err.message);
	sbx_err_clear(&err);
	ret = m->sp->head(inst, "no/such/key", &meta, &err);
	note(&err);
	ok(ret == -SBX_E_NOTFOUND, "%s: head of a missing key is NOTFOUND", m->name);
	sbx_err_clear(&err);
	ok(m->sp->del(inst, "no/such/key", &err) == 0, "%s: del of a missing key is 0", m->name);
	{
		const char *bad[] = {"../x", "/abs", "a b", "a//b", "dir/", "x?y", ""};
		int all = 1;

		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			sbx_err_clear(&err);
			all &= put_str(m, inst, bad[i], "x", -2, &err) == -SBX_E_INVALID;
			sbx_err_clear(&err);
			all &=
			    m->sp->get(inst, bad[i], collect_write, NULL, &err) == -SBX_E_INVALID;
		}
		ok(all, "%s: keys outside the storage.h rules are INVALID for put and get",
		   m->name);
	}
	sbx_err_clear(&err);
	ok(m->sp->get(inst, "dir/hello.txt", fail_write, NULL, &err) == -SBX_E_INTERNAL,
	   "%s: a failing write_fn aborts get with INTERNAL", m->name);
	sbx_err_clear(&err);
	ok(m->sp->del(inst, "dir/hello.txt", &err) == 0 &&
	       m->sp->head(inst, "dir/hello.txt", &meta, &err) == -SBX_E_NOTFOUND,
	   "%s: del removes the object", m->name);
}

static void test_list(const struct mod *m, void *inst)
{
	char key[64], *cursor = NULL;
	json_t *page = NULL, *all = json_array();
	sbx_err err;
	int ret, pages = 0, order = 1, okput = 1;

	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof key, "lst/k%02d", i);
		okput &= put_str(m, inst, key, "v", -2, &err) == 0;
	}
	put_str(m, inst, "lsz", "outside", -2, &err);
	ok(okput, "%s: 25 objects put under lst/", m->name);
	do {
		sbx_err_clear(&err);
		ret = m->sp->list(inst, "lst/", cursor, 10, &page, &err);
		free(cursor);
		cursor = NULL;
		if (ret < 0)
			break;
		pages++;
		json_array_extend(all, json_object_get(page, "items"));
		if (json_string_value(json_object_get(page, "next")))
			cursor = strdup(json_string_value(json_object_get(page, "next")));
		json_decref(page);
	} while (cursor && pages < 10);
	for (size_t i = 0; i < json_array_size(all); i++) {
		snprintf(key, sizeof key, "lst/k%02zu", i);
		order &= strcmp(json_string_value(json_object_get(json_array_get(all, i), "key")),
				key) == 0;
		order &= json_integer_value(json_object_get(json_array_get(all, i), "size")) == 1;
	}
	ok(ret == 0 && pages == 3 && json_array_size(all) == 25 && order,
	   "%s: list pages of 10 follow the continuation cursor: 3 pages, 25 keys in order "
	   "(%d pages, %zu keys%s%s)",
	   m->name, pages, json_array_size(all), ret < 0 ? ": " : "", ret < 0 ? err.message : "");
	json_decref(all);

	sbx_err_clear(&err);
	ret = m->sp->list(inst, "lst/", "lst/k19", 10, &page, &err);
	ok(ret == 0 && json_array_size(json_object_get(page, "items")) == 5 &&
	       strcmp(json_string_value(json_object_get(
			  json_array_get(json_object_get(page, "items"), 0), "key")),
		      "lst/k20") == 0 &&
	       !json_object_get(page, "next"),
	   "%s: a key as cursor resumes after that key", m->name);
	json_decref(page);
	sbx_err_clear(&err);
	ok(m->sp->list(inst, "lst/", "bad cursor!", 10, &page, &err) == -SBX_E_INVALID,
	   "%s: a cursor that is neither a key nor a token is INVALID", m->name);
	sbx_err_clear(&err);
	ok(m->sp->list(inst, "lst/", NULL, 0, &page, &err) == -SBX_E_INVALID,
	   "%s: limit 0 is INVALID", m->name);

	sbx_err_clear(&err);
	ret = m->sp->del_prefix(inst, "lst/", &err);
	note(&err);
	ok(ret == 0, "%s: del_prefix lst/ works (%s)", m->name, err.message);
	sbx_err_clear(&err);
	ret = m->sp->list(inst, "ls", NULL, 100, &page, &err);
	ok(ret == 0 && json_array_size(json_object_get(page, "items")) == 1 &&
	       strcmp(json_string_value(json_object_get(
			  json_array_get(json_object_get(page, "items"), 0), "key")),
		      "lsz") == 0,
	   "%s: del_prefix removed every object under lst/ and only those", m->name);
	json_decref(page);
	sbx_err_clear(&err);
	ok(m->sp->del_prefix(inst, "", &err) == -SBX_E_INVALID, "%s: del_prefix '' is INVALID",
	   m->name);
}

/* More than one DeleteObjects batch (1000 keys) needs many objects: 1100 small ones. */
static void test_del_prefix_batches(const struct mod *m, void *inst)
{
	char key[64];
	json_t *page = NULL;
	sbx_err err;
	int okput = 1, ret;

	for (int i = 0; i < 1100 && okput; i++) {
		snprintf(key, sizeof key, "many/o%04d", i);
		okput &= put_str(m, inst, key, "", -2, &err) == 0;
	}
	ok(okput, "%s: 1100 objects put under many/", m->name);
	sbx_err_clear(&err);
	ret = m->sp->list(inst, "many/", NULL, 1000, &page, &err);
	ok(ret == 0 && json_array_size(json_object_get(page, "items")) == 1000 &&
	       json_object_get(page, "next"),
	   "%s: a page of 1000 has a next cursor", m->name);
	json_decref(page);
	sbx_err_clear(&err);
	ok(m->sp->del_prefix(inst, "many/", &err) == 0, "%s: del_prefix of 1100 objects works",
	   m->name);
	sbx_err_clear(&err);
	ret = m->sp->list(inst, "many/", NULL, 10, &page, &err);
	ok(ret == 0 && json_array_size(json_object_get(page, "items")) == 0,
	   "%s: ... and left none (two DeleteObjects batches)", m->name);
	json_decref(page);
}

static void test_presign(const struct mod *m, void *inst, const char *public_endpoint)
{
	struct collect body = {0};
	char *url = NULL;
	sbx_err err;
	long st;

	put_str(m, inst, "pub/file.txt", "presigned content", -2, &err);
	sbx_err_clear(&err);
	ok(m->sp->presign_get(inst, "pub/file.txt", 60, &url, &err) == 0 && url &&
	       strncmp(url, public_endpoint, strlen(public_endpoint)) == 0,
	   "%s: presign_get gives a URL on public_endpoint", m->name);
	ok(url && !strstr(url, sk), "%s: the URL does not contain the secret", m->name);
	st = url ? fetch_body(url, &body) : 0;
	ok(st == 200 && body.buf && strcmp(body.buf, "presigned content") == 0,
	   "%s: the presigned URL GETs the object without credentials (HTTP %ld)", m->name, st);
	free(body.buf);
	if (url) {
		/* A signature over another key must not work. */
		char *tampered = strdup(url), *p = strstr(tampered, "file.txt");

		memcpy(p, "fila", 4);
		st = fetch(tampered);
		ok(st == 403, "%s: the URL with another key is refused (HTTP %ld)", m->name, st);
		free(tampered);
	}
	free(url);
	url = NULL;
	sbx_err_clear(&err);
	ok(m->sp->presign_get(inst, "pub/file.txt", 1, &url, &err) == 0, "%s: presign with ttl 1",
	   m->name);
	sleep(2);
	st = url ? fetch(url) : 0;
	ok(st == 403, "%s: an expired presigned URL is refused (HTTP %ld)", m->name, st);
	free(url);
	sbx_err_clear(&err);
	ok(m->sp->presign_get(inst, "pub/file.txt", 0, &url, &err) == -SBX_E_INVALID &&
	       m->sp->presign_get(inst, "../x", 60, &url, &err) == -SBX_E_INVALID,
	   "%s: presign refuses ttl 0 and bad keys", m->name);
}

static void test_health(const struct mod *m, void *inst)
{
	json_t *detail = NULL;
	char *dump;
	sbx_err err = {0};
	int ret = m->sp->health(inst, &detail, &err);

	dump = detail ? json_dumps(detail, 0) : strdup("");
	ok(ret == 0 && json_string_value(json_object_get(detail, "bucket")) &&
	       strcmp(json_string_value(json_object_get(detail, "bucket")), bucket) == 0,
	   "%s: health HEADs the bucket and reports it: %s", m->name, dump);
	ok(!strstr(dump, sk) && !strstr(dump, ak), "%s: health detail holds no key material",
	   m->name);
	free(dump);
	json_decref(detail);
}

/* 200 MiB generated on the fly, multipart up, streamed down, both hashed. */
static void test_big(const struct mod *m, void *inst, long long size, int unknown_size)
{
	unsigned char h1[32], h2[32];
	unsigned int l1 = 0, l2 = 0;
	struct gen g = {
	    .left = size, .fail_at = -1, .x = 0x9E3779B97F4A7C15ull, .md = EVP_MD_CTX_new()};
	struct hashw hw = {.md = EVP_MD_CTX_new()};
	json_t *meta = NULL;
	sbx_err err = {0};
	int64_t t0, t1, t2;
	long rss0 = peak_rss_kib(), rss1;
	int ret;

	EVP_DigestInit_ex(g.md, EVP_sha256(), NULL);
	EVP_DigestInit_ex(hw.md, EVP_sha256(), NULL);
	t0 = core->monotonic_ms();
	ret =
	    m->sp->put(inst, "big/object.bin", gen_read, &g, unknown_size ? -1 : size, NULL, &err);
	note(&err);
	t1 = core->monotonic_ms();
	ok(ret == 0 && g.given == size, "%s: put of %lld MiB (%s size) through multipart (%s)",
	   m->name, size / MIB, unknown_size ? "unknown" : "known", err.message);
	sbx_err_clear(&err);
	ret = m->sp->head(inst, "big/object.bin", &meta, &err);
	ok(ret == 0 && json_integer_value(json_object_get(meta, "size")) == size,
	   "%s: head gives the full size", m->name);
	json_decref(meta);
	sbx_err_clear(&err);
	ret = m->sp->get(inst, "big/object.bin", hash_write, &hw, &err);
	t2 = core->monotonic_ms();
	EVP_DigestFinal_ex(g.md, h1, &l1);
	EVP_DigestFinal_ex(hw.md, h2, &l2);
	ok(ret == 0 && hw.n == size && memcmp(h1, h2, 32) == 0,
	   "%s: get streams back the same %lld bytes (SHA-256 equal)", m->name, hw.n);
	rss1 = peak_rss_kib();
	ok(rss1 < 100 * 1024, "%s: peak RSS %ld KiB stays well below the object's size", m->name,
	   rss1);
	{
		char want[128];
		long long parts = (size + 8 * MIB - 1) / (8 * MIB); /* default part_size */

		snprintf(want, sizeof want,
			 "event=s3_multipart_done key=big/object.bin parts=%lld bytes=%lld", parts,
			 size);
		ok(log_has(want), "%s: the put was a multipart upload of %lld parts", m->name,
		   parts);
	}
	diag("%s: %lld MiB: put %.2f s (%.0f MiB/s), get %.2f s; peak RSS %ld KiB before, %ld "
	     "KiB after",
	     m->name, size / MIB, (t1 - t0) / 1000.0, (double)size / MIB / ((t1 - t0) / 1000.0),
	     (t2 - t1) / 1000.0, rss0, rss1);
	sbx_err_clear(&err);
	m->sp->del(inst, "big/object.bin", &err);
	EVP_MD_CTX_free(g.md);
	EVP_MD_CTX_free(hw.md);
}

/* A reader that fails in the third part: error, and no object appears. */
static void test_multipart_failure(const struct mod *m, void *inst)
{
	struct gen g = {.left = 40 * MIB, .fail_at = 20 * MIB, .x = 7, .md = EVP_MD_CTX_new()};
	json_t *meta = NULL;
	sbx_err err = {0};
	int ret;

	EVP_DigestInit_ex(g.md, EVP_sha256(), NULL);
	ret = m->sp->put(inst, "big/failing.bin", gen_read, &g, 40 * MIB, NULL, &err);
	note(&err);
	ok(ret == -SBX_E_INTERNAL && strstr(err.message, "reading the body failed"),
	   "%s: a reader failing in part 3 fails the multipart put (%s)", m->name, err.message);
	sbx_err_clear(&err);
	ok(m->sp->head(inst, "big/failing.bin", &meta, &err) == -SBX_E_NOTFOUND,
	   "%s: ... and no object appears (the upload is never completed)", m->name);
	/* s3rver answers AbortMultipartUpload with 405 (not implemented): the attempt is
	 * checked, through the module's log line. */
	ok(log_has("event=s3_multipart_abort") && log_has("key=big/failing.bin"),
	   "%s: ... and the module aborts the multipart upload", m->name);
	EVP_MD_CTX_free(g.md);
}

static void test_errors(const struct mod *m)
{
	json_t *cfg;
	void *inst = NULL;
	sbx_err err;
	char *got;
	int ret;

	/* Wrong secret: s3rver verifies the signature. */
	cfg = config_for(m, NULL, NULL);
	json_object_set_new(cfg, "secret_key", json_string(wrong_sk));
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	got = ret == 0 ? get_str(m, inst, "any", &ret, &err) : NULL;
	ok(ret == -SBX_E_UNAVAILABLE && strstr(err.message, "rejected the credentials") &&
	       strstr(err.message, "SignatureDoesNotMatch") && strstr(err.message, "secret_key"),
	   "%s: a wrong secret says the credentials were rejected: %s", m->name, err.message);
	ok(!strstr(err.message, wrong_sk), "%s: ... without the secret in the message", m->name);
	sbx_err_clear(&err);
	ret = put_str(m, inst, "any", "x", -2, &err);
	ok(ret == -SBX_E_UNAVAILABLE && strstr(err.message, "credentials"),
	   "%s: put with a wrong secret fails the same way", m->name);
	sbx_err_clear(&err);
	ret = m->sp->health(inst, NULL, &err);
	note(&err);
	ok(ret < 0 && strstr(err.message, "credentials"),
	   "%s: health with a wrong secret fails naming the credentials: %s", m->name, err.message);
	free(got);
	m->sp->life.destroy(inst);

	/* Unknown access key. */
	cfg = config_for(m, NULL, "{\"access_key\": \"NOSUCHKEY\"}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	got = ret == 0 ? get_str(m, inst, "any", &ret, &err) : NULL;
	ok(ret == -SBX_E_UNAVAILABLE && strstr(err.message, "InvalidAccessKeyId"),
	   "%s: an unknown access key is named as such: %s", m->name, err.message);
	free(got);
	m->sp->life.destroy(inst);

	/* Missing bucket (no start(): minio would create it). */
	cfg = config_for(m, NULL, "{\"bucket\": \"no-such-bucket-42\"}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	got = ret == 0 ? get_str(m, inst, "any", &ret, &err) : NULL;
	ok(ret == -SBX_E_UNAVAILABLE && strstr(err.message, "'no-such-bucket-42'") &&
	       strstr(err.message, "does not exist"),
	   "%s: a missing bucket is named: %s", m->name, err.message);
	free(got);
	sbx_err_clear(&err);
	ret = m->sp->head(inst, "any", &(json_t *){NULL}, &err);
	note(&err);
	ok(ret == -SBX_E_UNAVAILABLE && strstr(err.message, "'no-such-bucket-42'"),
	   "%s: head also names the missing bucket (not NOTFOUND): %s", m->name, err.message);
	sbx_err_clear(&err);
	ret = m->sp->health(inst, NULL, &err);
	note(&err);
	ok(ret == -SBX_E_UNAVAILABLE && strstr(err.message, "'no-such-bucket-42'"),
	   "%s: health names the missing bucket", m->name);
	m->sp->life.destroy(inst);

	/* Unreachable endpoint. */
	cfg =
	    config_for(m, NULL, "{\"endpoint\": \"http://127.0.0.1:1\", \"connect_timeout_s\": 2}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	got = ret == 0 ? get_str(m, inst, "any", &ret, &err) : NULL;
	ok(ret == -SBX_E_UNAVAILABLE && strstr(err.message, "'http://127.0.0.1:1'") &&
	       strstr(err.message, "cannot reach"),
	   "%s: an unreachable endpoint is named: %s", m->name, err.message);
	free(got);
	m->sp->life.destroy(inst);

	/* Strict config. */
	cfg = config_for(m, NULL, "{\"colour\": \"blue\"}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	ok(ret == -SBX_E_INVALID && strstr(err.message, "'colour'"),
	   "%s: an unknown config key is refused naming it: %s", m->name, err.message);
	cfg = config_for(m, NULL, "{\"timeout_s\": \"10\"}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	ok(ret == -SBX_E_INVALID && strstr(err.message, "'timeout_s' must be an integer"),
	   "%s: a key of the wrong type is refused naming it", m->name);
	cfg = config_for(m, NULL, "{\"part_size\": 1048576}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	ok(ret == -SBX_E_INVALID && strstr(err.message, "part_size"),
	   "%s: a part_size below 5 MiB is refused", m->name);
	cfg = config_for(m, NULL, "{\"bucket\": \"Bad_Bucket\"}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	ok(ret == -SBX_E_INVALID && strstr(err.message, "Bad_Bucket"),
	   "%s: an invalid bucket name is refused", m->name);
	cfg = config_for(m, NULL, "{\"secret_key\": null}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	ok(ret == -SBX_E_INVALID && strstr(err.message, "secret_key"),
	   "%s: access_key without secret_key is refused", m->name);
	cfg = config_for(m, NULL, "{\"endpoint\": \"http://host:9000/some/path\"}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	ok(ret == -SBX_E_INVALID && strstr(err.message, "'endpoint'"),
	   "%s: an endpoint with a path is refused", m->name);
}

static void test_credentials(const struct mod *m)
{
	char path[4200];
	json_t *cfg;
	void *inst = NULL;
	sbx_err err;
	char *got, *url = NULL;
	FILE *f;
	int ret;

	/* From the environment. */
	setenv("AWS_ACCESS_KEY_ID", ak, 1);
	setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
	setenv("AWS_SESSION_TOKEN", "session-token-abc", 1);
	cfg = config_for(m, "creds", "{\"access_key\": null, \"secret_key\": null}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	ok(ret == 0 && put_str(m, inst, "env.txt", "from env", -2, &err) == 0,
	   "%s: credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY work (%s)", m->name,
	   err.message);
	got = get_str(m, inst, "env.txt", &ret, &err);
	ok(ret == 0 && got && strcmp(got, "from env") == 0,
	   "%s: ... signed with the session token header too", m->name);
	free(got);
	sbx_err_clear(&err);
	ok(m->sp->presign_get(inst, "env.txt", 60, &url, &err) == 0 && url &&
	       strstr(url, "X-Amz-Security-Token=session-token-abc"),
	   "%s: presigned URLs carry X-Amz-Security-Token", m->name);
	free(url);
	m->sp->life.destroy(inst);
	setenv("AWS_SECRET_ACCESS_KEY", wrong_sk, 1);
	cfg = config_for(m, "creds", "{\"access_key\": null, \"secret_key\": null}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	got = ret == 0 ? get_str(m, inst, "env.txt", &ret, &err) : NULL;
	ok(ret == -SBX_E_UNAVAILABLE && strstr(err.message, "environment"),
	   "%s: a wrong secret from the environment says where it came from: %s", m->name,
	   err.message);
	free(got);
	m->sp->life.destroy(inst);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");

	cfg = config_for(m, "creds", "{\"access_key\": null, \"secret_key\": null}");
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	ok(ret == -SBX_E_INVALID && strstr(err.message, "no credentials"),
	   "%s: no credentials anywhere is refused at create: %s", m->name, err.message);

	/* From a credentials file: a wrong [default], the right [sbx]. */
	snprintf(path, sizeof path, "%s/credentials-%s", fakecore_data_dir(), m->name);
	f = fopen(path, "w");
	fprintf(f,
		"# test\n[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n"
		"[profile sbx]\n  aws_access_key_id=%s\n aws_secret_access_key = %s  \n",
		ak, file_sk, ak, sk);
	fclose(f);
	cfg = config_for(m, "creds", "{\"access_key\": null, \"secret_key\": null}");
	json_object_set_new(cfg, "credentials_file", json_string(path));
	json_object_set_new(cfg, "profile", json_string("sbx"));
	ret = make(m, cfg, &inst, &err);
	got = ret == 0 ? get_str(m, inst, "env.txt", &ret, &err) : NULL;
	ok(ret == 0 && got && strcmp(got, "from env") == 0,
	   "%s: credentials from credentials_file, profile 'sbx' work (%s)", m->name, err.message);
	free(got);
	if (inst)
		m->sp->life.destroy(inst);
	inst = NULL;
	json_object_del(cfg, "profile");
	ret = make(m, cfg, &inst, &err);
	got = ret == 0 ? get_str(m, inst, "env.txt", &ret, &err) : NULL;
	ok(ret == -SBX_E_UNAVAILABLE && strstr(err.message, "credentials_file"),
	   "%s: profile 'default' (a wrong secret) fails naming credentials_file: %s", m->name,
	   err.message);
	free(got);
	if (inst)
		m->sp->life.destroy(inst);
	inst = NULL;
	json_object_set_new(cfg, "profile", json_string("nope"));
	ret = make(m, cfg, &inst, &err);
	ok(ret == -SBX_E_INVALID && strstr(err.message, "no profile 'nope'"),
	   "%s: a missing profile is refused naming it", m->name);
	json_decref(cfg);
}

static void run_suite(struct mod *m)
{
	char prefix[32], pub[256];
	const char *colon = strrchr(endpoint, ':');
	json_t *cfg;
	void *inst = NULL;
	sbx_err err;

	/* public_endpoint: another name of the same server, as an operator would set it. */
	snprintf(pub, sizeof pub, "http://localhost%s", colon);
	snprintf(prefix, sizeof prefix, "t-%s", m->name);
	cfg = config_for(m, prefix, NULL);
	json_object_set_new(cfg, "public_endpoint", json_string(pub));
	ok(make(m, cfg, &inst, &err) == 0, "%s: create with a valid config (%s)", m->name,
	   err.message);
	json_decref(cfg);
	if (!inst)
		return;
	if (m->sp->life.start) {
		sbx_err_clear(&err);
		ok(m->sp->life.start(inst, &err) == 0, "%s: start with an existing bucket",
		   m->name);
	}
	test_roundtrip(m, inst);
	test_list(m, inst);
	test_presign(m, inst, pub);
	test_health(m, inst);
	test_multipart_failure(m, inst);
	if (strcmp(m->name, "minio") == 0) {
		test_big(m, inst, 200 * MIB, 0);
		test_del_prefix_batches(m, inst);
	} else {
		test_big(m, inst, 37 * MIB, 1);
	}
	m->sp->life.destroy(inst);
	test_errors(m);
	test_credentials(m);
}

/* minio: a bucket that does not exist is created by start(); a second start is fine. */
static void test_bootstrap(struct mod *m)
{
	char name[64];
	unsigned char r[4];
	json_t *cfg;
	void *inst = NULL, *inst2 = NULL;
	sbx_err err;
	char *got;
	int ret;

	core->random_bytes(r, sizeof r);
	snprintf(name, sizeof name, "boot-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
	cfg = config_for(m, NULL, NULL);
	json_object_set_new(cfg, "bucket", json_string(name));
	ret = make(m, cfg, &inst, &err);
	sbx_err_clear(&err);
	ok(ret == 0 && m->sp->health(inst, NULL, &err) == -SBX_E_UNAVAILABLE &&
	       strstr(err.message, name),
	   "minio: before start, bucket '%s' is missing (%s)", name, err.message);
	note(&err);
	sbx_err_clear(&err);
	ret = m->sp->life.start(inst, &err);
	note(&err);
	ok(ret == 0, "minio: start creates the missing bucket (%s)", err.message);
	ok(put_str(m, inst, "x", "in the new bucket", -2, &err) == 0,
	   "minio: objects go into the new bucket");
	ret = make(m, cfg, &inst2, &err);
	sbx_err_clear(&err);
	ok(ret == 0 && m->sp->life.start(inst2, &err) == 0,
	   "minio: start with the bucket now present is fine");
	got = get_str(m, inst2, "x", &ret, &err);
	ok(ret == 0 && got && strcmp(got, "in the new bucket") == 0,
	   "minio: a second instance sees the object");
	free(got);
	m->sp->life.destroy(inst2);
	m->sp->life.destroy(inst);
	json_decref(cfg);

	/* A bucket name the server refuses: the error names the bucket. */
	cfg =
	    config_for(m, NULL, "{\"endpoint\": \"http://127.0.0.1:1\", \"connect_timeout_s\": 1}");
	ret = make(m, cfg, &inst, &err);
	sbx_err_clear(&err);
	ok(ret == 0 && m->sp->life.start(inst, &err) == -SBX_E_UNAVAILABLE &&
	       strstr(err.message, "127.0.0.1:1"),
	   "minio: start against an unreachable endpoint fails naming it");
	note(&err);
	m->sp->life.destroy(inst);
	json_decref(cfg);
}

/* s3: virtual-hosted style end to end against the lax server (signatures unchecked there,
 * see storage_s3rver.js): requests reach the right bucket under BUCKET.s3.localhost. */
static void test_vhost_routing(struct mod *m)
{
	json_t *cfg;
	void *inst = NULL, *pinst = NULL;
	sbx_err err;
	char *got;
	int ret;

	cfg = config_for(m, "vhost", "{\"path_style\": null}");
	json_object_set_new(cfg, "endpoint", json_string(lax_endpoint));
	ret = make(m, cfg, &inst, &err);
	json_decref(cfg);
	ok(ret == 0 && put_str(m, inst, "v.txt", "virtual host", -2, &err) == 0,
	   "s3: a put in virtual-hosted style reaches the lax server (%s)", err.message);
	cfg = config_for(m, "vhost", NULL);
	make(m, cfg, &pinst, &err);
	json_decref(cfg);
	got = pinst ? get_str(m, pinst, "v.txt", &ret, &err) : NULL;
	ok(got && strcmp(got, "virtual host") == 0,
	   "s3: ... into bucket '%s' (read back path-style from the strict server)", bucket);
	free(got);
	sbx_err_clear(&err);
	if (inst)
		ok(m->sp->health(inst, NULL, &err) == 0, "s3: health in virtual-hosted style");
	if (inst)
		m->sp->life.destroy(inst);
	if (pinst)
		m->sp->life.destroy(pinst);
}

/* ---- offline unit tests ---------------------------------------------------------- */

static void unit_urls(void)
{
	struct {
		const char *cfg, *key, *want;
		int variant;
	} v[] = {
	    {"{\"bucket\": \"bk1\", \"region\": \"eu-west-1\"}", "k/x.bin",
	     "https://bk1.s3.eu-west-1.amazonaws.com/k/x.bin", S3_VARIANT_AWS},
	    {"{\"bucket\": \"bk1\"}", "k", "https://bk1.s3.us-east-1.amazonaws.com/k",
	     S3_VARIANT_AWS},
	    {"{\"bucket\": \"bk1\", \"region\": \"eu-west-1\", \"path_style\": true}", "k",
	     "https://s3.eu-west-1.amazonaws.com/bk1/k", S3_VARIANT_AWS},
	    {"{\"bucket\": \"bk1\", \"endpoint\": \"http://s3.localhost:9000/\"}", "k",
	     "http://bk1.s3.localhost:9000/k", S3_VARIANT_AWS},
	    {"{\"bucket\": \"bk1\", \"endpoint\": \"http://minio:9000\", \"prefix\": \"tenant\"}",
	     "k", "http://minio:9000/bk1/tenant/k", S3_VARIANT_MINIO},
	    {"{\"bucket\": \"bk1\", \"region\": \"eu-west-1\"}", NULL,
	     "https://bk1.s3.eu-west-1.amazonaws.com/", S3_VARIANT_AWS},
	    {"{\"bucket\": \"bk1\", \"endpoint\": \"http://minio:9000\"}", NULL,
	     "http://minio:9000/bk1", S3_VARIANT_MINIO},
	};

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		json_t *cfg = json_loads(v[i].cfg, 0, NULL);
		struct s3 *s = NULL;
		sbx_err err = {0};
		char *url = NULL, *full = NULL;

		json_object_set_new(cfg, "access_key", json_string("AK"));
		json_object_set_new(cfg, "secret_key", json_string("SK"));
		if (s3c_create(core, "unit", cfg, v[i].variant, (void **)&s, &err) == 0) {
			if (v[i].key) {
				full = malloc(strlen(s->prefix) + strlen(v[i].key) + 1);
				strcpy(full, s->prefix);
				strcat(full, v[i].key);
			}
			url = s3_url(s, full);
		}
		ok(url && strcmp(url, v[i].want) == 0, "unit: %s %s -> %s (%s)",
		   v[i].variant == S3_VARIANT_AWS ? "s3" : "minio", v[i].cfg, v[i].want,
		   url ? url : err.message);
		free(url);
		free(full);
		s3c_destroy(s);
		json_decref(cfg);
	}
}

/* AWS's published examples: the signing key of the SigV4 documentation and the presigned
 * GET of "Authenticating Requests: Using Query Parameters" (examplebucket, test.txt). */
static void unit_sigv4(void)
{
	const char *want_key = "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d";
	const char *want_sig = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
	unsigned char k[32];
	char hex[65];
	json_t *cfg;
	struct s3 *s = NULL;
	sbx_err err = {0};
	char *url = NULL;
	int ret;

	s3_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam",
		       k);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", k[i]);
	ok(strcmp(hex, want_key) == 0, "unit: SigV4 signing key matches AWS's example (%s)", hex);

	cfg = json_pack("{s:s, s:s, s:s, s:s}", "bucket", "examplebucket", "endpoint",
			"https://s3.amazonaws.com", "access_key", "AKIAIOSFODNN7EXAMPLE",
			"secret_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	ret = s3c_create(core, "unit", cfg, S3_VARIANT_AWS, (void **)&s, &err);
	if (ret == 0)
		ret = s3_presign_at(s, "test.txt", 86400, 1369353600 /* 2013-05-24T00:00:00Z */,
				    &url, &err);
	ok(ret == 0 && url &&
	       strncmp(url, "https://examplebucket.s3.amazonaws.com/test.txt?", 48) == 0 &&
	       strstr(url, "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%"
			   "2Faws4_request") &&
	       strstr(url, "X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"),
	   "unit: the presigned URL has AWS's example query: %s", url ? url : err.message);
	ok(url && strstr(url, want_sig), "unit: ... and AWS's example signature %s", want_sig);
	free(url);
	url = NULL;
	ok(s && s3_presign_at(s, "test.txt", 604801, 1369353600, &url, &err) == -SBX_E_INVALID,
	   "unit: a ttl over 7 days is refused");
	s3c_destroy(s);
	json_decref(cfg);

	/* minio requires an endpoint; path_style is an s3-only key. */
	cfg = json_pack("{s:s, s:s, s:s}", "bucket", "bk1", "access_key", "A", "secret_key", "S");
	s = NULL;
	ok(s3c_create(core, "unit", cfg, S3_VARIANT_MINIO, (void **)&s, &err) == -SBX_E_INVALID &&
	       strstr(err.message, "'endpoint' is required"),
	   "unit: minio without endpoint is refused naming it");
	json_object_set_new(cfg, "endpoint", json_string("http://m:9000"));
	json_object_set_new(cfg, "path_style", json_false());
	ok(s3c_create(core, "unit", cfg, S3_VARIANT_MINIO, (void **)&s, &err) == -SBX_E_INVALID &&
	       strstr(err.message, "'path_style'"),
	   "unit: minio refuses path_style (always path style)");
	json_decref(cfg);
}

/* ---- main ------------------------------------------------------------------------ */

static int open_mod(struct mod *m)
{
	char path[4200], errbuf[256];
	const char *tb = getenv("top_builddir");

	snprintf(path, sizeof path, "%s/plugins/storage/%s/storage_%s.la", tb ? tb : ".", m->name,
		 m->name);
	if (fakecore_module_open(path, SBX_KIND_STORAGE, sizeof(struct sbx_storage_plugin), &m->fm,
				 errbuf, sizeof errbuf) != 0) {
		ok(0, "open %s: %s", path, errbuf);
		return -1;
	}
	m->sp = (const struct sbx_storage_plugin *)m->fm.hdr;
	ok(strcmp(m->sp->hdr.name, m->name) == 0 && m->sp->presign_get && m->sp->health,
	   "module storage_%s loads with presign_get and health", m->name);
	return 0;
}

/* Every error message, and everything the modules logged, is free of the secrets. */
static void check_secrets(void)
{
	const char *secrets[] = {sk, wrong_sk, file_sk, "session-token-abc"};
	char *logtext = NULL;
	size_t cap = 0, n = 0;
	int clean_msgs = 1, clean_log = 1;
	FILE *f = fopen(logpath, "r");

	if (f) {
		char buf[65536];
		size_t r;

		while ((r = fread(buf, 1, sizeof buf, f)) > 0) {
			logtext = realloc(logtext, cap = n + r + 1);
			memcpy(logtext + n, buf, r);
			n += r;
			logtext[n] = '\0';
		}
		fclose(f);
	}
	for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
		for (size_t j = 0; j < json_array_size(messages); j++)
			if (strstr(json_string_value(json_array_get(messages, j)), secrets[i]))
				clean_msgs = 0;
		if (logtext && strstr(logtext, secrets[i]))
			clean_log = 0;
	}
	ok(clean_msgs && json_array_size(messages) > 20,
	   "no secret appears in any of the %zu error messages", json_array_size(messages));
	ok(clean_log && n > 0, "no secret appears in the %zu bytes the modules logged", n);
	if (logtext)
		fputs(logtext, stderr);
	free(logtext);
}

int main(int argc, char **argv)
{
	int saved_err, logfd;

	(void)argc;
	(void)argv;
	core = fakecore_api();
	messages = json_array();
	endpoint = getenv("S3_TEST_ENDPOINT");
	lax_endpoint = getenv("S3_TEST_LAX_ENDPOINT");
	bucket = getenv("S3_TEST_BUCKET");
	ak = getenv("S3_TEST_ACCESS_KEY");
	sk = getenv("S3_TEST_SECRET_KEY");

	unit_urls();
	unit_sigv4();
	if (!endpoint || !lax_endpoint || !bucket || !ak || !sk) {
		diag("S3_TEST_* not set: offline unit tests only");
		fakecore_cleanup();
		return tap_done();
	}
	/* Capture what the modules log (stderr) to check it for secrets at the end. */
	snprintf(logpath, sizeof logpath, "%s/modules.log", fakecore_data_dir());
	fflush(stderr);
	saved_err = dup(2);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	dup2(logfd, 2);
	close(logfd);

	for (int i = 0; i < 2; i++)
		if (open_mod(&mods[i]) != 0)
			goto done;
	for (int i = 0; i < 2; i++)
		run_suite(&mods[i]);
	test_bootstrap(&mods[0]);
	test_vhost_routing(&mods[1]);
	fflush(stderr);
	dup2(saved_err, 2);
	check_secrets();
done:
	for (int i = 0; i < 2; i++)
		if (mods[i].sp)
			fakecore_module_close(&mods[i].fm);
	json_decref(messages);
	fakecore_cleanup();
	return tap_done();
}
