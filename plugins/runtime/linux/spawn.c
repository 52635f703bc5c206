/*
 * Starting a sandbox's first process: clone() into fresh namespaces, write its id maps,
 * put it in its cgroups, let it go, and collect a setup failure it reports before execve.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux.h"

static int write_proc(pid_t pid, const char *file, const char *val)
{
	char p[64];
	int fd, rc = 0;
	size_t n = strlen(val);

	snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, file);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, val, n) != (ssize_t)n)
		rc = -1;
	close(fd);
	return rc;
}

unsigned long long spawn_start_time(pid_t pid)
{
	char p[64], buf[1024], *s;
	unsigned long long t = 0;
	ssize_t n;
	int fd, field;

	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	s = strrchr(buf, ')');
	if (!s)
		return 0;
	/* After ")": field 3 (state) ... field 22 (starttime). */
	for (field = 2; field < 22 && s; field++)
		s = strchr(s + 1, ' ');
	if (s)
		t = strtoull(s + 1, NULL, 10);
	return t;
}

int spawn_sandbox(const struct lx *lx, struct lx_child_args *a, const char *id, pid_t *pidp,
		  sbx_err *err)
{
	int sync[2] = {-1, -1}, errp[2] = {-1, -1}, rc, st;
	char map[64];
	struct lx_child_err ce;
	ssize_t n;
	pid_t pid;

	if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "pipe: %s", strerror(errno));
		goto out;
	}
	a->sync_fd = sync[0];
	a->sync_wfd = sync[1];
	a->err_fd = errp[1];
	pid = (pid_t)syscall(SYS_clone,
			     CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
				 CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD,
			     NULL, NULL, NULL, NULL);
	if (pid == 0)
		child_main(a);
	if (pid < 0) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "clone into new namespaces: %s",
				 strerror(errno));
		goto out;
	}
	close(sync[0]);
	close(errp[1]);
	sync[0] = errp[1] = -1;

	snprintf(map, sizeof map, "0 %u %u\n", a->id_base, LX_IDS_PER_SANDBOX);
	if (write_proc(pid, "uid_map", map) < 0 || write_proc(pid, "gid_map", map) < 0) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "write id maps of pid %d: %s", (int)pid,
				 strerror(errno));
		goto kill;
	}
	if (write(sync[1], "m", 1) != 1) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "signal the sandbox: %s", strerror(errno));
		goto kill;
	}
	if ((rc = cgroup_attach(lx, id, pid, err)) < 0)
		goto kill;
	if (write(sync[1], "g", 1) != 1) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "signal the sandbox: %s", strerror(errno));
		goto kill;
	}
	close(sync[1]);
	sync[1] = -1;

	/* EOF: execve succeeded (err_fd is close-on-exec). */
	do
		n = read(errp[0], &ce, sizeof ce);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof ce) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "%s: %s", ce.what, strerror(ce.err));
		goto reap;
	}
	if (n != 0) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "sandbox setup exited early");
		goto reap;
	}
	*pidp = pid;
	rc = 0;
	goto out;
kill:
	kill(pid, SIGKILL);
reap:
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
out:
	if (sync[0] >= 0)
		close(sync[0]);
	if (sync[1] >= 0)
		close(sync[1]);
	if (errp[0] >= 0)
		close(errp[0]);
	if (errp[1] >= 0)
		close(errp[1]);
	return rc;
}
