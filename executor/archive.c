/*
 * GET and PUT /archive: the whole workspace as a tar stream, produced or extracted by the
 * image's tar in a child process (the body streamed through a pipe), each tar watched by a
 * supervisor thread that keeps its stderr's tail and kills it at the 10-minute deadline.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <microhttpd.h>

#include "executor.h"
#include "zygote.h"

#define ARCHIVE_TIMEOUT_MS (10 * 60 * 1000.0)
#define LIST_ENTRIES       5000000  /* workspace entries an archive may hold */
#define LIST_MS            120000.0 /* time to list them */
#define TAIL_MAX           1024     /* bytes of tar's stderr kept for the error message */
#define CHUNK              (64 * 1024)
#define NO_TAR                                                                                     \
	"tar is not installed in the sandbox image (not on the executor's PATH); /archive runs it"

struct archive {
	struct ctx *c;
	pid_t pid; /* 0 until tar is started */
	int pidfd; /* pins tar for the kill (-1 if pidfd_open failed) */
	int slot;  /* in c->archive_pids */
	int data;  /* GET: read end of tar's stdout; PUT: write end of its stdin */
	int errfd; /* read end of tar's stderr (the supervisor's) */
	double deadline;
	/* guarded by c->lock; waiters use c->watch_cond */
	int refs;
	int exited, status, killed, timed_out;
	char tail[TAIL_MAX + 1]; /* the end of tar's stderr, complete once exited */
	size_t tail_len;
	/* GET: the first bytes, read before the response is queued */
	char *pre;
	size_t pre_len, pre_off;
	/* PUT */
	uint64_t bytes;
	unsigned int err_code;
	char err[256];
};

static void unref(struct archive *a)
{
	struct ctx *c = a->c;
	int last;

	pthread_mutex_lock(&c->lock);
	last = --a->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	if (a->data >= 0)
		close(a->data);
	if (a->pidfd >= 0)
		close(a->pidfd);
	free(a->pre);
	free(a);
}

/* c->lock held */
static void kill_locked(struct archive *a)
{
	if (!a->pid || a->exited || a->killed)
		return;
	a->killed = 1;
	if (a->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, a->pidfd, SIGKILL, NULL, 0);
	else
		kill(a->pid, SIGKILL); /* not yet reported by the reaper: not recycled */
}

static void kill_tar(struct archive *a)
{
	pthread_mutex_lock(&a->c->lock);
	kill_locked(a);
	pthread_mutex_unlock(&a->c->lock);
}

static void keep_tail(struct archive *a, const char *buf, size_t n)
{
	if (n >= TAIL_MAX) {
		memcpy(a->tail, buf + n - TAIL_MAX, TAIL_MAX);
		a->tail_len = TAIL_MAX;
	} else {
		if (a->tail_len + n > TAIL_MAX) {
			size_t drop = a->tail_len + n - TAIL_MAX;
			memmove(a->tail, a->tail + drop, a->tail_len - drop);
			a->tail_len -= drop;
		}
		memcpy(a->tail + a->tail_len, buf, n);
		a->tail_len += n;
	}
	a->tail[a->tail_len] = 0;
}

/* drains tar's stderr, enforces the deadline, collects the exit status from the reaper */
static void *supervise(void *arg)
{
	struct archive *a = arg;
	struct ctx *c = a->c;
	char buf[4096];
	struct timespec ts;
	double left;
	ssize_t n;
	int st = 0;

	for (;;) {
		struct pollfd p = {.fd = a->errfd, .events = POLLIN};
		left = a->deadline - mono_ms();
		if (left <= 0) {
			pthread_mutex_lock(&c->lock);
			a->timed_out = !a->killed || a->timed_out;
			kill_locked(a);
			pthread_mutex_unlock(&c->lock);
			left = 1000;
		}
		if (poll(&p, 1, (int)left + 1) <= 0)
			continue;
		n = read(a->errfd, buf, sizeof(buf));
		if (n > 0) {
			pthread_mutex_lock(&c->lock);
			keep_tail(a, buf, (size_t)n);
			pthread_mutex_unlock(&c->lock);
		} else if (n == 0 || errno != EINTR) {
			break; /* tar exited (or closed its stderr) */
		}
	}
	close(a->errfd);
	a->errfd = -1;
	pthread_mutex_lock(&c->lock);
	while (!reaper_take(c, a->pid, &st)) {
		if (mono_ms() >= a->deadline && !a->killed) {
			a->timed_out = 1;
			kill_locked(a);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&c->watch_cond, &c->lock, &ts);
	}
	a->exited = 1;
	a->status = st;
	c->archive_pids[a->slot] = 0;
	pthread_cond_broadcast(&c->watch_cond);
	pthread_mutex_unlock(&c->lock);
	unref(a);
	return NULL;
}

