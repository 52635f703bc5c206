/*
 * sbx-executor entry point: options, the listening socket (Unix or TCP + token), process
 * role (PID 1 or child subreaper), signals, and start-up of the HTTP, worker and reaper threads.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>

#include "executor.h"

static void on_signal(int sig)
{
	(void)sig; /* delivered through sigwait(); the handler only keeps PID 1 from ignoring it */
}

double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: sbx-executor (--socket PATH | --listen HOST:PORT --token-file FILE)\n"
		   "       [--workspace DIR] [--shims DIR] [--python PATH] [--max-output BYTES]\n"
		   "       [--max-upload BYTES] [--max-archive BYTES] [--max-artifacts N]\n"
		   "       [--preload python|javascript]\n"
		   "See docs/executor-protocol.md.\n");
}

static int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static char *read_token(const char *path)
{
	char buf[4097];
	size_t n, i = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
		buf[--n] = 0;
	while (buf[i] && strchr(" \t\r\n", buf[i]))
		i++;
	if (!buf[i])
		return NULL;
	return strdup(buf + i);
}

static char *default_shims(const char *argv0)
{
	char buf[PATH_MAX], *slash, *out = NULL;
	ssize_t n;

	/* argv[0] first: through the bundle's loader /proc/self/exe names the loader */
	if (strchr(argv0, '/') && realpath(argv0, buf)) {
		slash = strrchr(buf, '/');
		*slash = 0;
	} else {
		n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
		if (n <= 0)
			return strdup("/opt/sbx/shims");
		buf[n] = 0;
		slash = strrchr(buf, '/');
		*slash = 0;
	}
	if (asprintf(&out, "%s/../shims", buf) < 0)
		return NULL;
	return out;
}

