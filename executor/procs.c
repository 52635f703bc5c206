/*
 * The process tree below the executor, read from /proc parent links. After every execution
 * (and on timeout) all descendants except the warm interpreters (python zygote, idle node) and
 * the tar processes of /archive requests are SIGKILLed, round after round, until none is left;
 * a pidfd plus start time pins each target so a recycled pid is never hit.
 * A cheap walk of /proc/PID/task/TID/children comes first; the full /proc scan runs when
 * that walk found anything (the common clean case costs a few reads, not one per process).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "executor.h"

struct proc {
	pid_t pid, ppid;
	unsigned long long start;
	char state;
	char mark;
};

static int read_stat(pid_t pid, struct proc *p)
{
	char path[64], buf[1024], *s;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	s = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
	if (!s || !s[1])
		return -1;
	p->pid = pid;
	p->state = s[2];
	s += 3;
	for (field = 4; field <= 22 && s; field++) {
		while (*s == ' ')
			s++;
		if (field == 4)
			p->ppid = (pid_t)strtol(s, NULL, 10);
		if (field == 22)
			p->start = strtoull(s, NULL, 10);
		s = strchr(s, ' ');
	}
	return field > 22 ? 0 : -1;
}

static int scan(struct proc **out, size_t *count)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	struct proc *v = NULL, *nv;
	size_t n = 0, cap = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -1;
			}
			v = nv;
		}
		if (read_stat((pid_t)atoi(de->d_name), &v[n]) == 0) {
			v[n].mark = 0;
			n++;
		}
	}
	closedir(d);
	*out = v;
	*count = n;
	return 0;
}

static void kill_pinned(const struct proc *p)
{
	struct proc again;
	int pfd = (int)syscall(SYS_pidfd_open, p->pid, 0);

	if (pfd < 0) {
		if (errno == ENOSYS)
			kill(p->pid, SIGKILL);
		return;
	}
	/* the pidfd pins the process; same start time means it is the one we scanned */
	if (read_stat(p->pid, &again) == 0 && again.start == p->start)
		syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
	close(pfd);
}

/* appends the children of every thread of pid to *v; -1 if /proc cannot say */
static int children_of(pid_t pid, pid_t **v, size_t *n, size_t *cap)
{
	char path[320], buf[4096];
	struct dirent *de;
	DIR *d;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/children", (int)pid, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			closedir(d);
			return -1;
		}
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len < 0 || len == (ssize_t)sizeof(buf) - 1) {
			closedir(d);
			return -1; /* a huge list: let the full scan handle it */
		}
		buf[len] = 0;
		for (char *s = buf, *end; *s; s = end) {
			long child = strtol(s, &end, 10);
			if (end == s)
				break;
			if (*n == *cap) {
				pid_t *nv = realloc(*v, (*cap ? *cap * 2 : 32) * sizeof(**v));
				if (!nv) {
					closedir(d);
					return -1;
				}
				*v = nv;
				*cap = *cap ? *cap * 2 : 32;
			}
			(*v)[(*n)++] = (pid_t)child;
		}
	}
	closedir(d);
	return 0;
}

#define KEEP_MAX (2 + ARCHIVE_MAX)

/* what the sweep after an execution spares (pids or 0): the warm interpreters and the tar
 * processes of /archive requests, which are not the execution's; a shutdown spares nothing */
static void kept(struct ctx *c, int keep_zygotes, pid_t keep[KEEP_MAX])
{
	pthread_mutex_lock(&c->lock);
	keep[0] = keep_zygotes ? c->py.pid : 0;
	keep[1] = keep_zygotes ? c->js.pid : 0;
	for (int i = 0; i < ARCHIVE_MAX; i++)
		keep[2 + i] = keep_zygotes ? c->archive_pids[i] : 0;
	pthread_mutex_unlock(&c->lock);
}

static int is_kept(const pid_t keep[KEEP_MAX], pid_t pid)
{
	for (int i = 0; i < KEEP_MAX; i++)
		if (pid > 0 && pid == keep[i])
			return 1;
	return 0;
}

/* one round of the cheap walk: kills what it finds; returns the count or -1 */
static int walk_round(struct ctx *c, const pid_t keep[KEEP_MAX])
{
	pid_t *v = NULL;
	size_t n = 0, cap = 0;
	struct proc p;
	int live = 0;

	if (children_of(c->self, &v, &n, &cap) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (children_of(v[i], &v, &n, &cap) < 0)
			goto fail;
		if (n > 100000)
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (is_kept(keep, v[i]) || read_stat(v[i], &p) < 0 || p.state == 'Z' ||
		    p.state == 'X')
			continue;
		kill_pinned(&p);
		live++;
	}
	free(v);
	return live;
fail:
	free(v);
	return -1;
}

static int full_rounds(struct ctx *c, int keep_zygotes)
{
	struct timespec pause = {0, 1000000};
	struct proc *v = NULL;
	size_t n, i;
	int total = 0, round, live, changed;
	pid_t keep[KEEP_MAX];

	for (round = 0; round < 5000; round++) {
		if (scan(&v, &n) < 0)
			return -1;
		kept(c, keep_zygotes, keep);
		do {
			changed = 0;
			for (i = 0; i < n; i++) {
				if (v[i].mark || v[i].pid == c->self)
					continue;
				if (v[i].ppid == c->self) {
					v[i].mark = 1;
					changed = 1;
					continue;
				}
				for (size_t j = 0; j < n; j++) {
					if (v[j].mark && v[j].pid == v[i].ppid) {
						v[i].mark = 1;
						changed = 1;
						break;
					}
				}
			}
		} while (changed);
		live = 0;
		for (i = 0; i < n; i++) {
			if (!v[i].mark || is_kept(keep, v[i].pid) || v[i].state == 'Z' ||
			    v[i].state == 'X')
				continue;
			kill_pinned(&v[i]);
			live++;
		}
		free(v);
		v = NULL;
		total += live;
		if (!live)
			return total;
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "sbx-executor: processes still alive after 5000 kill rounds\n");
	return total;
}

/* returns how many processes were signalled in total, -1 if /proc cannot be read */
int procs_kill_descendants(struct ctx *c, int keep_zygotes)
{
	int n;
	pid_t keep[KEEP_MAX];

	kept(c, keep_zygotes, keep);
	n = walk_round(c, keep);
	if (n == 0)
		return 0;
	/* something was left (or the walk failed): finish with the exhaustive scan */
	n = n < 0 ? 0 : n;
	return n + full_rounds(c, keep_zygotes);
}