static void wait_exit(struct archive *a)
{
	pthread_mutex_lock(&a->c->lock);
	while (!a->exited)
		pthread_cond_wait(&a->c->watch_cond, &a->c->lock);
	pthread_mutex_unlock(&a->c->lock);
}

static struct archive *archive_new(struct ctx *c)
{
	struct archive *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->c = c;
	a->refs = 1;
	a->pidfd = a->data = a->errfd = -1;
	a->deadline = mono_ms() + ARCHIVE_TIMEOUT_MS;
	return a;
}

/*
 * Starts `tar ARGS` in the workspace with fd 0 = in, 1 = out (-1: /dev/null) and stderr to the
 * supervisor. 0, or an HTTP status with a->err set.
 */
static unsigned int start_tar(struct archive *a, const char *tar, char *const argv[], int in,
			      int out)
{
	static char *const envp[] = {"PATH=" EXEC_BASE_PATH, "LANG=" EXEC_BASE_LANG, NULL};
	struct ctx *c = a->c;
	unsigned int code = 500;
	int perr[2] = {-1, -1}, nul = -1, slot = -1, watched = -1;
	pthread_t th;
	pid_t pid;

	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0 || pipe2(perr, O_CLOEXEC) < 0) {
		snprintf(a->err, sizeof(a->err), "cannot start tar: %s", strerror(errno));
		goto out;
	}
	if (in < 0)
		in = nul;
	if (out < 0)
		out = nul;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < ARCHIVE_MAX && slot < 0; i++)
		if (!c->archive_pids[i])
			slot = i;
	if (c->stopping || slot < 0) {
		code = c->stopping ? 503 : 429;
		pthread_mutex_unlock(&c->lock);
		snprintf(a->err, sizeof(a->err), "%s",
			 code == 503 ? "the executor is stopping"
				     : "too many archive requests at once (at most 4)");
		goto out;
	}
	pid = fork();
	if (pid == 0) {
		/* async-signal-safe calls only: the parent is multi-threaded */
		zygote_child_reset();
		if (fchdir(c->ws_fd) < 0)
			_exit(127);
		int i0 = fcntl(in, F_DUPFD, 10), o1 = fcntl(out, F_DUPFD, 10);
		int e2 = fcntl(perr[1], F_DUPFD, 10);
		if (i0 < 0 || o1 < 0 || e2 < 0 || dup2(i0, 0) < 0 || dup2(o1, 1) < 0 ||
		    dup2(e2, 2) < 0)
			_exit(127);
		close_range(3, ~0u, 0);
		setsid();
		execve(tar, argv, envp);
		_exit(127);
	}
	if (pid > 0) {
		watched = reaper_watch(c, pid);
		if (watched < 0)
			kill(pid, SIGKILL); /* unreaped until we unlock: not recycled */
	}
	if (pid > 0 && watched >= 0) {
		a->pid = pid;
		a->slot = slot;
		a->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		c->archive_pids[slot] = pid;
		c->children = 1;
		pthread_cond_signal(&c->reap_cond);
		a->refs++; /* the supervisor's */
	}
	pthread_mutex_unlock(&c->lock);
	if (!a->pid) {
		snprintf(a->err, sizeof(a->err), "cannot start tar: %s",
			 pid < 0 ? strerror(errno) : "no watch slot free");
		goto out;
	}
	close(perr[1]);
	perr[1] = -1;
	a->errfd = perr[0];
	perr[0] = -1;
	if (pthread_create(&th, NULL, supervise, a) || pthread_detach(th)) {
		/* no supervisor: kill it and collect it here */
		close(a->errfd);
		a->errfd = -1;
		kill_tar(a);
		pthread_mutex_lock(&c->lock);
		while (!reaper_take(c, a->pid, &a->status))
			pthread_cond_wait(&c->watch_cond, &c->lock);
		a->exited = 1;
		c->archive_pids[slot] = 0;
		a->refs--;
		pthread_mutex_unlock(&c->lock);
		snprintf(a->err, sizeof(a->err), "cannot start a thread");
		goto out;
	}
	code = 0;
