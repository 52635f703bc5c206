/*
 * Slot (host uid range) ownership shared by every process on one state dir: the file
 * <state_dir>/slots/<n> names the sandbox that holds range n. Claims, their release and the
 * reclaim of stale claims (sandbox directory gone, or a create whose process died).
 *
 * Why it is safe without a daemon-wide lock on the hot path:
 * - a claim appears whole: its text is written to a private temp file that is then link()ed
 *   to slots/<n>; link never replaces an existing name, so two creators cannot both get n,
 *   and a claim's text never changes while the name exists;
 * - the creator holds flock() on the claim's inode until its create returns, so a claim
 *   whose sandbox has no sandbox.json yet is "in progress" (lock held) or "abandoned" (the
 *   creator died: the kernel dropped its lock);
 * - every removal (release, reclaim) is "unlink if it still names this sandbox", done under
 *   slots/.lock (flock, plus lx->slot_lock between the threads of one process), so a remover
 *   never deletes a newer claim of the same slot.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "linux.h"

#define TEMP_PREFIX  ".c-"
#define TEMP_MAX_AGE 60 /* s: a temp file older than this belongs to a dead creator */

/* Ids are ours ("lx-" + 32 hex) before they are ever used in a path. */
int slot_id_valid(const char *id)
{
	size_t i;

	if (!id || strncmp(id, "lx-", 3) || strlen(id) != LX_ID_LEN)
		return 0;
	for (i = 3; id[i]; i++)
		if (!strchr("0123456789abcdef", id[i]))
			return 0;
	return 1;
}

static void slot_path(const struct lx *lx, unsigned n, char *p, size_t size)
{
	snprintf(p, size, "%s/%u", lx->slots_dir, n);
}

/* The sandbox id a claim names, or "" (unreadable or not a claim we wrote). */
static void claim_read(int fd, char id[LX_ID_LEN + 1])
{
	char buf[LX_ID_LEN + 2];
	ssize_t n = pread(fd, buf, sizeof buf, 0);

	id[0] = '\0';
	if (n == LX_ID_LEN + 1 && buf[LX_ID_LEN] == '\n') {
		buf[LX_ID_LEN] = '\0';
		if (slot_id_valid(buf))
			memcpy(id, buf, LX_ID_LEN + 1);
	}
}

static int sandbox_dir_state(const struct lx *lx, const char *id)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof p, "%s/%s", lx->sbx_dir, id);
	if (lstat(p, &st) < 0)
		return 0; /* gone */
	snprintf(p, sizeof p, "%s/%s/sandbox.json", lx->sbx_dir, id);
	return lstat(p, &st) < 0 ? 1 : 2; /* 1: created half-way, 2: a recorded sandbox */
}

/* Serialises removals: between threads (slot_lock) and processes (flock on slots/.lock). */
static void removal_lock(struct lx *lx)
{
	pthread_mutex_lock(&lx->slot_lock);
	while (flock(lx->slots_lock_fd, LOCK_EX) < 0 && errno == EINTR)
		;
}

static void removal_unlock(struct lx *lx)
{
	flock(lx->slots_lock_fd, LOCK_UN);
	pthread_mutex_unlock(&lx->slot_lock);
}

/* Unlink slots/<n> if it names `id`. Caller holds the removal lock. */
static int unlink_if_names(const struct lx *lx, unsigned n, const char *id)
{
	char p[PATH_MAX], cur[LX_ID_LEN + 1];
	int fd, rc = 0;

	slot_path(lx, n, p, sizeof p);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return 0;
	claim_read(fd, cur);
	if (!strcmp(cur, id) && unlink(p) == 0)
		rc = 1;
	close(fd);
	return rc;
}

void slot_release(struct lx *lx, int slot, const char *id)
{
	if (slot < 0 || (unsigned)slot >= LX_SLOTS_MAX || !slot_id_valid(id))
		return;
	removal_lock(lx);
	unlink_if_names(lx, (unsigned)slot, id);
	removal_unlock(lx);
}

/* A claim nobody can be using: the sandbox directory is gone, or was left half-made by a
 * creator that died (its lock is free and there is no sandbox.json). The half-made sandbox's
 * processes and cgroup go with it. Caller holds the removal lock. */
static int reclaim_one(struct lx *lx, unsigned n)
{
	char p[PATH_MAX], id[LX_ID_LEN + 1];
	int fd, st, rc = 0;

	slot_path(lx, n, p, sizeof p);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		goto out; /* a create in progress */
	claim_read(fd, id);
	st = id[0] ? sandbox_dir_state(lx, id) : 0;
	if (st == 2)
		goto out;
	if (st == 1) {
		char dir[PATH_MAX];

		snprintf(dir, sizeof dir, "%s/%s", lx->sbx_dir, id);
		cgroup_kill_all(lx, id);
		cgroup_remove(lx, id);
		if (rm_tree(dir) < 0)
			goto out; /* still there: the uid range may still own files */
	}
	if (unlink(p) == 0) {
		rc = 1;
		lx->core->log(lx->name, SBX_LOG_INFO, "event=slot_reclaimed slot=%u sandbox=%s", n,
			      id[0] ? id : "-");
	}
out:
	close(fd);
	return rc;
}

