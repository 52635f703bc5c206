/*
 * auth/apikey: the keys file. Owns its format ({"version":1,"keys":[records]}), the rules
 * a record must meet, reading it, replacing it atomically and the flock on the sidecar
 * "<keys file>.lock" that serialises writers across processes (daemon and CLI).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugins/auth/apikey/apikey.h"

#define FILE_MAX (64L << 20) /* far above max_keys' worth of records */

static const char *const roles[] = {"admin", "user", "read-only"};
static const char *const quota_keys[] = {"max_sessions",  "max_running_executions", "max_cpu",
					 "max_memory_mb", "requests_per_second",    "burst"};

static int is_lower_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

const char *store_check_tenant(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > TENANT_MAX)
		return "must be 1..64 characters of A-Z a-z 0-9 _ . -";
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return "must be 1..64 characters of A-Z a-z 0-9 _ . -";
	}
	return NULL;
}

const char *store_check_role(const char *s)
{
	for (size_t i = 0; s && i < sizeof roles / sizeof roles[0]; i++)
		if (strcmp(s, roles[i]) == 0)
			return NULL;
	return "must be one of admin, user, read-only";
}

const char *store_check_id(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n != ID_LEN)
		return "must be 16 lowercase hexadecimal characters";
	for (size_t i = 0; i < n; i++)
		if (!is_lower_hex((unsigned char)s[i]))
			return "must be 16 lowercase hexadecimal characters";
	return NULL;
}

/* Names are shown in tables and logs of the CLI: no control characters. */
const char *store_check_name(const char *s)
{
	if (!s)
		return "must be a string";
	if (strlen(s) > NAME_MAX_LEN)
		return "must be at most 200 bytes";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "must not contain control characters";
	return NULL;
}

const char *store_check_quotas(const json_t *q, const char **bad)
{
	const char *key;
	json_t *v;

	*bad = NULL;
	if (!json_is_object(q))
		return "must be an object";
	json_object_foreach ((json_t *)q, key, v) {
		size_t i, n = sizeof quota_keys / sizeof quota_keys[0];

		for (i = 0; i < n && strcmp(key, quota_keys[i]) != 0; i++)
			;
		*bad = key;
		if (i == n)
			return "is not a quota (one of max_sessions, max_running_executions, "
			       "max_cpu, max_memory_mb, requests_per_second, burst)";
		if (!json_is_number(v) || json_number_value(v) < 0)
			return "must be a number >= 0";
	}
	*bad = NULL;
	return NULL;
}

static int check_hash(const char *s)
{
	if (!s || strlen(s) != HASH_LEN || strncmp(s, HASH_PREFIX, 7) != 0)
		return -1;
	for (size_t i = 7; i < HASH_LEN; i++)
		if (!is_lower_hex((unsigned char)s[i]))
			return -1;
	return 0;
}

static int int_or_null(const json_t *v)
{
	return json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= 0);
}

/* One record of the file; NULL when acceptable, else the field and *why. */
static const char *check_record(const json_t *r, const char **why)
{
	const char *bad;
	json_t *q;

	*why = "must be an object";
	if (!json_is_object(r))
		return "";
	*why = "must be a string";
	if (!json_is_string(json_object_get(r, "id")))
		return "id";
	if ((*why = store_check_id(json_string_value(json_object_get(r, "id")))))
		return "id";
	*why = "must be \"sha256:\" and 64 lowercase hexadecimal characters";
	if (check_hash(json_string_value(json_object_get(r, "hash"))) < 0)
		return "hash";
	if ((*why = store_check_tenant(json_string_value(json_object_get(r, "tenant")))))
		return "tenant";
	if ((*why = store_check_role(json_string_value(json_object_get(r, "role")))))
		return "role";
	if (!json_is_null(json_object_get(r, "name")) &&
	    (*why = store_check_name(json_string_value(json_object_get(r, "name")))))
		return "name";
	*why = "must be an integer (ms since the epoch)";
	if (!json_is_integer(json_object_get(r, "created_at")))
		return "created_at";
	*why = "must be an integer (ms since the epoch) or null";
	if (!int_or_null(json_object_get(r, "expires_at")))
		return "expires_at";
	if (!int_or_null(json_object_get(r, "revoked_at")))
		return "revoked_at";
	*why = "must be true or false";
	if (!json_is_boolean(json_object_get(r, "revoked")))
		return "revoked";
	q = json_object_get(r, "quotas");
	if (q && (*why = store_check_quotas(q, &bad)))
		return bad ? bad : "quotas";
	return NULL;
}

