/*
 * storage/local: objects as regular files under one directory. A key's '/' separated
 * components are directories; every path is resolved component by component from the
 * root with O_NOFOLLOW, so symbolic links planted inside the directory are never followed.
 *
 * Layout: <dir>/<key> is the object; its content type is the extended attribute
 * "user.sbx.content_type" on that file (set before the rename, so it appears atomically
 * with the data). Temporary files are "<dir>/<key's directory>/.tmp#<hex>": '#' is not a
 * key character, so they can never collide with or be listed as objects.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <jansson.h>

#include <sandbox/core.h>
#include <sandbox/storage.h>

#define KEY_MAX    1024
#define IO_CHUNK   (256 * 1024)
#define CT_XATTR   "user.sbx.content_type"
#define CT_MAX     255
#define TMP_PREFIX ".tmp#"

struct lst {
	const struct sbx_core_api *core;
	char *name;
	char *dir;  /* absolute root directory */
	int rootfd; /* O_DIRECTORY fd on dir, for the instance's lifetime */
	int fsync;  /* fsync data and directories on put */
};

static int key_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '/' || c == '-';
}

/*
 * storage.h rules: 1..1024 bytes of [A-Za-z0-9._/-], no "..", no leading '/'. We also
 * refuse empty and "." components ("a//b", "a/./b") and, for keys, a trailing '/': none
 * of them can name a distinct file. A prefix may end in '/' or in part of a component.
 */
static int key_check(const char *key, int is_prefix, sbx_err *err)
{
	return sbx_storage_key_check(key, is_prefix, err);
}

/*
 * Opens the directory that holds the last component of `key` (which may be "" when key
 * ends in '/'), walking from the root with O_NOFOLLOW; with `create`, missing directories
 * are made. Returns an fd the caller closes, and *leaf points into key; or -errno
 * (ELOOP: a component is a symbolic link; ENOTDIR: a component is an object).
 */
static int open_parent(struct lst *s, const char *key, int create, const char **leaf)
{
	char comp[KEY_MAX + 1];
	const char *p = key, *slash;
	int fd, nfd;

	fd = fcntl(s->rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while ((slash = strchr(p, '/')) != NULL) {
		size_t n = (size_t)(slash - p);

		memcpy(comp, p, n);
		comp[n] = '\0';
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
				nfd = -errno;
				close(fd);
				return nfd;
			}
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			struct stat st;

			nfd = -errno;
			/* O_DIRECTORY|O_NOFOLLOW on a link says ENOTDIR: report it as a link. */
			if (nfd == -ENOTDIR && fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				nfd = -ELOOP;
			close(fd);
			return nfd;
		}
		close(fd);
		fd = nfd;
		p = slash + 1;
	}
	*leaf = p;
	return fd;
}

