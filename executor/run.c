/*
 * One execution from spawn to result: pipes for stdout/stderr/result, the python zygote, the
 * pre-spawned idle node (else a fresh node) or a fresh bash child, a poll loop that streams
 * capped output and enforces the deadline, then the kill of every leftover process and the
 * Result object (docs/executor-protocol.md).
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
#include <sys/wait.h>
#include <unistd.h>

#include "executor.h"
#include "zygote.h"

#define SANDBOX_EVENT_MAX (120u << 10) /* one env string must stay under MAX_ARG_STRLEN */
#define GRACE_MS          2000         /* wait for pipe EOF after the tree was killed */
#define HANDOFF_MS        5000 /* an idle node slower than this to take its job is dropped */

struct capture {
	const char *name; /* "stdout" / "stderr" / NULL for the result channel */
	int fd;
	char *data;
	size_t len, cap;
	int truncated;
	char pend[4]; /* an incomplete UTF-8 sequence held for the next chunk */
	size_t pendlen;
};

struct run {
	struct ctx *c;
	struct execution *e;
	struct capture cap[3]; /* stdout, stderr, result */
	int child_done;
	int status; /* wait status, -1 if unknown */
	double cpu_ms, rss_mb;
	pid_t pid;
	int watched;
	int zsock;
	int zgone;
	int timed_out;
	double t_done; /* monotonic ms when the handler's end was seen */
};

/* length of the valid UTF-8 sequence at s (1..4), 0 if invalid, -1 if cut short by the end */
static int utf8_seq(const unsigned char *s, size_t n)
{
	int len;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
		if (i == 1 && ((len == 3 && s[0] == 0xe0 && s[1] < 0xa0) ||
			       (len == 3 && s[0] == 0xed && s[1] > 0x9f) ||
			       (len == 4 && s[0] == 0xf0 && s[1] < 0x90) ||
			       (len == 4 && s[0] == 0xf4 && s[1] > 0x8f)))
			return 0;
	}
	(void)cp;
	return len;
}

/*
 * Copies valid UTF-8 from in to out (room for 3 * n bytes), invalid bytes become U+FFFD.
 * Unless final, an incomplete sequence at the end is not consumed. Returns bytes written.
 */
static size_t utf8_clean(const char *in, size_t n, char *out, int final, size_t *consumed)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0;
	int l;

	while (i < n) {
		l = utf8_seq(s + i, n - i);
		if (l < 0 && !final)
			break;
		if (l <= 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, (size_t)l);
		o += (size_t)l;
		i += (size_t)l;
	}
	if (consumed)
		*consumed = i;
	return o;
}

static json_t *clean_string(const char *s, size_t n)
{
	char *buf = malloc(3 * n + 1);
	json_t *j;
	size_t o;

	if (!buf)
		return json_string("");
	o = utf8_clean(s, n, buf, 1, NULL);
	j = json_stringn(buf, o);
	free(buf);
	return j ? j : json_string("");
}

static void emit_chunk(struct run *r, struct capture *k, const char *data, size_t n, int final)
{
	char *joined, *clean;
	size_t total = k->pendlen + n, used = 0, o;

	if (!total)
		return;
	joined = malloc(total);
	clean = malloc(3 * total + 1);
	if (!joined || !clean)
		goto out;
	memcpy(joined, k->pend, k->pendlen);
	memcpy(joined + k->pendlen, data, n);
	o = utf8_clean(joined, total, clean, final, &used);
	k->pendlen = total - used; /* at most 3 bytes: one incomplete sequence */
	memcpy(k->pend, joined + used, k->pendlen);
	if (o)
		registry_emit(r->c, r->e,
			      json_pack("{s:s, s:s%}", "type", k->name, "data", clean, o));
out:
	free(joined);
	free(clean);
}

/* appends what fits under the cap; the rest is read and dropped so the writer never blocks */
static void absorb(struct run *r, struct capture *k, const char *buf, size_t n)
{
	size_t take = 0;

	if (k->len < k->cap) {
		take = k->cap - k->len < n ? k->cap - k->len : n;
		memcpy(k->data + k->len, buf, take);
		k->len += take;
		if (k->name)
			emit_chunk(r, k, buf, take, 0);
	}
	if (take < n)
		k->truncated = 1;
}