/* Reclaim every stale claim and old temp file; returns how many slots were freed. */
static int reclaim_stale(struct lx *lx)
{
	DIR *d;
	struct dirent *e;
	time_t now = time(NULL);
	int freed = 0;

	removal_lock(lx);
	if (!(d = opendir(lx->slots_dir)))
		goto out;
	while ((e = readdir(d))) {
		char *end;
		unsigned long n = strtoul(e->d_name, &end, 10);

		if (!strncmp(e->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX))) {
			struct stat st;
			if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    st.st_mtime + TEMP_MAX_AGE < now)
				unlinkat(dirfd(d), e->d_name, 0);
			continue;
		}
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end || n >= LX_SLOTS_MAX)
			continue;
		freed += reclaim_one(lx, (unsigned)n);
	}
	closedir(d);
out:
	removal_unlock(lx);
	return freed;
}

/* A private temp file holding the claim text for `id` (valid), its path in tmp. */
static int temp_claim(const struct lx *lx, const char *id, char *tmp, size_t size)
{
	char text[LX_ID_LEN + 1];
	int fd;

	memcpy(text, id, LX_ID_LEN);
	text[LX_ID_LEN] = '\n';
	snprintf(tmp, size, "%s/" TEMP_PREFIX "%s", lx->slots_dir, id);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	/* locked before it can ever appear as a claim */
	if (flock(fd, LOCK_EX) < 0 || write(fd, text, sizeof text) != (ssize_t)sizeof text) {
		int e = errno;
		unlink(tmp);
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Try to link the temp claim to each slot once, starting after the last one this instance
 * took (a released range is not reused at once). Returns the slot, -1 if all are taken, or
 * -2 with errno set on another failure. */
static int link_any(struct lx *lx, const char *tmp)
{
	char p[PATH_MAX];
	unsigned k, n, start;

	pthread_mutex_lock(&lx->lock);
	start = lx->slot_next;
	pthread_mutex_unlock(&lx->lock);
	for (k = 0; k < lx->max_sessions; k++) {
		n = (start + k) % lx->max_sessions;
		slot_path(lx, n, p, sizeof p);
		if (link(tmp, p) == 0) {
			pthread_mutex_lock(&lx->lock);
			lx->slot_next = (n + 1) % lx->max_sessions;
			pthread_mutex_unlock(&lx->lock);
			return (int)n;
		}
		if (errno != EEXIST)
			return -2;
	}
	return -1;
}

int slot_claim(struct lx *lx, const char *id, int *lock_fd, sbx_err *err)
{
	char tmp[PATH_MAX];
	int fd, slot = -1, pass, e = 0;

	*lock_fd = -1;
	if (!slot_id_valid(id))
		return sbx_err_set(err, SBX_E_INTERNAL, "linux runtime: bad sandbox id");
	if ((fd = temp_claim(lx, id, tmp, sizeof tmp)) < 0)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "linux runtime: create %s: %s", tmp,
				   strerror(errno));
	for (pass = 0; pass < 2; pass++) {
		slot = link_any(lx, tmp);
		e = errno;
		if (slot != -1 || reclaim_stale(lx) == 0)
			break;
	}
	unlink(tmp);
	if (slot >= 0) {
		*lock_fd = fd;
		return slot;
	}
	close(fd);
	if (slot == -1)
		return sbx_err_set(err, SBX_E_LIMIT, "linux runtime: all %u sessions in use",
				   lx->max_sessions);
	return sbx_err_set(err, SBX_E_UNAVAILABLE, "linux runtime: claim a slot in %s: %s",
			   lx->slots_dir, strerror(e));
}

/* A sandbox recorded before slots were claimed on disk (or whose claim was lost) gets its
 * claim back, so that no other process hands out its range. */
static void adopt(struct lx *lx, const char *id, json_int_t slot)
{
	char tmp[PATH_MAX], p[PATH_MAX], cur[LX_ID_LEN + 1];
	int fd;

	if (slot < 0 || slot >= (json_int_t)LX_SLOTS_MAX)
		return;
	slot_path(lx, (unsigned)slot, p, sizeof p);
	if ((fd = temp_claim(lx, id, tmp, sizeof tmp)) < 0)
		return;
	if (link(tmp, p) < 0 && errno == EEXIST) {
		int cfd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		cur[0] = '\0';
		if (cfd >= 0) {
			claim_read(cfd, cur);
			close(cfd);
		}
		if (strcmp(cur, id))
			lx->core->log(lx->name, SBX_LOG_WARN,
				      "event=slot_conflict slot=%lld sandbox=%s claimed_by=%s "
				      "(two sandboxes share a uid range: destroy one of them)",
				      (long long)slot, id, cur[0] ? cur : "?");
	}
	unlink(tmp);
	close(fd);
}

int slots_init(struct lx *lx, sbx_err *err)
{
	char p[PATH_MAX];
	DIR *d;
	struct dirent *e;

	if (strlen(lx->state_dir) > PATH_MAX - 128)
		return sbx_err_set(err, SBX_E_INVALID, "linux runtime: state_dir is too long");
	snprintf(p, sizeof p, "%s/slots", lx->state_dir);
	if (!(lx->slots_dir = strdup(p)))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "linux runtime: mkdir %s: %s", p,
				   strerror(errno));
	snprintf(p, sizeof p, "%s/slots/.lock", lx->state_dir);
	lx->slots_lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lx->slots_lock_fd < 0)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "linux runtime: open %s: %s", p,
				   strerror(errno));
	if ((d = opendir(lx->sbx_dir))) {
		while ((e = readdir(d))) {
			json_t *h;

			if (!slot_id_valid(e->d_name))
				continue;
			snprintf(p, sizeof p, "%s/%s", lx->sbx_dir, e->d_name);
			if ((h = state_load(p)))
				adopt(lx, e->d_name,
				      json_integer_value(json_object_get(h, "slot")));
			json_decref(h);
		}
		closedir(d);
	}
	reclaim_stale(lx);
	return 0;
}