static int errno_status(int e, sbx_err *err, const char *what, const char *key)
{
	int code;

	switch (e) {
	case ENOENT:
		code = SBX_E_NOTFOUND;
		break;
	case ENOSPC:
	case EDQUOT:
		code = SBX_E_LIMIT;
		break;
	case ELOOP:
		return sbx_err_set(err, SBX_E_INVALID,
				   "storage key '%s' crosses a symbolic link, which is never "
				   "followed",
				   key);
	case ENOTDIR:
	case EISDIR:
	case ENOTEMPTY:
		return sbx_err_set(err, SBX_E_CONFLICT,
				   "storage key '%s' clashes with another object's path (%s)", key,
				   strerror(e));
	case EACCES:
	case EPERM:
	case EROFS:
	case EIO:
		code = SBX_E_UNAVAILABLE;
		break;
	default:
		code = SBX_E_INTERNAL;
	}
	return sbx_err_set(err, code, "storage: %s '%s': %s", what, key, strerror(e));
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

/* Writes the body to a temporary file beside the target, then renames it over the
 * target: readers see the old object or the whole new one. Any worker thread. */
static int put(void *inst, const char *key, sbx_read_fn read_fn, void *read_ctx, long long size,
	       const char *content_type, sbx_err *err)
{
	struct lst *s = inst;
	char tmp[64] = "";
	unsigned char rnd[8];
	const char *leaf = NULL;
	char *buf = NULL;
	long long total = 0;
	int pfd = -1, fd = -1, ret, e, created = 0;

	ret = key_check(key, 0, err);
	if (ret < 0)
		goto out;
	if (!read_fn || size < -1) {
		ret = sbx_err_set(err, SBX_E_INVALID, "put '%s': no reader or bad size", key);
		goto out;
	}
	if (content_type && strlen(content_type) > CT_MAX) {
		ret = sbx_err_set(err, SBX_E_INVALID, "put '%s': content type longer than %d", key,
				  CT_MAX);
		goto out;
	}
	buf = malloc(IO_CHUNK);
	if (!buf) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	/* Twice: a concurrent del_prefix may remove the directory between walk and create. */
	for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
		if (pfd >= 0)
			close(pfd);
		pfd = open_parent(s, key, 1, &leaf);
		if (pfd < 0) {
			ret = errno_status(-pfd, err, "creating the directories of", key);
			goto out;
		}
		if (s->core->random_bytes(rnd, sizeof rnd) < 0) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "no random bytes for a temp name");
			goto out;
		}
		snprintf(tmp, sizeof tmp, TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
			 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
		fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		e = errno;
		created = fd >= 0;
		if (fd < 0 && (e != ENOENT || attempt == 1)) {
			ret = errno_status(e, err, "creating a temporary file for", key);
			goto out;
		}
	}
	while (size < 0 || total < size) {
		size_t want = IO_CHUNK;
		long n;

		if (size >= 0 && (unsigned long long)(size - total) < want)
			want = (size_t)(size - total);
		n = read_fn(read_ctx, buf, want);
		if (n < 0 || (size_t)n > want) {
			ret = sbx_err_set(err, SBX_E_INTERNAL,
					  "put '%s': reading the body failed after %lld bytes", key,
					  total);
			goto out;
		}
		if (n == 0) {
			if (size >= 0) {
				ret = sbx_err_set(err, SBX_E_INVALID,
						  "put '%s': body ended after %lld of %lld bytes",
						  key, total, size);
				goto out;
			}
			break;
		}
		e = write_all(fd, buf, (size_t)n);
		if (e < 0) {
			ret = errno_status(-e, err, "writing", key);
			goto out;
		}
		total += n;
	}
	if (content_type && *content_type &&
	    fsetxattr(fd, CT_XATTR, content_type, strlen(content_type), 0) < 0) {
		if (errno == ENOTSUP)
			s->core->log(s->name, SBX_LOG_WARN,
				     "event=storage_no_xattr dir=%s note=content type not kept",
				     s->dir);
		else {
			ret = errno_status(errno, err, "setting the content type of", key);
			goto out;
		}
	}
	if (s->fsync && fsync(fd) < 0) {
		ret = errno_status(errno, err, "syncing", key);
		goto out;
	}
	e = close(fd);
	fd = -1;
	if (e < 0) {
		ret = errno_status(errno, err, "closing", key);
		goto out;
	}
	if (renameat(pfd, tmp, pfd, leaf) < 0) {
		ret = errno_status(errno, err, "renaming into place", key);
		goto out;
	}
	created = 0;
	if (s->fsync && fsync(pfd) < 0) {
		ret = errno_status(errno, err, "syncing the directory of", key);
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlinkat(pfd, tmp, 0);
	if (pfd >= 0)
		close(pfd);
	free(buf);
	return ret;
}

/* Opens object `key` read-only without following links; a non-regular file, a missing
 * one or a path through a symbolic link is SBX_E_NOTFOUND. Returns an fd or <0. */