/* reads until EAGAIN; returns -1 once the pipe is at EOF (and closes it) */
static int drain(struct run *r, struct capture *k)
{
	char buf[65536];
	ssize_t n;

	while (k->fd >= 0) {
		n = read(k->fd, buf, sizeof(buf));
		if (n > 0) {
			absorb(r, k, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		close(k->fd);
		k->fd = -1;
		if (k->name && k->pendlen)
			emit_chunk(r, k, "", 0, 1);
		return -1;
	}
	return -1;
}

static int result_complete(const struct capture *k)
{
	return k->len > 0 && k->data[k->len - 1] == '\n';
}

static json_t *handler_env(struct ctx *c, struct execution *e)
{
	json_t *env = json_pack("{s:s, s:s, s:s, s:s}", "PATH", EXEC_BASE_PATH, "HOME",
				c->workspace, "TMPDIR", EXEC_BASE_TMPDIR, "LANG", EXEC_BASE_LANG);
	char *ev;

	json_object_update(env, e->env);
	if (e->lang == LANG_SHELL) {
		ev = json_dumps(e->event, JSON_COMPACT | JSON_ENCODE_ANY);
		if (ev && strlen(ev) <= SANDBOX_EVENT_MAX)
			json_object_set_new(env, "SANDBOX_EVENT", json_string(ev));
		free(ev);
	}
	return env;
}

static json_t *handler_context(struct execution *e)
{
	json_t *ctxj =
	    json_pack("{s:s, s:I, s:I}", "execution_id", e->id, "timeout_ms",
		      (json_int_t)e->timeout_ms, "remaining_time_ms", (json_int_t)e->timeout_ms);
	if (e->session_id)
		json_object_set(ctxj, "session_id", e->session_id);
	return ctxj;
}

static char **env_array(json_t *env)
{
	char **v = calloc(json_object_size(env) + 1, sizeof(*v));
	const char *k;
	json_t *val;
	size_t i = 0;

	if (!v)
		return NULL;
	json_object_foreach (env, k, val) {
		if (asprintf(&v[i], "%s=%s", k, json_string_value(val)) < 0)
			break;
		i++;
	}
	return v;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

char *run_which(const char *prog)
{
	const char *path = getenv("PATH");
	char *dup, *dir, *save = NULL, *cand = NULL;

	dup = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(dup, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		if (asprintf(&cand, "%s/%s", dir, prog) < 0) {
			cand = NULL;
			break;
		}
		if (access(cand, X_OK) == 0)
			break;
		free(cand);
		cand = NULL;
	}
	free(dup);
	return cand;
}

static int memfd_with(const char *name, const char *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	size_t off = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/* python: hand the job to the zygote (restarting it once if it turns out to be dead) */
static int start_python(struct run *r, const int wfd[3], json_t *env, const char **why)
{
	struct ctx *c = r->c;
	struct execution *e = r->e;
	json_t *job =
	    json_pack("{s:s, s:O, s:O, s:s, s:I, s:I, s:o}", "code", e->code, "event", e->event,
		      "env", env, "cwd", c->workspace, "max_output", (json_int_t)e->max_output,
		      "timeout_ms", (json_int_t)e->timeout_ms, "context", handler_context(e));
	char *payload = job ? json_dumps(job, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	int rc = -1;

	json_decref(job);
	*why = "cannot encode the job";
	if (!payload)
		goto out;
	for (int attempt = 0; attempt < 2; attempt++) {
		pthread_mutex_lock(&c->lock);
		if (attempt)
			zygote_stop(c);
		rc = zygote_ensure(c);
		r->zsock = c->py.sock;
		pthread_mutex_unlock(&c->lock);
		*why = "the python interpreter could not start";
		if (rc < 0)
			goto out;
		rc = zygote_send(c, r->zsock, payload, strlen(payload), wfd);
		if (rc == 0)
			break;
	}
out:
	free(payload);
	return rc;
}

/*
 * javascript (cold start) and shell: a fresh child with stdin = memfd holding input (the job,
 * or the event), 1/2 = pipes, 3 = result pipe or script
 */
static int start_child(struct run *r, const int wfd[3], json_t *env, const char *input,
		       const char **why)
{
	struct ctx *c = r->c;
	struct execution *e = r->e;
	char *prog = NULL, *script = NULL, **envp = NULL;
	char *argv[4];
	int in_fd = -1, fd3 = -1, rc = -1;
	pid_t pid;

	prog = run_which(e->lang == LANG_SHELL ? "bash" : "node");
	*why = e->lang == LANG_SHELL ? "bash not found on PATH" : "node not found on PATH";
	if (!prog)
		goto out;
	*why = "cannot prepare the handler's input";
	envp = env_array(env);
	if (!envp || !input)
		goto out;
	in_fd = memfd_with(e->lang == LANG_SHELL ? "event" : "job", input, strlen(input));
	if (e->lang == LANG_SHELL) {
		fd3 = memfd_with("script", e->code, strlen(e->code));
		argv[0] = "bash";
		argv[1] = "/dev/fd/3";
		argv[2] = NULL;
	} else {
		fd3 = wfd[2];
		if (asprintf(&script, "%s/node_runner.js", c->shims) < 0)
			script = NULL;
		argv[0] = "node";
		argv[1] = script;
		argv[2] = NULL;
	}
	if (in_fd < 0 || fd3 < 0 || !argv[1])
		goto out;
	*why = "fork failed";
	pthread_mutex_lock(&c->lock);
	pid = fork();
	if (pid == 0) {
		/* async-signal-safe calls only: the parent is multi-threaded */
		zygote_child_reset();
		if (fchdir(c->ws_fd) < 0)
			_exit(127);
		/* move the sources above 3 first so no dup2 clobbers another */
		int a = fcntl(in_fd, F_DUPFD, 10), b = fcntl(wfd[0], F_DUPFD, 10);
		int d = fcntl(wfd[1], F_DUPFD, 10), s3 = fcntl(fd3, F_DUPFD, 10);
		if (a < 0 || b < 0 || d < 0 || s3 < 0 || dup2(a, 0) < 0 || dup2(b, 1) < 0 ||
		    dup2(d, 2) < 0 || dup2(s3, 3) < 0)
			_exit(127);
		close_range(4, ~0u, 0);
		setsid();
		execve(prog, argv, envp);
		_exit(127);
	}
	if (pid > 0) {
		r->pid = pid;
		r->watched = reaper_watch(c, pid) >= 0;
		c->children = 1;
		pthread_cond_signal(&c->reap_cond);
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
out:
	if (in_fd >= 0)
		close(in_fd);
	if (e->lang == LANG_SHELL && fd3 >= 0)
		close(fd3);
	free(prog);
	free(script);
	free_strv(envp);
	return rc;
}

/* the runner's job (shims/node_runner.js): the same for the idle node and a cold start */
static char *node_job(struct ctx *c, struct execution *e, json_t *env)
{
	json_t *job = json_pack("{s:s, s:O, s:I, s:o, s:O, s:s}", "code", e->code, "event",
				e->event, "max_output", (json_int_t)e->max_output, "context",
				handler_context(e), "env", env, "cwd", c->workspace);
	char *s = job ? json_dumps(job, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	json_decref(job);
	return s;
}

/*
 * Whether node, its loader or libc read the variable while starting, before the runner can
 * apply the execution's env: an execution that sets one (to anything but the idle node's value)
 * gets a cold start so that it takes effect exactly as before.
 */
static int read_at_startup(const char *name)
{
	static const char *const prefixes[] = {"NODE_",     "UV_",    "LD_",     "OPENSSL_",
					       "SSL_CERT_", "GLIBC_", "MALLOC_", "LC_"};

	if (strcmp(name, "LANG") == 0 || strcmp(name, "LANGUAGE") == 0)
		return 1;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

static int warm_env_ok(json_t *env)
{
	const char *k;
	json_t *v;

	json_object_foreach (env, k, v) {
		if (read_at_startup(k) &&
		    !(strcmp(k, "LANG") == 0 && strcmp(json_string_value(v), EXEC_BASE_LANG) == 0))
			return 0;
	}
	return 1;
}

/*
 * javascript: hands the job to the pre-spawned idle node, whose stdout/stderr/result pipes
 * become the execution's. -1 if there is none or it does not take the job: the caller
 * cold-starts. *t0 is the hand-off time.
 */
static int start_warm_node(struct run *r, const char *job, double *t0)
{
	struct ctx *c = r->c;
	struct idle_node n;
	pid_t pid;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = idlenode_take(c, &n);
	pthread_mutex_unlock(&c->lock);
	if (rc < 0)
		return -1;
	pid = n.pid;
	*t0 = mono_ms();
	if (idlenode_handoff(&n, job, strlen(job), HANDOFF_MS) < 0) {
		idlenode_discard(c, &n);
		fprintf(stderr,
			"sbx-executor: idle node pid=%d did not take execution %s: "
			"cold start\n",
			(int)pid, r->e->id);
		return -1;
	}
	r->pid = pid;
	r->watched = 1;
	for (int i = 0; i < 3; i++)
		r->cap[i].fd = n.out[i];
	return 0;
}

static void zygote_reports(struct run *r)
{
	json_t *m;
	int rc;

	while ((rc = zygote_read(&r->c->py, &m)) == 1) {
		json_t *st = json_object_get(m, "status");
		if (!st) {
			r->pid = (pid_t)json_integer_value(json_object_get(m, "pid"));
		} else if (!r->child_done) {
			r->child_done = 1;
			r->status = (int)json_integer_value(st);
			r->cpu_ms = 1000.0 * (json_number_value(json_object_get(m, "utime")) +
					      json_number_value(json_object_get(m, "stime")));
			r->rss_mb = json_number_value(json_object_get(m, "maxrss_kb")) / 1024.0;
		}
		json_decref(m);
	}
	if (rc < 0) {
		r->zgone = 1;
		pthread_mutex_lock(&r->c->lock);
		if (r->c->py.sock == r->zsock)
			zygote_stop(r->c);
		pthread_mutex_unlock(&r->c->lock);
		r->zsock = -1;
	}
}

static void watch_report(struct run *r)
{
	char buf[64];
	struct watch *w;

	while (read(r->c->wake_r, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&r->c->lock);
	for (int i = 0; i < EXEC_WATCH_MAX; i++) {
		w = &r->c->watches[i];
		if (w->pid == r->pid && w->done) {
			r->child_done = 1;
			r->status = w->status;
			r->cpu_ms =
			    w->ru.ru_utime.tv_sec * 1000.0 + w->ru.ru_utime.tv_usec / 1000.0 +
			    w->ru.ru_stime.tv_sec * 1000.0 + w->ru.ru_stime.tv_usec / 1000.0;
			r->rss_mb = w->ru.ru_maxrss / 1024.0;
			w->pid = 0;
			r->watched = 0;
		}
	}
	pthread_mutex_unlock(&r->c->lock);
}

static void loop(struct run *r, double t0)
{
	struct pollfd p[5];
	double deadline = t0 + r->e->timeout_ms, grace = 0, now;
	int np, killed_after = 0, wait_ms;

	for (;;) {
		now = mono_ms();
		if (r->zgone && !r->child_done &&
		    (r->cap[2].fd < 0 || result_complete(&r->cap[2]))) {
			/* the zygote died (a handler may kill it): the handler's end is its result
			 */
			r->child_done = 1;
		}
		if (!r->child_done && !r->timed_out && now >= deadline) {
			r->timed_out = 1;
			procs_kill_descendants(r->c, 1);
			grace = now + GRACE_MS;
		}
		if (r->child_done && !r->t_done)
			r->t_done = now;
		if ((r->child_done || r->timed_out) && !killed_after &&
		    (r->child_done || now >= grace)) {
			for (int i = 0; i < 3; i++)
				drain(r, &r->cap[i]);
			procs_kill_descendants(r->c, 1);
			killed_after = 1;
			grace = now + GRACE_MS;
		}
		if (killed_after &&
		    ((r->cap[0].fd < 0 && r->cap[1].fd < 0 && r->cap[2].fd < 0) || now >= grace))
			break;
		np = 0;
		for (int i = 0; i < 3; i++) {
			if (r->cap[i].fd >= 0)
				p[np++] = (struct pollfd){.fd = r->cap[i].fd, .events = POLLIN};
		}
		if (r->e->lang == LANG_PYTHON && r->zsock >= 0)
			p[np++] = (struct pollfd){.fd = r->zsock, .events = POLLIN};
		if (r->e->lang != LANG_PYTHON && r->watched)
			p[np++] = (struct pollfd){.fd = r->c->wake_r, .events = POLLIN};
		if (killed_after || r->timed_out)
			wait_ms = (int)(grace - now) + 1;
		else
			wait_ms = (int)(deadline - now) + 1;
		if (wait_ms < 0)
			wait_ms = 0;
		if (poll(p, (nfds_t)np, wait_ms) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 3; i++)
			if (r->cap[i].fd >= 0)
				drain(r, &r->cap[i]);
		if (r->e->lang == LANG_PYTHON && r->zsock >= 0)
			zygote_reports(r);
		if (r->e->lang != LANG_PYTHON && r->watched)
			watch_report(r);
		/* a timed-out tree was killed: once its status is in, finish like any other */
		if (r->timed_out && r->child_done && !killed_after)
			grace = 0;
	}
}

static const char *signame(int sig)
{
	const char *s = sigabbrev_np(sig);
	return s ? s : "?";
}

static json_t *make_result(struct run *r, double started, double t0, double t1,
			   const char *start_error)
{
	struct execution *e = r->e;
	json_t *res = NULL, *line = NULL, *rv = json_null();
	const char *status = "completed";
	char msg[4200] = "";
	int exit_code = 0, have_status = r->status != -1, rv_trunc = 0;

	if (r->cap[2].len)
		line = json_loadb(r->cap[2].data, r->cap[2].len, JSON_ALLOW_NUL, NULL);
	if (e->lang == LANG_JAVASCRIPT && json_is_number(json_object_get(line, "startup_cpu_ms"))) {
		/* node's own start-up (in the idle node: before the hand-off) is not the handler's
		 */
		r->cpu_ms -= json_number_value(json_object_get(line, "startup_cpu_ms"));
		if (r->cpu_ms < 0)
			r->cpu_ms = 0;
	}
	if (r->cap[2].truncated)
		rv_trunc = 1;
	if (have_status)
		exit_code = WIFEXITED(r->status)     ? WEXITSTATUS(r->status)
			    : WIFSIGNALED(r->status) ? 128 + WTERMSIG(r->status)
						     : -1;
	if (start_error) {
		status = "crashed";
		exit_code = -1;
		snprintf(msg, sizeof(msg), "%s", start_error);
	} else if (r->timed_out) {
		status = "timeout";
		snprintf(msg, sizeof(msg), "execution timed out after %ld ms", e->timeout_ms);
	} else if (e->lang == LANG_SHELL) {
		if (!have_status) {
			status = "crashed";
			snprintf(msg, sizeof(msg), "the script's exit status was lost");
		} else if (WIFSIGNALED(r->status)) {
			status = "crashed";
			snprintf(msg, sizeof(msg), "killed by signal %d (SIG%s)",
				 WTERMSIG(r->status), signame(WTERMSIG(r->status)));
		} else if (exit_code != 0) {
			status = "failed";
			snprintf(msg, sizeof(msg), "script exited with code %d", exit_code);
		}
	} else if (line && json_is_true(json_object_get(line, "ok"))) {
		if (json_is_true(json_object_get(line, "truncated")))
			rv_trunc = 1;
		else if (json_object_get(line, "value"))
			rv = json_incref(json_object_get(line, "value"));
	} else if (line) {
		status = "failed";
		snprintf(msg, sizeof(msg), "%s: %s",
			 json_string_value(json_object_get(line, "error_type")) ?: "Error",
			 json_string_value(json_object_get(line, "error_message")) ?: "");
		if (!exit_code)
			exit_code = 1;
	} else if (have_status && WIFSIGNALED(r->status)) {
		status = "crashed";
		snprintf(msg, sizeof(msg), "killed by signal %d (SIG%s)", WTERMSIG(r->status),
			 signame(WTERMSIG(r->status)));
	} else if (rv_trunc) {
		/* the result line itself overflowed the executor's bound */
	} else if (have_status && exit_code == 127 && e->lang == LANG_JAVASCRIPT &&
		   !r->cap[0].len && !r->cap[1].len) {
		status = "crashed";
		snprintf(msg, sizeof(msg), "the node interpreter could not start");
	} else if (have_status) {
		status = "failed";
		snprintf(msg, sizeof(msg),
			 "the handler process exited with code %d before "
			 "returning",
			 exit_code);
		if (!exit_code)
			exit_code = 1;
	} else {
		status = "crashed";
		exit_code = -1;
		snprintf(msg, sizeof(msg), "the %s interpreter died during the execution",
			 e->lang == LANG_PYTHON ? "python" : "node");
	}
	res = json_pack("{s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:b, s:b, s:b,"
			" s:{s:f, s:f, s:f}, s:I, s:I}",
			"id", e->id, "status", status, "exit_code", exit_code, "error_message",
			msg[0] ? json_string(msg) : json_null(), "return_value", rv, "stdout",
			clean_string(r->cap[0].data, r->cap[0].len), "stderr",
			clean_string(r->cap[1].data, r->cap[1].len), "stdout_truncated",
			r->cap[0].truncated, "stderr_truncated", r->cap[1].truncated,
			"return_value_truncated", rv_trunc, "metrics", "duration_ms", t1 - t0,
			"cpu_time_ms", r->cpu_ms, "peak_memory_mb", r->rss_mb, "started_at",
			(json_int_t)started, "completed_at", (json_int_t)now_ms());
	json_decref(line);
	return res;
}

void run_execution(struct ctx *c, struct execution *e)
{
	struct run r = {.c = c, .e = e, .status = -1, .zsock = -1, .watched = 0};
	int pfd[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
	int wfd[3];
	const char *why = NULL;
	struct snapshot *before = NULL;
	json_t *env = NULL, *res;
	char *input = NULL;
	double started = now_ms(), t0 = 0, t1, ta;

	r.cap[0].name = "stdout";
	r.cap[1].name = "stderr";
	r.cap[0].cap = r.cap[1].cap = e->max_output;
	r.cap[2].cap = e->max_output + 8192; /* room for the error fields around the value */
	for (int i = 0; i < 3; i++) {
		r.cap[i].fd = -1;
		r.cap[i].data = malloc(r.cap[i].cap);
		if (!r.cap[i].data) {
			why = "out of memory";
			goto finish;
		}
	}
	registry_emit(
	    c, e,
	    json_pack("{s:s, s:s, s:I}", "type", "start", "id", e->id, "ts", (json_int_t)started));
	/* before anything of the execution runs; not part of its duration_ms */
	ta = mono_ms();
	before = artifacts_snapshot(c);
	e->artifacts_ms = mono_ms() - ta;
	env = handler_env(c, e);
	if (e->lang == LANG_JAVASCRIPT) {
		input = node_job(c, e, env);
		if (input && warm_env_ok(e->env) && start_warm_node(&r, input, &t0) == 0)
			goto started;
	} else if (e->lang == LANG_SHELL) {
		input = json_dumps(e->event, JSON_COMPACT | JSON_ENCODE_ANY);
	}
	for (int i = 0; i < 3; i++) {
		if (pipe2(pfd[i], O_CLOEXEC) < 0) {
			why = "out of file descriptors";
			goto finish;
		}
		fcntl(pfd[i][0], F_SETFL, O_NONBLOCK);
		r.cap[i].fd = pfd[i][0];
		wfd[i] = pfd[i][1];
	}
	t0 = mono_ms();
	if (e->lang == LANG_PYTHON ? start_python(&r, wfd, env, &why) < 0
				   : start_child(&r, wfd, env, input, &why) < 0)
		goto finish;
	why = NULL;
	for (int i = 0; i < 3; i++) {
		close(pfd[i][1]);
		pfd[i][1] = -1;
	}
started:
	if (e->lang == LANG_JAVASCRIPT) {
		/* the next javascript execution's process, while this one runs */
		pthread_mutex_lock(&c->lock);
		idlenode_spawn(c);
		pthread_mutex_unlock(&c->lock);
	}
	loop(&r, t0);
finish:
	t1 = r.t_done ? r.t_done : mono_ms();
	if (why)
		t0 = t1;
	for (int i = 0; i < 3; i++) {
		if (pfd[i][1] >= 0)
			close(pfd[i][1]);
		if (r.cap[i].fd >= 0)
			close(r.cap[i].fd);
	}
	if (r.watched) {
		pthread_mutex_lock(&c->lock);
		reaper_unwatch(c, r.pid);
		pthread_mutex_unlock(&c->lock);
	}
	res = make_result(&r, started, t0, t1, why);
	/* after the leftover kill (in loop), so nothing of the execution still writes */
	ta = mono_ms();
	artifacts_report(c, before, res);
	e->artifacts_ms += mono_ms() - ta;
	json_object_set_new(res, "completed_at", json_integer((json_int_t)now_ms()));
	for (int i = 0; i < 3; i++)
		free(r.cap[i].data);
	free(input);
	json_decref(env);
	pthread_mutex_lock(&c->lock);
	e->result = res;
	pthread_mutex_unlock(&c->lock);
}
