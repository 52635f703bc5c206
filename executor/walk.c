/*
 * The workspace walker shared by artifacts and archives: every entry below the workspace, its
 * lstat, never through a symlink (each directory is opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) from the workspace fd), within an entry and time budget.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "executor.h"

int walk_open(struct ctx *c, const char *rel, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY),
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	do {
		fd = (int)syscall(SYS_openat2, c->ws_fd, *rel ? rel : ".", &how, sizeof(how));
	} while (fd < 0 && errno == EAGAIN);
	return fd;
}

/* a stack of directories still to read, as paths relative to the workspace */
struct dirstack {
	char **v;
	size_t n, cap;
};

static int push(struct dirstack *t, const char *path)
{
	char *dup = strdup(path);

	if (!dup)
		return -1;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **nv = realloc(t->v, cap * sizeof(*nv));
		if (!nv) {
			free(dup);
			return -1;
		}
		t->v = nv;
		t->cap = cap;
	}
	t->v[t->n++] = dup;
	return 0;
}

int walk_workspace(struct ctx *c, size_t max_entries, double max_ms, walk_fn fn, void *arg)
{
	struct dirstack t = {0};
	char rel[EXEC_PATH_MAX + 1];
	double t_end = mono_ms() + max_ms;
	size_t seen = 0;
	int rc = 0;

	if (push(&t, "") < 0)
		return -1;
	while (t.n && rc == 0) {
		char *dir = t.v[--t.n];
		struct dirent *de;
		struct stat st;
		DIR *d;
		int fd = walk_open(c, dir, O_RDONLY | O_DIRECTORY);

		/* a directory swapped for a symlink or removed meanwhile is skipped; the root must
		 * open */
		if (fd < 0 || !(d = fdopendir(fd))) {
			if (fd >= 0)
				close(fd);
			if (!*dir)
				rc = -1;
			free(dir);
			continue;
		}
		while (rc == 0 && (de = readdir(d))) {
			size_t dl = strlen(dir);

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (++seen > max_entries || ((seen & 255) == 0 && mono_ms() > t_end)) {
				rc = 1;
				break;
			}
			if (dl + 1 + strlen(de->d_name) > EXEC_PATH_MAX) {
				rc = 1; /* deeper than a path the files API could name */
				break;
			}
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			memcpy(rel, dir, dl);
			rel[dl] = '/';
			strcpy(rel + (dl ? dl + 1 : 0), de->d_name);
			if (fn && fn(arg, rel, &st) < 0)
				rc = -1;
			else if (S_ISDIR(st.st_mode) && push(&t, rel) < 0)
				rc = -1;
		}
		closedir(d);
		free(dir);
	}
	while (t.n)
		free(t.v[--t.n]);
	free(t.v);
	return rc;
}