static int open_object(struct lst *s, const char *key, struct stat *st, sbx_err *err)
{
	const char *leaf;
	int pfd, fd = -1, ret;

	ret = key_check(key, 0, err);
	if (ret < 0)
		goto out;
	pfd = open_parent(s, key, 0, &leaf);
	if (pfd < 0) {
		ret = -pfd;
		goto notfound;
	}
	fd = openat(pfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	ret = errno;
	close(pfd);
	if (fd < 0)
		goto notfound;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		ret = EISDIR;
		goto notfound;
	}
	ret = fd;
	fd = -1;
	goto out;
notfound:
	if (ret == ENOENT || ret == ENOTDIR || ret == ELOOP || ret == EISDIR)
		ret = sbx_err_set(err, SBX_E_NOTFOUND, "object '%s' not found%s", key,
				  ret == ELOOP ? " (symbolic links are not followed)" : "");
	else
		ret = errno_status(ret, err, "opening", key);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int get(void *inst, const char *key, sbx_write_fn write_fn, void *write_ctx, sbx_err *err)
{
	struct lst *s = inst;
	struct stat st;
	char *buf = NULL;
	int fd, ret = 0;

	fd = open_object(s, key, &st, err);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	buf = malloc(IO_CHUNK);
	if (!buf || !write_fn) {
		ret = sbx_err_set(err, SBX_E_INTERNAL,
				  buf ? "get without a writer" : "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, IO_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = errno_status(errno, err, "reading", key);
			goto out;
		}
		if (n == 0)
			break;
		if (write_fn(write_ctx, buf, (size_t)n) < 0) {
			ret =
			    sbx_err_set(err, SBX_E_INTERNAL, "get '%s': the receiver aborted", key);
			goto out;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/* Builds the meta object of an open object file. New reference, or NULL. */
static json_t *meta_of(int fd, const struct stat *st, const char *key)
{
	char ct[CT_MAX + 1], etag[64];
	ssize_t n;
	json_t *m;

	snprintf(etag, sizeof etag, "%llx-%llx-%llx", (unsigned long long)st->st_ino,
		 (unsigned long long)st->st_size,
		 (unsigned long long)st->st_mtim.tv_sec * 1000000000ull +
		     (unsigned long long)st->st_mtim.tv_nsec);
	m = json_pack(
	    "{s:s, s:I, s:I, s:s}", "key", key, "size", (json_int_t)st->st_size, "modified_at",
	    (json_int_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000, "etag", etag);
	n = fgetxattr(fd, CT_XATTR, ct, CT_MAX);
	if (m && n > 0) {
		ct[n] = '\0';
		json_object_set_new(m, "content_type", json_string(ct));
	}
	return m;
}

static int head(void *inst, const char *key, json_t **meta, sbx_err *err)
{
	struct lst *s = inst;
	struct stat st;
	int fd, ret = 0;

	fd = open_object(s, key, &st, err);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	*meta = meta_of(fd, &st, key);
	if (!*meta)
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	close(fd);
out:
	return ret;
}

/* ---- directory walks (list, del_prefix) ---------------------------------------- */

struct entry {
	char *sortkey; /* name, plus "/" for a directory: sorts like the full keys */
	int is_dir;
};

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->sortkey, ((const struct entry *)b)->sortkey);
}

static int name_ok(const char *n)
{
	if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
		return 0;
	for (; *n; n++)
		if (!key_char((unsigned char)*n) || *n == '/')
			return 0;
	return 1;
}

/* Reads directory dfd (borrowed): the entries that could be keys and start with `match`
 * (NULL: all), sorted in key order. Symbolic links and other file types are skipped. */
static int read_entries(int dfd, const char *match, struct entry **out, size_t *count)
{
	struct entry *v = NULL;
	size_t n = 0, cap = 0, mlen = match ? strlen(match) : 0;
	struct dirent *de;
	DIR *dp;
	int fd, ret = 0;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dp = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dp) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		goto out;
	}
	while ((de = readdir(dp)) != NULL) {
		int is_dir;

		if (!name_ok(de->d_name) || (match && strncmp(de->d_name, match, mlen) != 0))
			continue;
		if (de->d_type == DT_DIR || de->d_type == DT_REG) {
			is_dir = de->d_type == DT_DIR;
		} else if (de->d_type == DT_UNKNOWN) {
			struct stat st;

			if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
				continue;
			is_dir = S_ISDIR(st.st_mode);
		} else {
			continue;
		}
		if (n == cap) {
			struct entry *nv;

			cap = cap ? cap * 2 : 32;
			nv = realloc(v, cap * sizeof *v);
			if (!nv) {
				ret = -ENOMEM;
				goto out;
			}
			v = nv;
		}
		v[n].is_dir = is_dir;
		v[n].sortkey = malloc(strlen(de->d_name) + 2);
		if (!v[n].sortkey) {
			ret = -ENOMEM;
			goto out;
		}
		strcpy(v[n].sortkey, de->d_name);
		if (is_dir)
			strcat(v[n].sortkey, "/");
		n++;
	}
	if (n > 1)
		qsort(v, n, sizeof *v, entry_cmp);
out:
	if (dp)
		closedir(dp);
	if (ret < 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i].sortkey);
		free(v);
		v = NULL;
		n = 0;
	}
	*out = v;
	*count = n;
	return ret;
}

