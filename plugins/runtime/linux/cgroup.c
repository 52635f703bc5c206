/*
 * Per-sandbox cgroups, v1 (hybrid hosts) or v2 (unified), detected at start-up:
 * sbxd/<id> with memory, pids and CPU limits; kill-all, removal and OOM accounting.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "linux.h"

#define CG "/sys/fs/cgroup"

static int exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static int write_file(const char *dir, const char *file, const char *val)
{
	char p[512];
	int fd, rc = 0;
	size_t n = strlen(val);

	snprintf(p, sizeof p, "%s/%s", dir, file);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, val, n) != (ssize_t)n)
		rc = -1;
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

static ssize_t read_file(const char *dir, const char *file, char *buf, size_t cap)
{
	char p[512];
	ssize_t n;
	int fd;

	snprintf(p, sizeof p, "%s/%s", dir, file);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

static void path_of(char *out, size_t n, const char *hier, const char *id)
{
	if (id)
		snprintf(out, n, "%s/sbxd/%s", hier, id);
	else
		snprintf(out, n, "%s/sbxd", hier);
}

int cgroup_detect(struct lx *lx, sbx_err *err)
{
	struct lx_cgroup *c = &lx->cg;
	char p[512];

	memset(c, 0, sizeof *c);
	if (exists(CG "/cgroup.controllers")) {
		char ctl[512];
		c->mode = LX_CG_V2;
		snprintf(c->v2_root, sizeof c->v2_root, "%s", CG);
		if (read_file(CG, "cgroup.controllers", ctl, sizeof ctl) < 0 ||
		    !strstr(ctl, "memory") || !strstr(ctl, "pids") || !strstr(ctl, "cpu"))
			return sbx_err_set(err, SBX_E_UNAVAILABLE,
					   "linux runtime: cgroup v2 lacks the memory, pids or cpu "
					   "controller");
		/* Enable the controllers for sbxd/ and for its children. */
		if (write_file(CG, "cgroup.subtree_control", "+memory +pids +cpu") < 0)
			return sbx_err_set(err, SBX_E_UNAVAILABLE,
					   "linux runtime: enable controllers in %s: %s", CG,
					   strerror(errno));
		path_of(p, sizeof p, CG, NULL);
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return sbx_err_set(err, SBX_E_UNAVAILABLE, "linux runtime: mkdir %s: %s", p,
					   strerror(errno));
		if (write_file(p, "cgroup.subtree_control", "+memory +pids +cpu") < 0)
			return sbx_err_set(err, SBX_E_UNAVAILABLE,
					   "linux runtime: enable controllers in %s: %s", p,
					   strerror(errno));
		c->has_memsw = exists(CG "/sbxd/memory.swap.max");
		return 0;
	}
	c->mode = LX_CG_V1;
	if (exists(CG "/memory/memory.limit_in_bytes"))
		snprintf(c->memory, sizeof c->memory, "%s/memory", CG);
	if (exists(CG "/pids/cgroup.procs"))
		snprintf(c->pids, sizeof c->pids, "%s/pids", CG);
	if (exists(CG "/cpu/cpu.cfs_quota_us"))
		snprintf(c->cpu, sizeof c->cpu, "%s/cpu", CG);
	if (exists(CG "/freezer/cgroup.procs"))
		snprintf(c->freezer, sizeof c->freezer, "%s/freezer", CG);
	if (exists(CG "/unified/cgroup.procs"))
		snprintf(c->v2_root, sizeof c->v2_root, "%s/unified", CG);
	if (!c->memory[0] || !c->pids[0] || !c->cpu[0])
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "linux runtime: cgroup v1 lacks the memory, pids or cpu "
				   "hierarchy under " CG);
	c->has_memsw = exists(CG "/memory/memory.memsw.limit_in_bytes");
	{
		const char *h[] = {c->memory, c->pids, c->cpu, c->freezer, c->v2_root};
		size_t i;
		for (i = 0; i < sizeof h / sizeof *h; i++) {
			if (!h[i][0])
				continue;
			path_of(p, sizeof p, h[i], NULL);
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				return sbx_err_set(err, SBX_E_UNAVAILABLE,
						   "linux runtime: mkdir %s: %s", p,
						   strerror(errno));
		}
	}
	return 0;
}