out:
	if (perr[0] >= 0)
		close(perr[0]);
	if (perr[1] >= 0)
		close(perr[1]);
	if (nul >= 0)
		close(nul);
	return code;
}

/* "tar failed (exit 2): <tail>" */
static void describe_failure(struct archive *a, char *buf, size_t n)
{
	const char *tail = a->tail;
	size_t tl;
	int st = a->status;

	while (*tail == '\n')
		tail++;
	tl = strlen(tail);
	while (tl && tail[tl - 1] == '\n')
		tl--;
	if (a->timed_out)
		snprintf(buf, n, "tar did not finish within %.0f s", ARCHIVE_TIMEOUT_MS / 1000);
	else if (WIFEXITED(st))
		snprintf(buf, n, "tar failed (exit %d)%s%.*s", WEXITSTATUS(st), tl ? ": " : "",
			 (int)tl, tail);
	else
		snprintf(buf, n, "tar was killed by signal %d%s%.*s",
			 WIFSIGNALED(st) ? WTERMSIG(st) : 0, tl ? ": " : "", (int)tl, tail);
}

static char *find_tar(struct request *rq, int *rc)
{
	char *tar = run_which("tar");

	if (!tar)
		*rc = http_error(rq, 501, "%s", NO_TAR);
	return tar;
}

/* ---- GET: tar -c of a list made by the confined walker ---------------------------------- */

struct list {
	int fd;
	char buf[CHUNK];
	size_t len;
	int err;
};

static int list_flush(struct list *l)
{
	size_t off = 0;
	ssize_t n;

	while (off < l->len) {
		n = write(l->fd, l->buf + off, l->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	l->len = 0;
	return 0;
}

/* "./path\0" for directories, regular files and symlinks; FIFOs, sockets, devices are left out */
static int list_add(void *arg, const char *rel, const struct stat *st)
{
	struct list *l = arg;
	size_t n = strlen(rel) + 3;

	if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode) && !S_ISLNK(st->st_mode))
		return 0;
	if (l->len + n > sizeof(l->buf) && list_flush(l) < 0)
		return -1;
	memcpy(l->buf + l->len, "./", 2);
	memcpy(l->buf + l->len + 2, rel, n - 2); /* with its NUL */
	l->len += n;
	return 0;
}

/* blocks (this is MHD's thread for this connection only) until data, EOF or the deadline */
static ssize_t read_some(struct archive *a, char *buf, size_t max)
{
	struct pollfd p = {.fd = a->data, .events = POLLIN};
	double left;
	ssize_t n;

	for (;;) {
		left = a->deadline - mono_ms();
		if (left <= 0) {
			kill_tar(a);
			return -1;
		}
		if (poll(&p, 1, (int)left + 1) < 0 && errno != EINTR)
			return -1;
		n = read(a->data, buf, max);
		if (n >= 0)
			return n;
		if (errno != EINTR && errno != EAGAIN)
			return -1;
	}
}

/* tar -c: 0 is success, 1 is "a file changed while it was read" (the archive is whole) */
static int create_ok(const struct archive *a)
{
	return !a->timed_out && WIFEXITED(a->status) && WEXITSTATUS(a->status) <= 1;
}

