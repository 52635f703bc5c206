/*
 * The pre-spawned idle node: one `node node_runner.js --prespawned` started ahead of time with
 * the clean base environment, blocked reading its job from a pipe on fd 0, its stdout, stderr
 * and result pipes already made. A javascript execution takes it, writes the job and waits for
 * the runner's acknowledgement; a process serves one execution only (node cannot fork).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor.h"
#include "zygote.h"

#define NO_IDLE_NODE ((struct idle_node){.job = -1, .ack = -1, .out = {-1, -1, -1}})

static void close_fds(struct idle_node *n)
{
	int *fds[] = {&n->job, &n->ack, &n->out[0], &n->out[1], &n->out[2]};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/*
 * Call with c->lock held (the reaper clears c->js.pid under it, so a recorded pid is always
 * an unreaped child). 0 if an idle node exists or was started, -1 if none could be.
 */
int idlenode_spawn(struct ctx *c)
{
	int jp[2] = {-1, -1}, ap[2] = {-1, -1}, op[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
	char *prog = NULL, *script = NULL, *home = NULL;
	char *argv[4], *envp[5];
	int rc = -1;
	pid_t pid;

	if (c->js.pid > 0)
		return 0;
	close_fds(&c->js); /* what is left of one that exited unused */
	if (c->stopping)
		return -1;
	prog = run_which("node");
	if (!prog)
		goto out;
	if (asprintf(&script, "%s/node_runner.js", c->shims) < 0) {
		script = NULL;
		goto out;
	}
	if (asprintf(&home, "HOME=%s", c->workspace) < 0) {
		home = NULL;
		goto out;
	}
	if (pipe2(jp, O_CLOEXEC) < 0 || pipe2(ap, O_CLOEXEC) < 0)
		goto out;
	for (int i = 0; i < 3; i++)
		if (pipe2(op[i], O_CLOEXEC) < 0)
			goto out;
	argv[0] = "node";
	argv[1] = script;
	argv[2] = "--prespawned";
	argv[3] = NULL;
	envp[0] = "PATH=" EXEC_BASE_PATH;
	envp[1] = home;
	envp[2] = "TMPDIR=" EXEC_BASE_TMPDIR;
	envp[3] = "LANG=" EXEC_BASE_LANG;
	envp[4] = NULL;
	pid = fork();
	if (pid == 0) {
		/* async-signal-safe calls only: the parent is multi-threaded */
		zygote_child_reset();
		if (fchdir(c->ws_fd) < 0)
			_exit(127);
		/* move the sources above 4 first so no dup2 clobbers another */
		int a = fcntl(jp[0], F_DUPFD, 10), b = fcntl(op[0][1], F_DUPFD, 10);
		int d = fcntl(op[1][1], F_DUPFD, 10), e = fcntl(op[2][1], F_DUPFD, 10);
		int f = fcntl(ap[1], F_DUPFD, 10);
		if (a < 0 || b < 0 || d < 0 || e < 0 || f < 0 || dup2(a, 0) < 0 || dup2(b, 1) < 0 ||
		    dup2(d, 2) < 0 || dup2(e, 3) < 0 || dup2(f, 4) < 0)
			_exit(127);
		close_range(5, ~0u, 0);
		setsid();
		execve(prog, argv, envp);
		_exit(127);
	}
	if (pid < 0)
		goto out;
	c->js.pid = pid;
	c->js.job = jp[1];
	c->js.ack = ap[0];
	jp[1] = ap[0] = -1;
	fcntl(c->js.job, F_SETFL, O_NONBLOCK);
	fcntl(c->js.ack, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 3; i++) {
		c->js.out[i] = op[i][0];
		op[i][0] = -1;
		fcntl(c->js.out[i], F_SETFL, O_NONBLOCK);
	}
	c->children = 1;
	pthread_cond_signal(&c->reap_cond);
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (jp[i] >= 0)
			close(jp[i]);
		if (ap[i] >= 0)
			close(ap[i]);
		for (int k = 0; k < 3; k++)
			if (op[k][i] >= 0)
				close(op[k][i]);
	}
	free(prog);
	free(script);
	free(home);
	return rc;
}