static void free_entries(struct entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].sortkey);
	free(v);
}

struct listing {
	const char *cursor; /* NULL or the last key of the previous page */
	size_t want;        /* limit + 1: one more tells whether there is a next page */
	json_t *items;
	char key[KEY_MAX + 2]; /* the key of the directory being walked, ending in '/' */
};

/* Appends objects of directory dfd (key prefix L->key[0..klen)) in key order. */
static int list_dir(struct listing *L, int dfd, size_t klen, const char *match)
{
	struct entry *v = NULL;
	size_t n = 0;
	int ret;

	ret = read_entries(dfd, match, &v, &n);
	for (size_t i = 0; ret == 0 && i < n && json_array_size(L->items) < L->want; i++) {
		size_t elen = strlen(v[i].sortkey);
		struct stat st;
		int fd;

		if (klen + elen > KEY_MAX)
			continue;
		memcpy(L->key + klen, v[i].sortkey, elen + 1);
		if (v[i].is_dir) {
			/* Skip a subtree whose every key sorts at or before the cursor. */
			if (L->cursor && strncmp(L->key, L->cursor, klen + elen) != 0 &&
			    strcmp(L->key, L->cursor) < 0)
				continue;
			v[i].sortkey[elen - 1] = '\0';
			fd = openat(dfd, v[i].sortkey,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				continue; /* removed meanwhile, or replaced by a link */
			ret = list_dir(L, fd, klen + elen, NULL);
			close(fd);
			continue;
		}
		if (L->cursor && strcmp(L->key, L->cursor) <= 0)
			continue;
		fd = openat(dfd, v[i].sortkey, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue; /* deleted meanwhile */
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
			json_t *m = meta_of(fd, &st, L->key);

			if (!m || json_array_append_new(L->items, m) != 0)
				ret = -ENOMEM;
		}
		close(fd);
	}
	L->key[klen] = '\0';
	free_entries(v, n);
	return ret;
}

static int list(void *inst, const char *prefix, const char *cursor, int limit, json_t **page,
		sbx_err *err)
{
	struct lst *s = inst;
	struct listing L = {.cursor = cursor};
	const char *leaf = "";
	size_t dlen = 0;
	int dfd = -1, ret = 0;

	if (prefix && *prefix) {
		ret = key_check(prefix, 1, err);
		if (ret < 0)
			goto out;
	} else {
		prefix = "";
	}
	if (limit < 1 || limit > 1000) {
		ret = sbx_err_set(err, SBX_E_INVALID, "list limit must be 1..1000, not %d", limit);
		goto out;
	}
	if (cursor && strlen(cursor) > KEY_MAX) {
		ret = sbx_err_set(err, SBX_E_INVALID, "list cursor is not a key");
		goto out;
	}
	L.want = (size_t)limit + 1;
	L.items = json_array();
	if (!L.items || !page) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory or no output page");
		goto out;
	}
	dfd = open_parent(s, prefix, 0, &leaf);
	if (dfd >= 0) {
		dlen = (size_t)(leaf - prefix);
		memcpy(L.key, prefix, dlen);
		L.key[dlen] = '\0';
		ret = list_dir(&L, dfd, dlen, *leaf ? leaf : NULL);
		if (ret < 0) {
			ret = errno_status(-ret, err, "listing", prefix);
			goto out;
		}
	} else if (dfd != -ENOENT && dfd != -ENOTDIR && dfd != -ELOOP) {
		ret = errno_status(-dfd, err, "listing", prefix);
		goto out;
	}
	*page = json_object();
	if (json_array_size(L.items) > (size_t)limit) {
		json_array_remove(L.items, (size_t)limit);
		json_object_set(*page, "next",
				json_object_get(json_array_get(L.items, (size_t)limit - 1), "key"));
	}
	json_object_set(*page, "items", L.items);
out:
	if (dfd >= 0)
		close(dfd);
	json_decref(L.items);
	return ret;
}