/* The hierarchies a sandbox has a directory in. */
static int hierarchies(const struct lx *lx, const char *h[5])
{
	const struct lx_cgroup *c = &lx->cg;
	int n = 0;

	if (c->mode == LX_CG_V2) {
		h[n++] = c->v2_root;
		return n;
	}
	h[n++] = c->memory;
	h[n++] = c->pids;
	h[n++] = c->cpu;
	if (c->freezer[0])
		h[n++] = c->freezer;
	if (c->v2_root[0])
		h[n++] = c->v2_root;
	return n;
}

#define SETF(dir, file, ...)                                                                       \
	do {                                                                                       \
		snprintf(val, sizeof val, __VA_ARGS__);                                            \
		if (write_file(dir, file, val) < 0) {                                              \
			what = file;                                                               \
			goto fail;                                                                 \
		}                                                                                  \
	} while (0)

int cgroup_create(const struct lx *lx, const char *id, double cpu, long memory_mb,
		  long max_processes, sbx_err *err)
{
	const struct lx_cgroup *c = &lx->cg;
	const char *h[5], *what = "mkdir";
	char p[512], val[64];
	long long mem = (long long)memory_mb << 20;
	long quota = (long)(cpu * 100000.0 + 0.5);
	int i, n = hierarchies(lx, h);

	if (quota < 1000)
		quota = 1000;
	for (i = 0; i < n; i++) {
		path_of(p, sizeof p, h[i], id);
		if (mkdir(p, 0755) < 0)
			goto fail;
	}
	if (c->mode == LX_CG_V2) {
		path_of(p, sizeof p, c->v2_root, id);
		SETF(p, "memory.max", "%lld", mem);
		{
			char sp[600]; /* memory.swap.max exists only when the kernel has swap */
			snprintf(sp, sizeof sp, "%s/memory.swap.max", p);
			if (exists(sp))
				SETF(p, "memory.swap.max", "0");
		}
		SETF(p, "memory.oom.group", "0");
		SETF(p, "pids.max", "%ld", max_processes);
		SETF(p, "cpu.max", "%ld 100000", quota);
	} else {
		path_of(p, sizeof p, c->memory, id);
		SETF(p, "memory.limit_in_bytes", "%lld", mem);
		if (c->has_memsw)
			SETF(p, "memory.memsw.limit_in_bytes", "%lld", mem);
		path_of(p, sizeof p, c->pids, id);
		SETF(p, "pids.max", "%ld", max_processes);
		path_of(p, sizeof p, c->cpu, id);
		SETF(p, "cpu.cfs_period_us", "100000");
		SETF(p, "cpu.cfs_quota_us", "%ld", quota);
	}
	return 0;
fail:
	i = errno;
	cgroup_remove(lx, id);
	return sbx_err_set(err, SBX_E_UNAVAILABLE, "cgroup %s for %s: %s", what, p, strerror(i));
}

int cgroup_attach(const struct lx *lx, const char *id, pid_t pid, sbx_err *err)
{
	const char *h[5];
	char p[512], val[32];
	int i, n = hierarchies(lx, h);

	snprintf(val, sizeof val, "%d", (int)pid);
	for (i = 0; i < n; i++) {
		path_of(p, sizeof p, h[i], id);
		if (write_file(p, "cgroup.procs", val) < 0)
			return sbx_err_set(err, SBX_E_UNAVAILABLE, "join cgroup %s: %s", p,
					   strerror(errno));
	}
	return 0;
}

static int procs_empty(const char *dir)
{
	char buf[16];
	ssize_t n = read_file(dir, "cgroup.procs", buf, sizeof buf);
	return n <= 0;
}

static void nap(long us)
{
	struct timespec ts = {0, us * 1000};
	nanosleep(&ts, NULL);
}