static ssize_t get_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct archive *a = cls;
	ssize_t n;

	(void)pos;
	if (a->pre_off < a->pre_len) {
		n = (ssize_t)(a->pre_len - a->pre_off < max ? a->pre_len - a->pre_off : max);
		memcpy(buf, a->pre + a->pre_off, (size_t)n);
		a->pre_off += (size_t)n;
		return n;
	}
	n = read_some(a, buf, max);
	if (n > 0)
		return n;
	if (n < 0)
		kill_tar(a);
	wait_exit(a);
	if (n == 0 && create_ok(a))
		return MHD_CONTENT_READER_END_OF_STREAM;
	{
		char why[TAIL_MAX + 128];
		describe_failure(a, why, sizeof(why));
		fprintf(stderr, "sbx-executor: GET /archive cut short: %s\n", why);
	}
	return MHD_CONTENT_READER_END_WITH_ERROR; /* the client sees a truncated stream */
}

static void get_free(void *cls)
{
	struct archive *a = cls;

	kill_tar(a); /* the client went away mid-stream */
	unref(a);
}

static int do_get(struct ctx *c, struct request *rq)
{
	static char *const argv[] = {"tar",
				     "--numeric-owner",
				     "--ignore-failed-read",
				     "--null",
				     "--no-recursion",
				     "-T",
				     "-",
				     "-cf",
				     "-",
				     NULL};
	struct list *l = NULL;
	struct archive *a = NULL;
	struct MHD_Response *resp;
	char *tar, why[TAIL_MAX + 128];
	int rc = MHD_NO, wrc, pout[2] = {-1, -1};
	unsigned int code;
	ssize_t n;

	tar = find_tar(rq, &rc);
	if (!tar)
		return rc;
	a = archive_new(c);
	l = malloc(sizeof(*l));
	if (!a || !l)
		goto out;
	/* the workspace itself first: its entry keeps the archive non-empty */
	l->len = 0;
	l->fd = memfd_create("archive-list", MFD_CLOEXEC);
	if (l->fd < 0 || pipe2(pout, O_CLOEXEC) < 0) {
		rc = http_error(rq, 500, "cannot list the workspace: %s", strerror(errno));
		goto out;
	}
	memcpy(l->buf, ".", 2);
	l->len = 2;
	wrc = walk_workspace(c, LIST_ENTRIES, LIST_MS, list_add, l);
	if (wrc == 0 && list_flush(l) < 0)
		wrc = -1;
	if (wrc != 0) {
		rc = wrc > 0
			 ? http_error(rq, 500,
				      "the workspace is too large to archive (more than %d "
				      "entries, or not listed within %.0f s)",
				      LIST_ENTRIES, LIST_MS / 1000)
			 : http_error(rq, 500, "cannot list the workspace: %s", strerror(errno));
		goto out;
	}
	lseek(l->fd, 0, SEEK_SET);
	code = start_tar(a, tar, argv, l->fd, pout[1]);
	close(pout[1]);
	pout[1] = -1;
	if (code) {
		rc = http_error(rq, code, "%s", a->err);
		goto out;
	}
	a->data = pout[0];
	pout[0] = -1;
	/* the first bytes before the status line: a tar that fails at once is a 500, not a
	 * truncated 200 */
	a->pre = malloc(CHUNK);
	n = a->pre ? read_some(a, a->pre, CHUNK) : -1;
	if (n <= 0) {
		kill_tar(a);
		wait_exit(a);
		describe_failure(a, why, sizeof(why));
		rc = http_error(rq, 500, "%s", why);
		goto out;
	}
	a->pre_len = (size_t)n;
	pthread_mutex_lock(&c->lock);
	a->refs++; /* the response's */
	pthread_mutex_unlock(&c->lock);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, CHUNK, get_reader, a, get_free);
	if (!resp) {
		get_free(a);
		goto out;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-tar");
	rq->ar = a; /* the request's reference: archive_release */
	a = NULL;
	rc = http_reply(rq, 200, resp);
out:
	if (a) {
		kill_tar(a);
		unref(a);
	}
	if (l) {
		if (l->fd >= 0)
			close(l->fd);
		free(l);
	}
	for (int i = 0; i < 2; i++)
		if (pout[i] >= 0)
			close(pout[i]);
	free(tar);
	return rc;
}

/* ---- PUT: the body piped into tar -x as it arrives -------------------------------------- */

