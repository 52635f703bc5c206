/*
 * Host-side files of the runtime: the shared minimal /etc every sandbox mounts, each
 * sandbox's directory (root mount point, executor socket dir, log), and their removal.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux.h"

static const struct {
	const char *name;
	const char *text;
} etc_files[] = {
    {"passwd", "root:x:0:0:root:/root:/bin/sh\n"
	       "sandbox:x:1000:1000:sandbox:/workspace:/bin/sh\n"
	       "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
    {"group", "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n"},
    {"hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n"},
    {"nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
		      "networks: files\nprotocols: files\nservices: files\n"},
    {"hostname", "sandbox\n"},
    {"resolv.conf", ""},
};

static int write_text(const char *dir, const char *name, const char *text, sbx_err *err)
{
	char p[1024], tmp[1040];
	size_t n = strlen(text);
	int fd;

	snprintf(p, sizeof p, "%s/%s", dir, name);
	/* per process: several processes may share the state dir and start together */
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", p, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (n && write(fd, text, n) != (ssize_t)n) || fchmod(fd, 0644) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "write %s: %s", p, strerror(e));
	}
	close(fd);
	if (rename(tmp, p) < 0)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "rename %s: %s", p, strerror(errno));
	return 0;
}

/* <state_dir>/etc: generated once per instance, mounted read-only into every sandbox. */
int rootfs_etc(const struct lx *lx, sbx_err *err)
{
	char dir[512];
	size_t i;
	int rc;

	snprintf(dir, sizeof dir, "%s/etc", lx->state_dir);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "mkdir %s: %s", dir, strerror(errno));
	chmod(dir, 0755);
	for (i = 0; i < sizeof etc_files / sizeof *etc_files; i++)
		if ((rc = write_text(dir, etc_files[i].name, etc_files[i].text, err)) < 0)
			return rc;
	return 0;
}

int rootfs_prepare(const struct lx *lx, const char *dir, unsigned host_uid, sbx_err *err)
{
	char p[512];

	(void)lx;
	if (mkdir(dir, 0711) < 0)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "mkdir %s: %s", dir, strerror(errno));
	snprintf(p, sizeof p, "%s/root", dir);
	if (mkdir(p, 0755) < 0)
		goto fail;
	/* The executor (sandbox uid 1000) creates its socket here. */
	snprintf(p, sizeof p, "%s/run", dir);
	if (mkdir(p, 0755) < 0 ||
	    chown(p, host_uid + LX_SANDBOX_UID, host_uid + LX_SANDBOX_UID) < 0)
		goto fail;
	return 0;
fail:
	return sbx_err_set(err, SBX_E_UNAVAILABLE, "prepare %s: %s", p, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Remove a tree without crossing into other filesystems (a mount left behind stays). */
int rm_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	return lstat(path, &st) < 0 && errno == ENOENT ? 0 : -1;
}

void rootfs_remove(const char *dir)
{
	rm_tree(dir);
}