/* Kill every process of the sandbox; returns once the cgroup is empty (or ~2 s passed). */
int cgroup_kill_all(const struct lx *lx, const char *id)
{
	const struct lx_cgroup *c = &lx->cg;
	char p[512], fz[512];
	int tries;

	if (c->v2_root[0]) {
		path_of(p, sizeof p, c->v2_root, id);
		if (!exists(p))
			goto v1;
		if (write_file(p, "cgroup.kill", "1") == 0) {
			for (tries = 0; tries < 4000 && !procs_empty(p); tries++)
				nap(500);
			return procs_empty(p) ? 0 : -1;
		}
	}
v1:
	if (c->mode != LX_CG_V1)
		return 0;
	path_of(p, sizeof p, c->pids, id);
	if (!exists(p))
		return 0;
	fz[0] = '\0';
	if (c->freezer[0]) {
		path_of(fz, sizeof fz, c->freezer, id);
		if (write_file(fz, "freezer.state", "FROZEN") < 0)
			fz[0] = '\0';
	}
	for (tries = 0; tries < 4000; tries++) {
		char buf[8192], *s, *end;
		int any = 0;

		if (read_file(p, "cgroup.procs", buf, sizeof buf) < 0)
			break;
		for (s = buf; *s; s = end) {
			long pid = strtol(s, &end, 10);
			if (end == s)
				break;
			if (pid > 0) {
				kill((pid_t)pid, SIGKILL);
				any = 1;
			}
		}
		if (!any)
			break;
		if (fz[0] && tries == 0)
			write_file(fz, "freezer.state", "THAWED");
		nap(500);
	}
	if (fz[0])
		write_file(fz, "freezer.state", "THAWED");
	return procs_empty(p) ? 0 : -1;
}

void cgroup_remove(const struct lx *lx, const char *id)
{
	const char *h[5];
	char p[512];
	int i, tries, n = hierarchies(lx, h);

	for (i = 0; i < n; i++) {
		path_of(p, sizeof p, h[i], id);
		for (tries = 0; tries < 200; tries++) {
			if (rmdir(p) == 0 || errno == ENOENT)
				break;
			if (errno != EBUSY)
				break;
			nap(1000);
		}
	}
}

static long stat_value(const char *buf, const char *key)
{
	const char *s = buf;
	size_t kl = strlen(key);

	while (s && *s) {
		if (!strncmp(s, key, kl) && s[kl] == ' ')
			return strtol(s + kl + 1, NULL, 10);
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	return -1;
}

int cgroup_oom_killed(const struct lx *lx, const char *id)
{
	char p[512], buf[1024];

	if (lx->cg.mode == LX_CG_V2) {
		path_of(p, sizeof p, lx->cg.v2_root, id);
		if (read_file(p, "memory.events", buf, sizeof buf) < 0)
			return 0;
	} else {
		path_of(p, sizeof p, lx->cg.memory, id);
		if (read_file(p, "memory.oom_control", buf, sizeof buf) < 0)
			return 0;
	}
	return stat_value(buf, "oom_kill") > 0;
}

long cgroup_memory_usage_mb(const struct lx *lx, const char *id)
{
	char p[512], buf[64];

	if (lx->cg.mode == LX_CG_V2) {
		path_of(p, sizeof p, lx->cg.v2_root, id);
		if (read_file(p, "memory.current", buf, sizeof buf) < 0)
			return -1;
	} else {
		path_of(p, sizeof p, lx->cg.memory, id);
		if (read_file(p, "memory.usage_in_bytes", buf, sizeof buf) < 0)
			return -1;
	}
	return strtoll(buf, NULL, 10) >> 20;
}

int cgroup_check(const struct lx *lx, json_t *detail, sbx_err *err)
{
	const char *h[5];
	char p[512];
	int i, n = hierarchies(lx, h);

	json_object_set_new(detail, "cgroup", json_string(lx->cg.mode == LX_CG_V2 ? "v2" : "v1"));
	for (i = 0; i < n; i++) {
		path_of(p, sizeof p, h[i], NULL);
		if (access(p, W_OK) < 0)
			return sbx_err_set(err, SBX_E_UNAVAILABLE, "cgroup %s not writable: %s", p,
					   strerror(errno));
	}
	return 0;
}