static struct archive *put_begin(struct ctx *c)
{
	static char *const argv[] = {"tar",
				     "-x",
				     "-f",
				     "-",
				     "--no-same-owner",
				     "--no-same-permissions",
				     "--no-overwrite-dir",
				     "--delay-directory-restore",
				     NULL};
	struct archive *a = archive_new(c);
	int pin[2];
	char *tar;

	if (!a)
		return NULL;
	tar = run_which("tar");
	if (!tar) {
		a->err_code = 501;
		snprintf(a->err, sizeof(a->err), "%s", NO_TAR);
		return a;
	}
	if (pipe2(pin, O_CLOEXEC) < 0) {
		a->err_code = 500;
		snprintf(a->err, sizeof(a->err), "cannot start tar: %s", strerror(errno));
		free(tar);
		return a;
	}
	a->err_code = start_tar(a, tar, argv, pin[0], -1);
	close(pin[0]);
	a->data = pin[1];
	free(tar);
	return a;
}

static void put_write(struct ctx *c, struct archive *a, const char *data, size_t n)
{
	size_t off = 0;
	ssize_t w;

	if (a->err_code)
		return;
	if (a->bytes + n > c->max_archive) {
		/* cut off: what tar extracted so far stays (a Content-Length is refused sooner) */
		a->err_code = 413;
		snprintf(a->err, sizeof(a->err), "archive larger than %llu bytes",
			 (unsigned long long)c->max_archive);
		kill_tar(a);
		return;
	}
	a->bytes += n;
	while (off < n && a->data >= 0) {
		/* may block while tar is busy: this is the connection's own thread, and the
		 * supervisor's kill at the deadline turns it into EPIPE */
		w = write(a->data, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			close(a->data); /* tar stopped reading (it failed): its status says why */
			a->data = -1;
			return;
		}
		off += (size_t)w;
	}
}

struct count {
	json_int_t files, bytes;
};

static int count_file(void *arg, const char *rel, const struct stat *st)
{
	struct count *k = arg;

	(void)rel;
	if (S_ISREG(st->st_mode)) {
		k->files++;
		k->bytes += st->st_size;
	}
	return 0;
}

static int put_finish(struct ctx *c, struct request *rq, struct archive *a)
{
	struct count k = {0, 0};
	char why[TAIL_MAX + 128];
	int wrc;

	if (a->data >= 0) {
		close(a->data); /* end of the archive */
		a->data = -1;
	}
	if (a->pid)
		wait_exit(a);
	if (a->err_code)
		return http_error(rq, a->err_code, "%s", a->err);
	if (a->timed_out || !WIFEXITED(a->status) || WEXITSTATUS(a->status)) {
		describe_failure(a, why, sizeof(why));
		return http_error(rq, a->timed_out ? 500 : 400, "%s", why);
	}
	wrc = walk_workspace(c, LIST_ENTRIES, LIST_MS, count_file, &k);
	if (wrc < 0)
		return http_error(rq, 500, "cannot list the workspace: %s", strerror(errno));
	return http_json(
	    rq, 200,
	    json_pack("{s:I, s:I, s:b}", "files", k.files, "bytes", k.bytes, "truncated", wrc > 0));
}

int archive_handle(struct ctx *c, struct request *rq, const char *data, size_t *size)
{
	if (strcmp(rq->method, "PUT") == 0) {
		/* never reply while body data is pending: errors wait for the end of the body */
		if (!rq->ar) {
			rq->ar = put_begin(c);
			if (!rq->ar)
				return MHD_NO;
		}
		if (*size) {
			put_write(c, rq->ar, data, *size);
			*size = 0;
			return 0;
		}
		return put_finish(c, rq, rq->ar);
	}
	if (*size) {
		*size = 0;
		return 0;
	}
	if (strcmp(rq->method, "GET") == 0)
		return do_get(c, rq);
	return http_error(rq, 405, "use GET or PUT");
}

void archive_release(struct archive *a)
{
	if (!a)
		return;
	kill_tar(a); /* an aborted request leaves no tar behind */
	unref(a);
}