static char *find_python(void)
{
	const char *path = getenv("PATH");
	char *dup, *dir, *save = NULL, *cand = NULL;

	if (access("/usr/bin/python3", X_OK) == 0)
		return strdup("/usr/bin/python3");
	if (!path)
		return strdup("python3");
	dup = strdup(path);
	for (dir = strtok_r(dup, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		if (asprintf(&cand, "%s/python3", dir) < 0) {
			cand = NULL;
			break;
		}
		if (access(cand, X_OK) == 0)
			break;
		free(cand);
		cand = NULL;
	}
	free(dup);
	return cand ? cand : strdup("python3");
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "sbx-executor: socket path too long (max %zu): %s\n",
			sizeof(sa.sun_path) - 1, path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (unlink(path) < 0 && errno != ENOENT)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	if (chmod(path, 0660) < 0)
		goto fail;
	if (listen(fd, 128) < 0)
		goto fail;
	return fd;
fail:
	fprintf(stderr, "sbx-executor: cannot listen on %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int listen_tcp(const char *hostport)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL, *ai;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	size_t hl;
	int fd = -1, one = 1, rc;

	if (!colon || colon == hostport || !colon[1] || (hl = colon - hostport) >= sizeof(host)) {
		fprintf(stderr, "sbx-executor: --listen wants HOST:PORT, got '%s'\n", hostport);
		return -1;
	}
	memcpy(host, hostport, hl);
	host[hl] = 0;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc) {
		fprintf(stderr, "sbx-executor: --listen %s: %s\n", hostport, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		fprintf(stderr, "sbx-executor: cannot listen on %s: %s\n", hostport,
			strerror(errno));
	freeaddrinfo(res);
	return fd;
}

static int parse_args(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"listen", required_argument, NULL, 'l'},
	    {"token-file", required_argument, NULL, 't'},
	    {"workspace", required_argument, NULL, 'w'},
	    {"shims", required_argument, NULL, 'S'},
	    {"python", required_argument, NULL, 'p'},
	    {"max-output", required_argument, NULL, 'o'},
	    {"max-upload", required_argument, NULL, 'u'},
	    {"max-archive", required_argument, NULL, 'a'},
	    {"max-artifacts", required_argument, NULL, 'A'},
	    {"preload", required_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint64_t v;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			c->socket_path = optarg;
			break;
		case 'l':
			c->listen_addr = optarg;
			break;
		case 't':
			free(c->token);
			c->token = read_token(optarg);
			if (!c->token) {
				fprintf(stderr, "sbx-executor: --token-file %s: missing or empty\n",
					optarg);
				return -1;
			}
			break;
		case 'w':
			c->workspace = optarg;
			break;
		case 'S':
			free(c->shims);
			c->shims = strdup(optarg);
			break;
		case 'p':
			free(c->python);
			c->python = strdup(optarg);
			break;
		case 'o':
			if (parse_size(optarg, 1024, 1ull << 30, &v) < 0) {
				fprintf(stderr,
					"sbx-executor: --max-output must be 1024..1073741824\n");
				return -1;
			}
			c->max_output = v;
			break;
		case 'u':
			if (parse_size(optarg, 1, 1ull << 40, &v) < 0) {
				fprintf(stderr,
					"sbx-executor: --max-upload must be 1..2^40 bytes\n");
				return -1;
			}
			c->max_upload = v;
			break;
		case 'a':
			if (parse_size(optarg, 1, 1ull << 40, &v) < 0) {
				fprintf(stderr,
					"sbx-executor: --max-archive must be 1..2^40 bytes\n");
				return -1;
			}
			c->max_archive = v;
			break;
		case 'A':
			if (parse_size(optarg, 0, 100000, &v) < 0) {
				fprintf(stderr,
					"sbx-executor: --max-artifacts must be 0..100000\n");
				return -1;
			}
			c->max_artifacts = (size_t)v;
			break;
		case 'P':
			if (strcmp(optarg, "python") == 0) {
				c->preload_python = 1;
			} else if (strcmp(optarg, "javascript") == 0) {
				c->preload_javascript = 1;
			} else if (strcmp(optarg, "shell")) {
				fprintf(stderr, "sbx-executor: --preload: unknown language '%s'\n",
					optarg);
				return -1;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || !!c->socket_path == !!c->listen_addr) {
		usage(stderr);
		return -1;
	}
	if (c->listen_addr && !c->token) {
		fprintf(stderr, "sbx-executor: --listen requires --token-file\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ctx c = {
	    .workspace = "/workspace",
	    .max_output = 1 << 20,
	    .max_upload = 100ull << 20,
	    .max_archive = 1ull << 30,
	    .max_artifacts = 1000,
	    .ws_fd = -1,
	    .wake_r = -1,
	    .wake_w = -1,
	    .py = {.sock = -1},
	    .js = {.job = -1, .ack = -1, .out = {-1, -1, -1}},
	};
	struct MHD_Daemon *d = NULL;
	struct sigaction sa = {.sa_handler = on_signal};
	pthread_t th;
	sigset_t set;
	int fd = -1, sig, p[2], rc = 1;

	if (parse_args(&c, argc, argv) < 0)
		return 2;
	if (!c.shims)
		c.shims = default_shims(argv[0]);
	if (!c.python)
		c.python = find_python();
	c.ws_fd = open(c.workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c.ws_fd < 0) {
		fprintf(stderr, "sbx-executor: workspace %s: %s\n", c.workspace, strerror(errno));
		goto out;
	}
	c.self = getpid();
	c.started_at = now_ms();
	if (c.self != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		fprintf(stderr, "sbx-executor: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
		goto out;
	}
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.queue_cond, NULL);
	pthread_cond_init(&c.reap_cond, NULL);
	pthread_cond_init(&c.watch_cond, NULL);
	if (artifacts_init() < 0) {
		fprintf(stderr, "sbx-executor: libcrypto did not initialise\n");
		goto out;
	}
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		goto out;
	c.wake_r = p[0];
	c.wake_w = p[1];

	/* every thread inherits this mask: SIGTERM/SIGINT are taken by sigwait() below;
	 * children get a clean mask back before exec (run.c, zygote.c) */
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	fd = c.socket_path ? listen_unix(c.socket_path) : listen_tcp(c.listen_addr);
	if (fd < 0)
		goto out;
	if (pthread_create(&th, NULL, reaper_thread, &c) || pthread_detach(th))
		goto out;
	if (pthread_create(&th, NULL, registry_worker, &c) || pthread_detach(th))
		goto out;
	if (c.preload_python) {
		pthread_mutex_lock(&c.lock);
		if (zygote_ensure(&c) < 0)
			fprintf(stderr, "sbx-executor: preload python failed\n");
		pthread_mutex_unlock(&c.lock);
	}
	if (c.preload_javascript) {
		pthread_mutex_lock(&c.lock);
		if (idlenode_spawn(&c) < 0)
			fprintf(stderr,
				"sbx-executor: preload javascript failed (no node on PATH?)\n");
		pthread_mutex_unlock(&c.lock);
	}
	d = http_start(&c, fd);
	if (!d) {
		fprintf(stderr, "sbx-executor: cannot start the HTTP server\n");
		goto out;
	}
	fprintf(stderr, "sbx-executor: pid=%d listening on %s python=%s shims=%s workspace=%s\n",
		(int)c.self, c.socket_path ? c.socket_path : c.listen_addr, c.python, c.shims,
		c.workspace);
	for (;;) {
		siginfo_t si;
		sig = sigwaitinfo(&set, &si);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		/* As PID 1, a signal from inside the sandbox carries the sender's pid; one from
		 * the host (outside our pid namespace) carries 0. Handlers may not stop their
		 * own agent: the runtime stops it from the host. */
		if (c.self == 1 && si.si_pid != 0) {
			fprintf(stderr,
				"sbx-executor: ignored signal %d from pid %d in the sandbox\n", sig,
				(int)si.si_pid);
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	fprintf(stderr, "sbx-executor: signal %d, stopping\n", sig);
	/* no graceful drain: a handler must not outlive its sandbox's agent; the warm
	 * interpreters go too (stopping is set, so no idle node is spawned after this) */
	pthread_mutex_lock(&c.lock);
	c.stopping = 1;
	pthread_mutex_unlock(&c.lock);
	procs_kill_descendants(&c, 0);
	if (c.socket_path)
		unlink(c.socket_path);
	rc = 0;
	/* MHD threads may be blocked in a stream callback: leave without joining them */
	_exit(rc);
out:
	if (fd >= 0)
		close(fd);
	if (c.ws_fd >= 0)
		close(c.ws_fd);
	free(c.shims);
	free(c.python);
	free(c.token);
	return rc;
}
