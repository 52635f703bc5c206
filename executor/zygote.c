/*
 * The warm python interpreter ("zygote", shims/python_zygote.py): spawning it (lazily, or at
 * start-up with --preload python), handing it a job with its pipe fds over SCM_RIGHTS, and
 * reading its newline-delimited JSON reports (child pid, then wait status and rusage).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "executor.h"
#include "zygote.h"

void zygote_stop(struct ctx *c)
{
	if (c->py.sock >= 0)
		close(c->py.sock);
	c->py.sock = -1;
	if (c->py.pid > 0)
		kill(c->py.pid, SIGKILL); /* still our unreaped child: the pid cannot be recycled */
	c->py.pid = 0;
	c->py.len = 0;
}

void zygote_child_reset(void)
{
	sigset_t none;
	struct sigaction dfl = {.sa_handler = SIG_DFL};

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
}

/* call with c->lock held */
int zygote_ensure(struct ctx *c)
{
	char script[4096];
	char *argv[5];
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/", NULL};
	int sv[2], nul;
	pid_t pid;

	if (c->py.pid > 0 && c->py.sock >= 0)
		return 0;
	zygote_stop(c);
	if ((size_t)snprintf(script, sizeof(script), "%s/python_zygote.py", c->shims) >=
	    sizeof(script))
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	argv[0] = c->python;
	argv[1] = "-I";
	argv[2] = script;
	argv[3] = "3";
	argv[4] = NULL;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		/* async-signal-safe calls only: the parent is multi-threaded */
		zygote_child_reset();
		if (fchdir(c->ws_fd) < 0) {
			/* keep going from the executor's cwd: children chdir themselves */
		}
		nul = open("/dev/null", O_RDWR);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(sv[1], 3) < 0)
			_exit(127);
		close_range(4, ~0u, 0);
		if (strchr(c->python, '/'))
			execve(c->python, argv, envp);
		else
			execvpe(c->python, argv, envp);
		_exit(127);
	}
	close(sv[1]);
	c->py.pid = pid;
	c->py.sock = sv[0];
	c->py.len = 0;
	c->children = 1;
	pthread_cond_signal(&c->reap_cond);
	fprintf(stderr, "sbx-executor: python zygote started pid=%d\n", (int)pid);
	return 0;
}

/* sends one job; the three fds are duplicated into the zygote (caller keeps its copies) */
int zygote_send(struct ctx *c, int sock, const char *payload, size_t len, const int fds[3])
{
	unsigned char hdr[8];
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm;
	ssize_t n;
	size_t off = 0;

	(void)c;
	for (int i = 0; i < 8; i++)
		hdr[i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	memset(u.buf, 0, sizeof(u.buf));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(3 * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, 3 * sizeof(int));
	do {
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(hdr))
		return -1;
	while (off < len) {
		n = send(sock, payload + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/*
 * Reads what is available from the zygote. Returns 1 with *out set to one report, 0 when
 * no complete line is buffered yet, -1 when the zygote is gone (EOF or error).
 */
int zygote_read(struct zygote *z, json_t **out)
{
	char *nl;
	ssize_t n;
	size_t line;

	*out = NULL;
	for (;;) {
		nl = memchr(z->buf, '\n', z->len);
		if (nl) {
			line = (size_t)(nl - z->buf);
			*out = json_loadb(z->buf, line, 0, NULL);
			memmove(z->buf, nl + 1, z->len - line - 1);
			z->len -= line + 1;
			if (*out)
				return 1;
			continue; /* not JSON: ignore the line */
		}
		if (z->len == sizeof(z->buf))
			z->len = 0; /* an absurd line: drop it */
		n = recv(z->sock, z->buf + z->len, sizeof(z->buf) - z->len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		z->len += (size_t)n;
	}
}