static int del(void *inst, const char *key, sbx_err *err)
{
	struct lst *s = inst;
	const char *leaf;
	int pfd, ret;

	ret = key_check(key, 0, err);
	if (ret < 0)
		goto out;
	pfd = open_parent(s, key, 0, &leaf);
	if (pfd < 0) {
		/* Nothing can be stored at a key whose directories are missing or links. */
		if (pfd != -ENOENT && pfd != -ENOTDIR && pfd != -ELOOP)
			ret = errno_status(-pfd, err, "deleting", key);
		goto out;
	}
	if (unlinkat(pfd, leaf, 0) < 0 && errno != ENOENT && errno != EISDIR)
		ret = errno_status(errno, err, "deleting", key);
	close(pfd);
out:
	return ret;
}

/* Removes the objects of dfd that start with match (NULL: all, and then the emptied
 * directories too). Temporary files of puts in progress are left alone. */
static int del_dir(int dfd, const char *match)
{
	struct entry *v = NULL;
	size_t n = 0;
	int ret;

	ret = read_entries(dfd, match, &v, &n);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		size_t elen = strlen(v[i].sortkey);

		if (v[i].is_dir) {
			int fd;

			v[i].sortkey[elen - 1] = '\0';
			fd = openat(dfd, v[i].sortkey,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				continue;
			ret = del_dir(fd, NULL);
			close(fd);
			if (ret == 0 && unlinkat(dfd, v[i].sortkey, AT_REMOVEDIR) < 0 &&
			    errno != ENOTEMPTY && errno != ENOENT && errno != EEXIST)
				ret = -errno;
		} else if (unlinkat(dfd, v[i].sortkey, 0) < 0 && errno != ENOENT) {
			ret = -errno;
		}
	}
	free_entries(v, n);
	return ret;
}

static int del_prefix(void *inst, const char *prefix, sbx_err *err)
{
	struct lst *s = inst;
	const char *leaf;
	int dfd = -1, ret;

	ret = key_check(prefix, 1, err);
	if (ret < 0)
		goto out;
	dfd = open_parent(s, prefix, 0, &leaf);
	if (dfd < 0) {
		if (dfd != -ENOENT && dfd != -ENOTDIR && dfd != -ELOOP)
			ret = errno_status(-dfd, err, "deleting under", prefix);
		goto out;
	}
	ret = del_dir(dfd, *leaf ? leaf : NULL);
	if (ret < 0)
		ret = errno_status(-ret, err, "deleting under", prefix);
out:
	if (dfd >= 0)
		close(dfd);
	return ret;
}

