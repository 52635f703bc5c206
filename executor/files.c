/*
 * The workspace files API: list, read, write (streamed to a temporary file, then renamed)
 * and delete. Every path is resolved by the kernel with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS) from an O_PATH fd of the workspace, so nothing escapes it.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <microhttpd.h>

#include "executor.h"

struct upload {
	int dirfd;
	int fd;
	char tmp[64];
	char base[NAME_MAX + 1];
	char *path;
	uint64_t size;
	unsigned int err_code;
	char err[256];
};

static int beneath(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .mode = (flags & O_CREAT) ? mode : 0,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	do {
		fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	} while (fd < 0 && errno == EAGAIN);
	return fd;
}

static int errno_reply(struct request *rq, const char *path, int err)
{
	switch (err) {
	case EXDEV:
	case ELOOP:
		return http_error(rq, 400, "path '%.256s' escapes the workspace", path);
	case ENOENT:
		return http_error(rq, 404, "'%.256s' does not exist", path);
	case ENOTDIR:
		return http_error(rq, 400, "a parent of '%.256s' is not a directory", path);
	case EISDIR:
		return http_error(rq, 400, "'%.256s' is a directory", path);
	case EACCES:
	case EPERM:
		return http_error(rq, 400, "'%.256s': permission denied", path);
	case ENAMETOOLONG:
		return http_error(rq, 400, "path '%.256s' is too long", path);
	default:
		return http_error(rq, 500, "'%.256s': %s", path, strerror(err));
	}
}

/* NULL if acceptable, otherwise why not */
static const char *check_path(const char *p, int need_file)
{
	const char *s;

	if (!p || (!*p && need_file))
		return "the 'path' parameter is required";
	if (strlen(p) > EXEC_PATH_MAX)
		return "path longer than 4096 bytes";
	if (p[0] == '/')
		return "absolute paths are refused: give a path relative to the workspace";
	for (s = p; *s;) {
		size_t n = strcspn(s, "/");
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return "'..' components are refused";
		s += n;
		while (*s == '/')
			s++;
	}
	if (need_file && p[strlen(p) - 1] == '/')
		return "path names a directory, not a file";
	return NULL;
}

/* splits "a/b/c" into an O_PATH fd of "a/b" (created when mkdirs) and the name "c" */
static int open_parent(struct ctx *c, const char *path, int mkdirs, char *base, int *err)
{
	char *dup = strdup(path), *slash, *comp, *save = NULL;
	char prefix[EXEC_PATH_MAX + 2] = "";
	int fd = -1, next;

	if (!dup) {
		*err = ENOMEM;
		return -1;
	}
	slash = strrchr(dup, '/');
	snprintf(base, NAME_MAX + 1, "%s", slash ? slash + 1 : dup);
	if (strlen(slash ? slash + 1 : dup) > NAME_MAX || !strcmp(base, ".")) {
		*err = ENAMETOOLONG;
		goto out;
	}
	if (slash)
		*slash = 0;
	fd = beneath(c->ws_fd, ".", O_PATH | O_DIRECTORY, 0);
	if (!slash || fd < 0)
		goto out;
	for (comp = strtok_r(dup, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		if (!strcmp(comp, "."))
			continue;
		strcat(prefix, prefix[0] ? "/" : "");
		strcat(prefix, comp);
		next = beneath(c->ws_fd, prefix, O_PATH | O_DIRECTORY, 0);
		if (next < 0 && errno == ENOENT && mkdirs) {
			/* a single name relative to a checked directory fd: no traversal */
			if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST)
				goto fail;
			next = beneath(c->ws_fd, prefix, O_PATH | O_DIRECTORY, 0);
		}
		if (next < 0)
			goto fail;
		close(fd);
		fd = next;
	}
	goto out;
fail:
	*err = errno;
	close(fd);
	fd = -1;
out:
	if (fd < 0 && !*err)
		*err = errno;
	free(dup);
	return fd;
}

static int do_list(struct ctx *c, struct request *rq, const char *path)
{
	const char *lim = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "limit");
	long limit = 1000;
	json_t *files = json_array();
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	if (lim) {
		char *end;
		limit = strtol(lim, &end, 10);
		if (*end || limit < 1 || limit > 10000) {
			json_decref(files);
			return http_error(rq, 400, "limit must be 1..10000");
		}
	}
	fd = beneath(c->ws_fd, *path ? path : ".", O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		json_decref(files);
		return errno_reply(rq, path, errno);
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		json_decref(files);
		return errno_reply(rq, path, errno);
	}
	while ((de = readdir(d)) && (long)json_array_size(files) < limit) {
		char rel[EXEC_PATH_MAX + NAME_MAX + 2];
		const char *type;
		size_t pl = strlen(path);

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		type = S_ISREG(st.st_mode)   ? "file"
		       : S_ISDIR(st.st_mode) ? "dir"
		       : S_ISLNK(st.st_mode) ? "symlink"
					     : "other";
		while (pl && path[pl - 1] == '/')
			pl--;
		snprintf(rel, sizeof(rel), "%.*s%s%s", (int)pl, path, pl ? "/" : "", de->d_name);
		json_array_append_new(
		    files, json_pack("{s:s, s:s, s:I, s:s, s:f}", "name", de->d_name, "path", rel,
				     "size", (json_int_t)st.st_size, "type", type, "modified_time",
				     st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9));
	}
	closedir(d);
	return http_json(rq, 200, json_pack("{s:o}", "files", files));
}

