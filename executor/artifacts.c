/*
 * An execution's artifacts: the regular files of the workspace it created or changed, found by
 * comparing a snapshot (path -> size, mtime, inode) taken before the handler starts with one
 * taken after its leftover processes were killed; each reported with SHA-256 and a mime type.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "executor.h"

#define WALK_ENTRIES   100000        /* directory entries looked at per walk */
#define WALK_MS        2000.0        /* and time spent per walk */
#define HASH_FILE_MAX  (64ull << 20) /* larger files get "sha256": null */
#define HASH_TOTAL_MAX (1ull << 30)  /* bytes hashed per execution, then null too */

struct file_rec {
	char *path;
	off_t size;
	long long mtime_ns, ctime_ns;
	ino_t ino;
};

struct snapshot {
	struct file_rec *v;
	size_t n, cap;
	int incomplete;       /* the walk hit its budget or failed */
	long long started_ns; /* coarse wall clock (the clock of file times) at the walk's start */
};

static const struct {
	const char *ext, *type;
} mime_table[] = {
    {"txt", "text/plain"},      {"log", "text/plain"},      {"json", "application/json"},
    {"csv", "text/csv"},        {"html", "text/html"},      {"htm", "text/html"},
    {"png", "image/png"},       {"jpg", "image/jpeg"},      {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},       {"svg", "image/svg+xml"},   {"pdf", "application/pdf"},
    {"py", "text/x-python"},    {"js", "text/javascript"},  {"sh", "application/x-sh"},
    {"md", "text/markdown"},    {"zip", "application/zip"}, {"tar", "application/x-tar"},
    {"gz", "application/gzip"},
};

int artifacts_init(void)
{
	/* the bundle's libcrypto must not read the image's openssl.cnf (it may name providers
	 * built against another libcrypto); SHA-256 needs only the built-in default provider */
	return OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) == 1 ? 0 : -1;
}

static const char *mime_type(const char *path)
{
	const char *base = strrchr(path, '/'), *dot;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	if (dot && dot != base) {
		for (size_t i = 0; i < sizeof(mime_table) / sizeof(mime_table[0]); i++)
			if (strcasecmp(dot + 1, mime_table[i].ext) == 0)
				return mime_table[i].type;
	}
	return "application/octet-stream";
}

static long long ns(const struct timespec *ts)
{
	return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static int add_file(void *arg, const char *rel, const struct stat *st)
{
	struct snapshot *s = arg;

	if (!S_ISREG(st->st_mode))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct file_rec *nv = realloc(s->v, cap * sizeof(*nv));
		if (!nv)
			return -1;
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n].path = strdup(rel);
	if (!s->v[s->n].path)
		return -1;
	s->v[s->n].size = st->st_size;
	s->v[s->n].mtime_ns = ns(&st->st_mtim);
	s->v[s->n].ctime_ns = ns(&st->st_ctim);
	s->v[s->n].ino = st->st_ino;
	s->n++;
	return 0;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct file_rec *)a)->path, ((const struct file_rec *)b)->path);
}

static void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].path);
	free(s->v);
	free(s);
}

static struct snapshot *take(struct ctx *c)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	struct timespec ts;

	if (!s)
		return NULL;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	s->started_ns = ns(&ts);
	s->incomplete = walk_workspace(c, WALK_ENTRIES, WALK_MS, add_file, s) != 0;
	if (s->n > 1) /* an empty workspace has no array: qsort(NULL) is undefined */
		qsort(s->v, s->n, sizeof(*s->v), by_path);
	return s;
}

struct snapshot *artifacts_snapshot(struct ctx *c)
{
	return c->max_artifacts ? take(c) : NULL;
}

/* hex SHA-256 of the file, or NULL (too big, over the budget, unreadable); *st its fstat */
static json_t *sha256_of(struct ctx *c, const char *rel, struct stat *st, uint64_t *budget)
{
	unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned int mdlen = 0;
	EVP_MD_CTX *h = NULL;
	json_t *out = NULL;
	ssize_t n;
	int fd = walk_open(c, rel, O_RDONLY | O_NONBLOCK);

	if (fd < 0)
		return NULL;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode))
		goto out;
	out = json_null();
	if ((uint64_t)st->st_size > HASH_FILE_MAX || (uint64_t)st->st_size > *budget)
		goto out;
	*budget -= (uint64_t)st->st_size;
	h = EVP_MD_CTX_new();
	if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1)
		goto out;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		if (EVP_DigestUpdate(h, buf, (size_t)n) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(h, md, &mdlen) != 1)
		goto out;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	json_decref(out);
	out = json_string(hex);
out:
	EVP_MD_CTX_free(h);
	close(fd);
	return out;
}

static int changed(const struct snapshot *before, const struct file_rec *f)
{
	const struct file_rec *old =
	    before->n ? bsearch(f, before->v, before->n, sizeof(*f), by_path) : NULL;

	if (old)
		return old->size != f->size || old->mtime_ns != f->mtime_ns || old->ino != f->ino;
	/* not seen before: new, unless the first walk stopped short and the file's inode has
	 * not changed since it started (then it may just have been beyond the budget) */
	return !before->incomplete || f->ctime_ns >= before->started_ns;
}

void artifacts_report(struct ctx *c, struct snapshot *before, json_t *result)
{
	struct snapshot *after = NULL;
	json_t *list = json_array();
	uint64_t budget = HASH_TOTAL_MAX;
	int truncated = 0;

	if (!c->max_artifacts)
		goto out;
	after = before ? take(c) : NULL;
	if (!after) {
		truncated = 1; /* out of memory: say the list is incomplete */
		goto out;
	}
	truncated = before->incomplete || after->incomplete;
	for (size_t i = 0; i < after->n; i++) {
		struct file_rec *f = &after->v[i];
		struct stat st;
		json_t *sum;

		if (!changed(before, f))
			continue;
		if (json_array_size(list) >= c->max_artifacts) {
			truncated = 1;
			break;
		}
		sum = sha256_of(c, f->path, &st, &budget);
		if (!sum)
			continue; /* gone, or no longer a regular file: deleted files are not
				     artifacts */
		json_array_append_new(list,
				      json_pack("{s:s, s:I, s:s, s:o, s:f}", "path", f->path,
						"size", (json_int_t)st.st_size, "mime_type",
						mime_type(f->path), "sha256", sum, "modified_time",
						st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9));
	}
out:
	json_object_set_new(result, "artifacts", list);
	json_object_set_new(result, "artifacts_truncated", json_boolean(truncated));
	snapshot_free(before);
	snapshot_free(after);
}