/*
 * Call with c->lock held. Moves the idle node into *out (c->js is left empty) and watches it,
 * so its exit is reported to the runner like a fresh child's. -1 if there is none or it has
 * exited already (everything of it is released): the caller cold-starts.
 */
int idlenode_take(struct ctx *c, struct idle_node *out)
{
	*out = c->js;
	c->js = NO_IDLE_NODE;
	if (out->pid > 0 && reaper_watch(c, out->pid) >= 0)
		return 0;
	if (out->pid > 0)
		kill(out->pid, SIGKILL); /* no watch slot: nobody would see it end */
	close_fds(out);
	out->pid = 0;
	return -1;
}

/* stopped or traced (a handler may SIGSTOP it): it would never take the job */
static int stopped(pid_t pid)
{
	char path[64], buf[512], *s;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* no /proc: the acknowledgement's deadline still bounds the wait */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	s = strrchr(buf, ')');
	return s && s[1] && (s[2] == 'T' || s[2] == 't');
}

static int ms_left(double deadline)
{
	double left = deadline - mono_ms();
	return left <= 0 ? 0 : (int)left + 1;
}

/*
 * Writes the job to a taken idle node, closes the pipe (the runner reads to EOF) and waits up
 * to wait_ms in all for the runner's acknowledgement, which it sends once the job is parsed and
 * its env and working directory applied, before any user code is loaded. 0: the process now
 * runs the execution; -1: it exited, is stuck or refused the job, and nothing of the user's
 * ran. n->job and n->ack are closed either way. No lock needed.
 */
int idlenode_handoff(struct idle_node *n, const char *job, size_t len, int wait_ms)
{
	double deadline = mono_ms() + wait_ms;
	struct pollfd p[2];
	size_t off = 0;
	ssize_t k;
	char ack;
	int rc = -1;

	if (stopped(n->pid))
		goto out;
	while (off < len) {
		k = write(n->job, job + off, len - off);
		if (k > 0) {
			off += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0 || errno != EAGAIN)
			goto out; /* EPIPE: it is gone */
		p[0] = (struct pollfd){.fd = n->job, .events = POLLOUT};
		p[1] = (struct pollfd){.fd = n->ack, .events = POLLIN};
		if (!ms_left(deadline) || (poll(p, 2, ms_left(deadline)) < 0 && errno != EINTR))
			goto out;
		if (p[1].revents)
			goto out; /* nothing may come back before the whole job: it exited */
	}
	close(n->job);
	n->job = -1;
	for (;;) {
		k = read(n->ack, &ack, 1);
		if (k == 1) {
			rc = ack == 'J' ? 0 : -1;
			break;
		}
		if (k == 0 || (errno != EINTR && errno != EAGAIN))
			break; /* EOF: it exited without taking the job */
		p[0] = (struct pollfd){.fd = n->ack, .events = POLLIN};
		if (!ms_left(deadline) || (poll(p, 1, ms_left(deadline)) < 0 && errno != EINTR))
			break;
	}
out:
	if (n->job >= 0)
		close(n->job);
	if (n->ack >= 0)
		close(n->ack);
	n->job = n->ack = -1;
	return rc;
}

/* an idle node that was taken but did not take the job: killed, unwatched, its fds closed */
void idlenode_discard(struct ctx *c, struct idle_node *n)
{
	pthread_mutex_lock(&c->lock);
	/* watched and not reported: still our unreaped child, the pid cannot be recycled */
	if (n->pid > 0 && !reaper_reported(c, n->pid))
		kill(n->pid, SIGKILL);
	reaper_unwatch(c, n->pid);
	pthread_mutex_unlock(&c->lock);
	close_fds(n);
	n->pid = 0;
}