static int do_read(struct ctx *c, struct request *rq, const char *path)
{
	struct MHD_Response *resp;
	struct stat st;
	int fd = beneath(c->ws_fd, path, O_RDONLY, 0);

	if (fd < 0)
		return errno_reply(rq, path, errno);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return http_error(rq, 400, "'%.256s' is %s", path,
				  S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
	}
	resp = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	return http_reply(rq, 200, resp);
}

static int do_delete(struct ctx *c, struct request *rq, const char *path)
{
	char base[NAME_MAX + 1];
	int err = 0, rc, dfd = open_parent(c, path, 0, base, &err);

	if (dfd < 0)
		return errno_reply(rq, path, err);
	rc = unlinkat(dfd, base, 0);
	if (rc < 0 && errno == EISDIR)
		rc = unlinkat(dfd, base, AT_REMOVEDIR);
	err = errno;
	close(dfd);
	if (rc < 0)
		return err == ENOTEMPTY
			   ? http_error(rq, 400, "directory '%.256s' is not empty", path)
			   : errno_reply(rq, path, err);
	return http_json(rq, 200, json_pack("{s:s}", "path", path));
}

void files_upload_free(struct upload *u)
{
	if (!u)
		return;
	if (u->fd >= 0) {
		close(u->fd);
		unlinkat(u->dirfd, u->tmp, 0); /* an aborted upload leaves nothing behind */
	}
	if (u->dirfd >= 0)
		close(u->dirfd);
	free(u->path);
	free(u);
}

static struct upload *upload_begin(struct ctx *c, const char *path)
{
	struct upload *u = calloc(1, sizeof(*u));
	unsigned char rnd[8];
	int err = 0;

	if (!u)
		return NULL;
	u->fd = -1;
	u->dirfd = -1;
	u->path = strdup(path ? path : "");
	if (!path)
		return u; /* refused by the caller */
	u->dirfd = open_parent(c, path, 1, u->base, &err);
	if (u->dirfd < 0) {
		u->err_code = err == EXDEV || err == ELOOP ? 400 : err == ENOTDIR ? 400 : 500;
		snprintf(u->err, sizeof(u->err), "%s",
			 err == EXDEV || err == ELOOP ? "path escapes the workspace"
						      : strerror(err));
		return u;
	}
	{
		/* Writing "through" a symlink is refused rather than silently replacing the link:
		 * the client asked for the file the link names, which may be outside. */
		struct stat st;
		if (fstatat(u->dirfd, u->base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (S_ISLNK(st.st_mode) || S_ISDIR(st.st_mode))) {
			u->err_code = 400;
			snprintf(u->err, sizeof(u->err), "%s",
				 S_ISLNK(st.st_mode)
				     ? "is a symbolic link; uploads do not follow or replace links"
				     : "is a directory");
			return u;
		}
	}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	snprintf(u->tmp, sizeof(u->tmp), ".sbx-upload-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	u->fd =
	    openat(u->dirfd, u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (u->fd < 0) {
		u->err_code = 500;
		snprintf(u->err, sizeof(u->err), "cannot create a file: %s", strerror(errno));
	}
	return u;
}

static void upload_write(struct ctx *c, struct upload *u, const char *data, size_t n)
{
	size_t off = 0;
	ssize_t w;

	if (u->err_code)
		return;
	if (u->size + n > c->max_upload) {
		u->err_code = 413;
		snprintf(u->err, sizeof(u->err), "upload larger than %llu bytes",
			 (unsigned long long)c->max_upload);
		return;
	}
	while (off < n) {
		w = write(u->fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			u->err_code = 500;
			snprintf(u->err, sizeof(u->err), "write failed: %s", strerror(errno));
			return;
		}
		off += (size_t)w;
	}
	u->size += n;
}

static int upload_finish(struct request *rq, struct upload *u)
{
	int err;

	if (u->err_code)
		return u->path[0] ? http_error(rq, u->err_code, "'%.256s': %s", u->path, u->err)
				  : http_error(rq, u->err_code, "%s", u->err);
	if (renameat(u->dirfd, u->tmp, u->dirfd, u->base) < 0) {
		err = errno;
		return errno_reply(rq, u->path, err); /* files_upload_free removes the temp */
	}
	close(u->fd);
	u->fd = -1;
	return http_json(rq, 200,
			 json_pack("{s:s, s:I}", "path", u->path, "size", (json_int_t)u->size));
}

int files_handle(struct ctx *c, struct request *rq, const char *data, size_t *size)
{
	const char *path = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "path");
	int listing = strcmp(rq->url, "/files") == 0;
	const char *why;

	if (strcmp(rq->method, "PUT") == 0 && !listing) {
		/* never reply while body data is pending: errors wait for the end of the body */
		if (!rq->up) {
			why = check_path(path, 1);
			rq->up = upload_begin(c, why ? NULL : path);
			if (!rq->up)
				return MHD_NO;
			if (why) {
				rq->up->err_code = 400;
				snprintf(rq->up->err, sizeof(rq->up->err), "%s", why);
			}
		}
		if (*size) {
			upload_write(c, rq->up, data, *size);
			*size = 0;
			return 0;
		}
		return upload_finish(rq, rq->up);
	}
	if (*size) {
		*size = 0;
		return 0;
	}
	why = check_path(path ? path : "", !listing);
	if (why)
		return http_error(rq, 400, "%s", why);
	if (listing)
		return strcmp(rq->method, "GET") ? http_error(rq, 405, "use GET")
						 : do_list(c, rq, path ? path : "");
	if (strcmp(rq->method, "GET") == 0)
		return do_read(c, rq, path);
	if (strcmp(rq->method, "DELETE") == 0)
		return do_delete(c, rq, path);
	return http_error(rq, 405, "use GET, PUT or DELETE");
}