static void id_of(const struct stat *st, struct file_id *id)
{
	id->exists = 1;
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mode = st->st_mode;
	id->mtim = st->st_mtim;
	id->ctim = st->st_ctim;
}

int store_stat(const struct apikey *k, struct file_id *id)
{
	struct stat st;

	memset(id, 0, sizeof *id);
	if (stat(k->path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	id_of(&st, id);
	return 0;
}

int store_same(const struct file_id *a, const struct file_id *b)
{
	if (a->exists != b->exists)
		return 0;
	if (!a->exists)
		return 1;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

static int io_error(sbx_err *err, int e, const char *what, const char *path)
{
	return sbx_err_set(err, e == ENOMEM ? SBX_E_INTERNAL : SBX_E_UNAVAILABLE, "%s '%s': %s",
			   what, path, strerror(e));
}

int store_read(const struct apikey *k, json_t **table, struct file_id *id, sbx_err *err)
{
	struct stat st;
	json_error_t jerr;
	json_t *doc = NULL, *keys, *t = NULL, *r;
	char *buf = NULL;
	size_t off = 0, i;
	int fd, ret = 0;

	memset(id, 0, sizeof *id);
	fd = open(k->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		t = json_object();
		goto done;
	}
	if (fd < 0 && errno == ELOOP) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "keys file '%s' is a symbolic link; set keys_file to the real "
				  "file",
				  k->path);
		goto out;
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = io_error(err, errno, "cannot open keys file", k->path);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
		ret =
		    sbx_err_set(err, SBX_E_INVALID,
				"keys file '%s' is not a regular file of at most 64 MiB", k->path);
		goto out;
	}
	id_of(&st, id);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = io_error(err, errno, "cannot read keys file", k->path);
			goto out;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	doc = json_loadb(buf, off, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		ret = sbx_err_set(err, SBX_E_INVALID, "keys file '%s': line %d: %s", k->path,
				  jerr.line, jerr.text);
		goto out;
	}
	if (!json_is_object(doc) || !json_is_integer(json_object_get(doc, "version")) ||
	    json_integer_value(json_object_get(doc, "version")) != 1 ||
	    !json_is_array(json_object_get(doc, "keys"))) {
		ret =
		    sbx_err_set(err, SBX_E_INVALID,
				"keys file '%s' is not {\"version\": 1, \"keys\": [...]}", k->path);
		goto out;
	}
	keys = json_object_get(doc, "keys");
	t = json_object();
	if (!t) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	json_array_foreach (keys, i, r) {
		const char *why = NULL, *field = check_record(r, &why);
		const char *kid;

		if (field) {
			ret = sbx_err_set(err, SBX_E_INVALID, "keys file '%s': keys[%zu]%s%s %s",
					  k->path, i, *field ? "." : "", field, why);
			goto out;
		}
		kid = json_string_value(json_object_get(r, "id"));
		if (json_object_get(t, kid)) {
			ret = sbx_err_set(err, SBX_E_INVALID,
					  "keys file '%s': keys[%zu].id %s appears twice", k->path,
					  i, kid);
			goto out;
		}
		if (json_object_set(t, kid, r) < 0) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
			goto out;
		}
	}
done:
	*table = t;
	t = NULL;
out:
	if (fd >= 0)
		close(fd);
	json_decref(t);
	json_decref(doc);
	free(buf);
	return ret;
}

