/*
 * Readiness of a new sandbox: wait (bounded) until its executor listens on the socket and
 * answers GET /health with 200, noticing early when the sandbox's init died instead.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plugins/runtime/common/execready.h"
#include "linux.h"

/* The last line of the executor's log, to say why a sandbox died. */
static void log_tail(const char *log_path, char *out, size_t cap)
{
	char buf[512];
	ssize_t n;
	off_t size;
	int fd = open(log_path, O_RDONLY | O_CLOEXEC);

	out[0] = '\0';
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > 0) {
		off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
		n = pread(fd, buf, sizeof buf - 1, from);
		if (n > 0) {
			char *s;
			size_t l;
			buf[n] = '\0';
			while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
				buf[--n] = '\0';
			s = strrchr(buf, '\n');
			s = s ? s + 1 : buf;
			l = strlen(s) < cap ? strlen(s) : cap - 1; /* truncation intended */
			memcpy(out, s, l);
			out[l] = '\0';
		}
	}
	close(fd);
}

int ready_wait(const struct lx *lx, const char *sock, pid_t pid, const char *log_path, sbx_err *err)
{
	int64_t deadline = lx->core->monotonic_ms() + LX_READY_TIMEOUT_MS;
	long nap_us = 200;
	char tail[256];
	int st;

	for (;;) {
		if (rt_socket_listening(sock) == 0)
			return rt_executor_health(lx->core, sock, err);
		if (waitpid(pid, &st, WNOHANG) == pid) {
			log_tail(log_path, tail, sizeof tail);
			return sbx_err_set(err, SBX_E_UNAVAILABLE,
					   "the executor exited (%s %d) before it was ready%s%s",
					   WIFSIGNALED(st) ? "signal" : "status",
					   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
					   tail[0] ? ": " : "", tail);
		}
		if (lx->core->monotonic_ms() > deadline) {
			log_tail(log_path, tail, sizeof tail);
			return sbx_err_set(err, SBX_E_TIMEOUT,
					   "the executor did not listen on %s within %d ms%s%s",
					   sock, LX_READY_TIMEOUT_MS, tail[0] ? ": " : "", tail);
		}
		{
			struct timespec ts = {0, nap_us * 1000};
			nanosleep(&ts, NULL);
		}
		if (nap_us < 1000)
			nap_us *= 2;
	}
}