/* Writes, syncs and removes a probe file in the root. */
static int health(void *inst, json_t **detail, sbx_err *err)
{
	struct lst *s = inst;
	char name[64];
	unsigned char rnd[8];
	struct statvfs vfs;
	int fd = -1, ret = 0;

	if (s->core->random_bytes(rnd, sizeof rnd) < 0) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "no random bytes");
		goto out;
	}
	snprintf(name, sizeof name, TMP_PREFIX "health-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
		 rnd[3]);
	fd = openat(s->rootfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, "ok", 2) < 0 || fsync(fd) < 0) {
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE,
				  "storage directory '%s' is not writable: %s", s->dir,
				  strerror(errno));
		goto out;
	}
	if (detail) {
		*detail = json_pack("{s:s}", "dir", s->dir);
		if (*detail && fstatvfs(s->rootfd, &vfs) == 0)
			json_object_set_new(
			    *detail, "free_bytes",
			    json_integer((json_int_t)vfs.f_bavail * (json_int_t)vfs.f_frsize));
	}
out:
	if (fd >= 0) {
		close(fd);
		unlinkat(s->rootfd, name, 0);
	}
	return ret;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void destroy(void *inst)
{
	struct lst *s = inst;

	if (!s)
		return;
	if (s->rootfd >= 0)
		close(s->rootfd);
	free(s->dir);
	free(s->name);
	free(s);
}

/* mkdir -p for the operator-chosen root (links in the operator's path are fine). */
static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
		  void **inst, sbx_err *err)
{
	struct lst *s;
	const char *dir = NULL, *data_dir;
	int do_fsync = 1, ret = 0, e;
	json_error_t jerr;
	json_t *empty = NULL;

	s = calloc(1, sizeof *s);
	if (!s) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	s->rootfd = -1;
	s->core = core;
	s->name = strdup(instance_name ? instance_name : "local");
	if (!config)
		config = empty = json_object();
	/* jansson's type errors do not name the member: check types first. */
	if (json_is_object(config) &&
	    ((json_object_get(config, "dir") && !json_is_string(json_object_get(config, "dir"))) ||
	     (json_object_get(config, "fsync") &&
	      !json_is_boolean(json_object_get(config, "fsync"))))) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "storage '%s' (local): 'dir' must be a string and 'fsync' a "
				  "boolean",
				  s->name ? s->name : "");
		goto out;
	}
	if (json_unpack_ex((json_t *)config, &jerr, JSON_STRICT, "{s?s, s?b}", "dir", &dir, "fsync",
			   &do_fsync) != 0) {
		ret = sbx_err_set(err, SBX_E_INVALID, "storage '%s' (local): bad config: %s",
				  s->name ? s->name : "", jerr.text);
		goto out;
	}
	s->fsync = do_fsync;
	data_dir = core->data_dir ? core->data_dir() : NULL;
	if (dir && dir[0] == '/') {
		s->dir = strdup(dir);
	} else if (!data_dir) {
		ret = sbx_err_set(err, SBX_E_INVALID, "storage '%s' (local): set an absolute 'dir'",
				  s->name ? s->name : "");
		goto out;
	} else {
		size_t n = strlen(data_dir) + strlen(dir ? dir : "objects") + 2;

		s->dir = malloc(n);
		if (s->dir)
			snprintf(s->dir, n, "%s/%s", data_dir, dir ? dir : "objects");
	}
	if (!s->dir || !s->name) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	e = mkdirs(s->dir);
	if (e == 0) {
		s->rootfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		e = s->rootfd < 0 ? -errno : 0;
	}
	if (e < 0) {
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE,
				  "storage '%s' (local): cannot use directory '%s': %s", s->name,
				  s->dir, strerror(-e));
		goto out;
	}
	core->log(s->name, SBX_LOG_INFO, "event=storage_open dir=%s fsync=%d", s->dir, s->fsync);
	*inst = s;
	s = NULL;
out:
	json_decref(empty);
	destroy(s);
	return ret;
}

static const struct sbx_storage_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_STORAGE, struct sbx_storage_plugin, "local", "1.0.0",
			     "objects as files in a local directory (embedded default)"),
    .life =
	{
	    .create = create,
	    .destroy = destroy,
	},
    .put = put,
    .get = get,
    .head = head,
    .list = list,
    .del = del,
    .del_prefix = del_prefix,
    .presign_get = NULL, /* no URL can reach a local file without credentials */
    .health = health,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