/* mkdir -p of the directory part of `path` (absolute), mode 0700 for what is created. */
static int mkparents(const char *path)
{
	char *p = strdup(path), *slash;
	int ret = 0;

	if (!p)
		return -ENOMEM;
	slash = strrchr(p, '/');
	if (slash && slash != p) {
		*slash = '\0';
		for (char *q = p + 1; *q && ret == 0; q++) {
			if (*q != '/')
				continue;
			*q = '\0';
			if (mkdir(p, 0700) < 0 && errno != EEXIST)
				ret = -errno;
			*q = '/';
		}
		if (ret == 0 && mkdir(p, 0700) < 0 && errno != EEXIST)
			ret = -errno;
	}
	free(p);
	return ret;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int store_write_file(const struct apikey *k, const char *path, const char *data, size_t len,
		     sbx_err *err)
{
	unsigned char rnd[8];
	char *tmp = NULL, *dir = NULL, *slash;
	size_t n = strlen(path) + 32;
	int fd = -1, dfd = -1, e, ret = 0;

	tmp = malloc(n);
	dir = strdup(path);
	if (!tmp || !dir) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	slash = strrchr(dir, '/');
	if (!slash) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "path '%s' is not absolute", path);
		goto out;
	}
	slash[slash == dir ? 1 : 0] = '\0';
	if (k->core->random_bytes(rnd, sizeof rnd) < 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "no random bytes for a temporary name");
		goto out;
	}
	/* "<path>.tmp-<hex>": beside the target, so rename stays in one filesystem. */
	snprintf(tmp, n, "%s.tmp-%02x%02x%02x%02x%02x%02x%02x%02x", path, rnd[0], rnd[1], rnd[2],
		 rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	e = mkparents(path);
	if (e < 0) {
		ret = io_error(err, -e, "cannot create the directory of", path);
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = io_error(err, errno, "cannot create a temporary file beside", path);
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || (e = write_all(fd, data, len)) < 0 || fsync(fd) < 0) {
		ret = io_error(err, e < 0 ? -e : errno, "cannot write", path);
		goto out;
	}
	e = close(fd);
	fd = -1;
	if (e < 0 || rename(tmp, path) < 0) {
		ret = io_error(err, errno, "cannot replace", path);
		goto out;
	}
	tmp[0] = '\0'; /* renamed: nothing to remove */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		ret = io_error(err, errno, "cannot sync the directory of", path);
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	if (tmp && tmp[0] && ret < 0)
		unlink(tmp);
	if (dfd >= 0)
		close(dfd);
	free(tmp);
	free(dir);
	return ret;
}

int store_write(const struct apikey *k, const json_t *table, struct file_id *id, sbx_err *err)
{
	json_t *doc = NULL, *keys = json_array(), *r;
	const char *kid;
	char *text = NULL;
	int ret, e;

	if (!keys)
		goto oom;
	json_object_foreach ((json_t *)table, kid, r)
		if (json_array_append(keys, r) < 0)
			goto oom;
	doc = json_pack("{s:i, s:o}", "version", 1, "keys", keys);
	keys = NULL;
	text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	if (!text)
		goto oom;
	ret = store_write_file(k, k->path, text, strlen(text), err);
	if (ret == 0 && (e = store_stat(k, id)) < 0)
		ret = io_error(err, -e, "cannot stat keys file", k->path);
	goto out;
oom:
	ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
out:
	free(text);
	json_decref(doc);
	json_decref(keys);
	return ret;
}

int store_lock(const struct apikey *k, int timeout_ms, sbx_err *err)
{
	int64_t deadline = k->core->monotonic_ms() + timeout_ms;
	int fd, e;

	e = mkparents(k->lock_path);
	if (e < 0)
		return io_error(err, -e, "cannot create the directory of", k->lock_path);
	fd = open(k->lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return io_error(err, errno, "cannot open lock file", k->lock_path);
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		struct timespec ts = {0, 2 * 1000 * 1000};

		if (errno != EWOULDBLOCK && errno != EINTR) {
			e = errno;
			close(fd);
			return io_error(err, e, "cannot lock", k->lock_path);
		}
		if (k->core->monotonic_ms() >= deadline) {
			close(fd);
			return sbx_err_set(err, SBX_E_TIMEOUT,
					   "keys file lock '%s' is held by another process for "
					   "more than %d ms; retry",
					   k->lock_path, timeout_ms);
		}
		nanosleep(&ts, NULL);
	}
	return fd;
}

void store_unlock(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}
