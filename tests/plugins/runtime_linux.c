/*
 * Tests of the `linux` runtime module: loads the built module through the fake core,
 * builds real sandboxes around the executor bundle and checks their isolation, limits,
 * clean-up and restart behaviour. Needs root and user namespaces (skips otherwise).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sandbox/runtime.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

static const struct sbx_core_api *core;
static const struct sbx_runtime_plugin *rt;
static char state_dir[64] = "/tmp/sbx-lxtest.XXXXXX";
static char exe_dir[1024];

static void skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(0);
}

static int can_userns(void)
{
	int st;
	pid_t pid = (pid_t)syscall(
	    SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | SIGCHLD, NULL,
	    NULL, NULL, NULL);
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static double ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *new_instance(json_t *extra, sbx_err *err)
{
	json_t *cfg = json_pack("{s:s, s:s}", "state_dir", state_dir, "executor_dir", exe_dir);
	void *inst = NULL;

	if (extra)
		json_object_update(cfg, extra);
	if (rt->life.create(core, "linux-test", cfg, &inst, err) < 0)
		inst = NULL;
	json_decref(cfg);
	return inst;
}

static json_t *make(void *inst, const char *image, long mem, long disk, long procs, sbx_err *err)
{
	json_t *spec =
	    json_pack("{s:s, s:s, s:s, s:{s:f, s:i, s:i, s:i}}", "session_id", "s-test", "image",
		      image, "runtime_type", "python3.11", "resources", "cpu", 1.0, "memory_mb",
		      (int)mem, "disk_mb", (int)disk, "max_processes", (int)procs);
	json_t *h = NULL;

	if (rt->sandbox_create(inst, spec, &h, err) < 0)
		h = NULL;
	json_decref(spec);
	return h;
}

static const char *sock_of(const json_t *h)
{
	return json_string_value(json_object_get(json_object_get(h, "executor"), "unix_socket"));
}

static int health_ok(const json_t *h)
{
	json_t *req = json_pack("{s:s, s:s, s:s}", "method", "GET", "url", "http://sandbox/health",
				"unix_socket", sock_of(h));
	json_t *resp = NULL;
	sbx_err err;
	int ok_ = core->http_request(req, NULL, 0, NULL, NULL, NULL, NULL, &resp, &err) == 0 &&
		  json_integer_value(json_object_get(resp, "status")) == 200;
	json_decref(req);
	json_decref(resp);
	return ok_;
}

/* POST /execute; returns the result event (new reference) or NULL. */
static json_t *run(const json_t *h, const char *lang, const char *code)
{
	static int n;
	char id[32];
	json_t *req, *resp = NULL, *body, *result = NULL;
	char *text, *line, *save = NULL;
	const char *out;
	sbx_err err;

	snprintf(id, sizeof id, "e-%d", ++n);
	body = json_pack("{s:s, s:s, s:s, s:i, s:{}}", "id", id, "code", code, "language", lang,
			 "timeout_ms", 20000, "event");
	text = json_dumps(body, JSON_COMPACT);
	req = json_pack("{s:s, s:s, s:s, s:i, s:{s:s}}", "method", "POST", "url",
			"http://sandbox/execute", "unix_socket", sock_of(h), "timeout_ms", 30000,
			"headers", "Content-Type", "application/json");
	if (core->http_request(req, text, strlen(text), NULL, NULL, NULL, NULL, &resp, &err) < 0) {
		diag("execute: %s", err.message);
		goto out;
	}
	out = json_string_value(json_object_get(resp, "body"));
	if (!out) {
		diag("execute: no body, status %lld",
		     (long long)json_integer_value(json_object_get(resp, "status")));
		goto out;
	}
	{
		char *copy = strdup(out);
		for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			json_t *ev = json_loads(line, 0, NULL);
			if (ev && !strcmp(json_string_value(json_object_get(ev, "type")) ?: "",
					  "result")) {
				json_decref(result);
				result = ev;
			} else
				json_decref(ev);
		}
		free(copy);
	}
	if (!result)
		diag("execute: no result in %.300s", out);
out:
	free(text);
	json_decref(body);
	json_decref(req);
	json_decref(resp);
	return result;
}

/* Run python code whose handler returns a value; return that value as JSON text. */
static char *py(const json_t *h, const char *code)
{
	json_t *r = run(h, "python", code);
	char *s;

	if (!r)
		return strdup("<no result>");
	if (strcmp(json_string_value(json_object_get(r, "status")) ?: "", "completed")) {
		diag("status %s: %s %s", json_string_value(json_object_get(r, "status")),
		     json_string_value(json_object_get(r, "error_message")),
		     json_string_value(json_object_get(r, "stderr")));
	}
	s = json_dumps(json_object_get(r, "return_value"), JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(r);
	return s ? s : strdup("null");
}

static int py_is(const json_t *h, const char *code, const char *want)
{
	char *got = py(h, code);
	int same = !strcmp(got, want);
	if (!same)
		diag("got %s, want %s", got, want);
	free(got);
	return same;
}

static int exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static int cgroup_gone(const char *id)
{
	const char *h[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu",
			   "/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
	char p[512];
	size_t i;

	for (i = 0; i < sizeof h / sizeof *h; i++) {
		snprintf(p, sizeof p, "%s/sbxd/%s", h[i], id);
		if (exists(p))
			return 0;
	}
	return 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Slots handed out from several processes on one state dir: each child process makes its
 * own instance and `per` sandboxes at the same time as the others, and sends the handles
 * back (one JSON line each). The sandboxes outlive the children. */
static json_t *make_in_children(int children, int per)
{
	json_t *all = json_array();
	pid_t pids[8];
	int fds[8], c, k;

	for (c = 0; c < children; c++) {
		int pfd[2];

		if (pipe(pfd) < 0)
			return all;
		if ((pids[c] = fork()) == 0) {
			sbx_err cerr;
			void *ci;

			close(pfd[0]);
			ci = new_instance(NULL, &cerr);
			for (k = 0; ci && k < per; k++) {
				json_t *h = make(ci, "sandbox-template-shell-basic:latest", 64, 8,
						 32, &cerr);
				char *line = h ? json_dumps(h, JSON_COMPACT) : NULL;
				if (line && write(pfd[1], line, strlen(line)) >= 0)
					(void)!write(pfd[1], "\n", 1);
				else
					dprintf(2, "# child create: %s\n", cerr.message);
				free(line);
				json_decref(h);
			}
			_exit(0);
		}
		close(pfd[1]);
		fds[c] = pfd[0];
	}
	for (c = 0; c < children; c++) {
		FILE *f = fdopen(fds[c], "r");
		char line[4096];

		while (f && fgets(line, sizeof line, f)) {
			json_t *h = json_loads(line, 0, NULL);
			if (h)
				json_array_append_new(all, h);
		}
		if (f)
			fclose(f);
		if (pids[c] > 0)
			waitpid(pids[c], NULL, 0);
	}
	return all;
}

/* Do the handles use distinct slots, each claimed on disk in its sandbox's name? */
static int slots_distinct(const json_t *handles)
{
	char seen[4096] = {0}, p[1200], text[64];
	const json_t *h;
	size_t i;

	json_array_foreach (handles, i, h) {
		json_int_t n = json_integer_value(json_object_get(h, "slot"));
		FILE *f;

		if (n < 0 || n >= (json_int_t)sizeof seen || seen[n]++) {
			diag("slot %lld handed out twice", (long long)n);
			return 0;
		}
		snprintf(p, sizeof p, "%s/slots/%lld", state_dir, (long long)n);
		text[0] = '\0';
		if ((f = fopen(p, "r"))) {
			if (!fgets(text, sizeof text, f))
				text[0] = '\0';
			fclose(f);
		}
		text[strcspn(text, "\n")] = '\0';
		if (strcmp(text, json_string_value(json_object_get(h, "sandbox_id")) ?: "")) {
			diag("slots/%lld holds '%s'", (long long)n, text);
			return 0;
		}
	}
	return 1;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

int main(void)
{
	const char *top = getenv("top_builddir") ? getenv("top_builddir") : ".";
	struct fakecore_module mod;
	char errbuf[512], path[1200], code[1024];
	sbx_err err;
	void *inst, *inst2;
	json_t *a = NULL, *b = NULL, *c = NULL, *st = NULL, *list = NULL, *x;
	size_t i;
	int port, lfd, found;
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	double t_create[10], t_destroy[10];

	if (geteuid() != 0)
		skip_all("needs root (cgroups, id maps)");
	if (!can_userns())
		skip_all("user/pid/mount/net namespaces are not available");
	snprintf(exe_dir, sizeof exe_dir, "%s",
		 getenv("SBX_TEST_EXECUTOR_DIR") ? getenv("SBX_TEST_EXECUTOR_DIR") : "");
	if (!exe_dir[0]) {
		char *abs = realpath(top, NULL);
		snprintf(exe_dir, sizeof exe_dir, "%s/executor/bundle", abs ? abs : top);
		free(abs);
	}
	snprintf(path, sizeof path, "%s/bin/sbx-executor", exe_dir);
	if (!exists(path))
		skip_all("the executor bundle is not built (executor/bundle)");

	core = fakecore_api();
	snprintf(path, sizeof path, "%s/plugins/runtime/linux/runtime_linux.la", top);
	if (fakecore_module_open(path, SBX_KIND_RUNTIME, sizeof(struct sbx_runtime_plugin), &mod,
				 errbuf, sizeof errbuf) < 0) {
		ok(0, "module loads: %s", errbuf);
		return tap_done();
	}
	rt = (const struct sbx_runtime_plugin *)mod.hdr;
	if (!mkdtemp(state_dir) || chmod(state_dir, 0711) < 0) {
		ok(0, "state dir");
		return tap_done();
	}

	/* Config */
	x = json_pack("{s:i}", "no_such_key", 1);
	ok(!new_instance(x, &err) && err.code == SBX_E_INVALID &&
	       strstr(err.message, "no_such_key"),
	   "unknown config key is refused, naming the key (%s)", err.message);
	json_decref(x);
	inst = new_instance(NULL, &err);
	if (!ok(inst != NULL, "instance is created (%s)", inst ? "ok" : err.message))
		return tap_done();
	x = NULL;
	sbx_err_clear(&err);
	ok(rt->health(inst, &x, &err) == 0,
	   "health passes: cgroups, state dir, bundle, userns (%s)", err.message);
	json_decref(x);
	ok(!make(inst, "ubuntu:nope", 256, 64, 64, &err) && err.code == SBX_E_INVALID &&
	       strstr(err.message, "catalogue"),
	   "unknown image is SBX_E_INVALID naming the catalogue (%s)", err.message);

	/* A failing create says what failed and leaves nothing behind. */
	{
		void *bad;
		char empty[128];
		int left;
		json_t *l = NULL;

		snprintf(empty, sizeof empty, "%s/empty-bundle", state_dir);
		mkdir(empty, 0755);
		x = json_pack("{s:s}", "executor_dir", empty);
		bad = new_instance(x, &err);
		json_decref(x);
		x = bad ? make(bad, "python:3.11", 128, 8, 64, &err) : NULL;
		ok(bad && !x && strstr(err.message, "execve the executor"),
		   "a create that fails says what failed (%s)", err.message);
		left = bad && rt->sandbox_list(bad, &l, &err) == 0 ? (int)json_array_size(l) : -1;
		ok(left == 0, "a failed create leaves no sandbox behind (%d)", left);
		json_decref(l);
		json_decref(x);
		if (bad)
			rt->life.destroy(bad);
		rmdir(empty);
	}
	x = json_pack("{s:s}", "workspace", "loop");
	ok(!new_instance(x, &err) && err.code == SBX_E_UNSUPPORTED,
	   "workspace = loop is refused as not implemented");
	json_decref(x);

	/* A sandbox */
	a = make(inst, "sandbox-template-python-basic:latest", 128, 8, 64, &err);
	if (!ok(a != NULL, "create returns a handle (%s)", a ? "ok" : err.message))
		goto done;
	ok(health_ok(a), "the handle's executor socket answers GET /health");
	ok(py_is(a, "def handler(event):\n    return {'sum': 1 + 2}\n", "{\"sum\":3}"),
	   "a python handler runs and returns a value");
	ok(py_is(a, "import os\ndef handler(e):\n    return [os.getuid(), os.getgid()]\n",
		 "[1000,1000]"),
	   "handlers run as uid/gid 1000");
	ok(py_is(a, "import os\ndef handler(e):\n    return os.path.exists('/etc/shadow')\n",
		 "false"),
	   "/etc/shadow is absent");
	ok(py_is(a,
		 "import errno\ndef handler(e):\n    try:\n        open('/usr/x','w')\n"
		 "        return 'written'\n    except OSError as x:\n"
		 "        return errno.errorcode[x.errno]\n",
		 "\"EROFS\""),
	   "writing /usr fails (read-only)");
	ok(py_is(a,
		 "import os\ndef handler(e):\n    return len([p for p in os.listdir('/proc') "
		 "if p.isdigit()]) < 8\n",
		 "true"),
	   "only the sandbox's own few processes are visible in /proc");
	ok(py_is(a, "import socket\ndef handler(e):\n    return socket.gethostname()\n",
		 "\"sandbox\""),
	   "hostname is sandbox");
	ok(py_is(a,
		 "def handler(e):\n    return sorted(l.split(':')[0].strip() for l in "
		 "open('/proc/net/dev').readlines()[2:])\n",
		 "[\"lo\"]"),
	   "only the loopback interface exists");

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(lfd, (struct sockaddr *)&sa, sizeof sa);
	listen(lfd, 4);
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	port = ntohs(sa.sin_port);
	snprintf(code, sizeof code,
		 "import socket, errno\ndef handler(e):\n    s = socket.socket()\n"
		 "    s.settimeout(2)\n    try:\n        s.connect(('127.0.0.1', %d))\n"
		 "        return 'connected'\n    except OSError as x:\n"
		 "        return errno.errorcode.get(x.errno, str(x))\n",
		 port);
	ok(py_is(a, code, "\"ECONNREFUSED\""),
	   "the host's loopback (a listening port) is not reachable");
	close(lfd);

	ok(py_is(a,
		 "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
		 "def handler(e):\n    r = []\n"
		 "    r.append(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == -1 and "
		 "ctypes.get_errno())\n"
		 "    r.append(libc.unshare(0x10000000) == -1 and ctypes.get_errno())\n"
		 "    r.append(libc.unshare(0x00020000) == -1 and ctypes.get_errno())\n"
		 "    r.append(libc.ptrace(0, 0, 0, 0) == -1 and ctypes.get_errno())\n"
		 "    return r\n",
		 "[1,1,1,1]"),
	   "mount, unshare(user), unshare(mount) and ptrace fail with EPERM");

	{
		json_t *r =
		    run(a, "python",
			"def handler(e):\n    b = bytearray(400 << 20)\n"
			"    for i in range(0, len(b), 4096): b[i] = 1\n    return len(b)\n");
		const char *s = r ? json_string_value(json_object_get(r, "status")) : NULL;
		ok(s && strcmp(s, "completed"),
		   "a memory hog beyond memory_mb is killed (status %s)", s ? s : "none");
		json_decref(r);
		ok(py_is(a, "def handler(e):\n    return 'alive'\n", "\"alive\""),
		   "the next execution after an OOM kill works");
		if (rt->sandbox_status(inst, a, &st, &err) == 0)
			ok(json_is_true(json_object_get(st, "oom_killed")),
			   "status reports the OOM kill");
		else
			ok(0, "status reports the OOM kill (%s)", err.message);
		json_decref(st);
		st = NULL;
	}
	ok(py_is(a,
		 "import os, errno, time\ndef handler(e):\n    kids, err = [], None\n"
		 "    for i in range(500):\n        try:\n            p = os.fork()\n"
		 "        except OSError as x:\n            err = errno.errorcode[x.errno]\n"
		 "            break\n        if p == 0:\n            time.sleep(30)\n"
		 "            os._exit(0)\n        kids.append(p)\n    return [err, len(kids) < "
		 "64]\n",
		 "[\"EAGAIN\",true]"),
	   "a fork bomb is stopped by the pids limit");
	ok(py_is(a, "def handler(e):\n    return 'alive'\n", "\"alive\""),
	   "the sandbox works after the fork bomb");

	ok(py_is(a,
		 "def handler(e):\n    open('/tmp/keep','w').write('kept')\n"
		 "    open('/workspace/mine','w').write('a')\n    return 1\n",
		 "1") &&
	       py_is(a, "def handler(e):\n    return open('/tmp/keep').read()\n", "\"kept\""),
	   "/tmp persists between executions");
	ok(py_is(a,
		 "import errno\ndef handler(e):\n    f = open('/workspace/big','wb')\n"
		 "    try:\n        for i in range(32):\n            f.write(b'x' * (1 << 20))\n"
		 "            f.flush()\n        return 'no limit'\n    except OSError as x:\n"
		 "        return errno.errorcode[x.errno]\n",
		 "\"ENOSPC\""),
	   "writing beyond disk_mb to /workspace fails with ENOSPC");

	{
		json_t *r = run(a, "javascript",
				"exports.handler = async (event) => ({v: process.getuid(), "
				"h: require('os').hostname()});\n");
		char *v = r ? json_dumps(json_object_get(r, "return_value"),
					 JSON_ENCODE_ANY | JSON_COMPACT)
			    : NULL;
		ok(v && !strcmp(v, "{\"v\":1000,\"h\":\"sandbox\"}"),
		   "a node handler runs in the sandbox (%s)", v ? v : "no result");
		free(v);
		json_decref(r);
		r = run(a, "shell", "id -u; ls /workspace > /dev/null && echo ok-shell\n");
		ok(r && strstr(json_string_value(json_object_get(r, "stdout")) ?: "",
			       "1000\nok-shell"),
		   "a shell script runs in the sandbox");
		json_decref(r);
	}

	b = make(inst, "python:3.11", 128, 8, 64, &err);
	if (ok(b != NULL, "a second sandbox is created (%s)", b ? "ok" : err.message))
		ok(py_is(b, "import os\ndef handler(e):\n    return os.listdir('/workspace')\n",
			 "[]"),
		   "two sandboxes do not see each other's /workspace");

	/* Restart: a new instance on the same state dir still lists and runs `a`. */
	inst2 = new_instance(NULL, &err);
	found = 0;
	if (inst2 && rt->sandbox_list(inst2, &list, &err) == 0) {
		json_array_foreach (list, i, x)
			if (json_equal(json_object_get(x, "sandbox_id"),
				       json_object_get(a, "sandbox_id")))
				found = 1;
		json_decref(list);
	}
	ok(found, "sandbox_list after re-creating the instance lists a live sandbox");
	ok(inst2 && rt->sandbox_status(inst2, a, &st, &err) == 0 &&
	       !strcmp(json_string_value(json_object_get(st, "state")), "running"),
	   "its status is running after the restart");
	json_decref(st);
	st = NULL;
	if (inst2) {
		x = NULL;
		ok(rt->nodes(inst2, &x, &err) == 0 &&
		       json_integer_value(json_object_get(
			   json_object_get(json_array_get(x, 0), "allocated"), "sessions")) == 2,
		   "nodes counts the two live sandboxes");
		json_decref(x);
	}

	/* Destroy */
	{
		const char *id = json_string_value(json_object_get(a, "sandbox_id"));
		pid_t pid = (pid_t)json_integer_value(json_object_get(a, "pid"));
		char dir[1024];

		snprintf(dir, sizeof dir, "%s/sandboxes/%s", state_dir, id);
		ok(rt->sandbox_destroy(inst2 ? inst2 : inst, a, &err) == 0, "destroy succeeds");
		ok(kill(pid, 0) < 0 && errno == ESRCH && cgroup_gone(id) && !exists(dir),
		   "destroy leaves no process, cgroup or directory");
		ok(rt->sandbox_destroy(inst, a, &err) == 0, "destroy is idempotent");
		ok(rt->sandbox_status(inst, a, &st, &err) == 0 &&
		       strcmp(json_string_value(json_object_get(st, "state")), "running"),
		   "status of a destroyed sandbox is not running");
		json_decref(st);
		st = NULL;
	}
	if (inst2)
		rt->life.destroy(inst2);

	/* Several processes on one state dir: slots are claimed on disk, never shared. */
	{
		void *i1 = new_instance(NULL, &err), *i2 = new_instance(NULL, &err);
		json_t *hs = json_array(), *h;
		int k, all_ok = 1;

		/* the children's sandbox inits are re-parented to us, not to a pid 1 that may
		 * not reap */
		prctl(PR_SET_CHILD_SUBREAPER, 1);
		/* two instances made before either creates: in-memory slots would collide */
		for (k = 0; i1 && i2 && k < 4; k++) {
			h = make(k % 2 ? i2 : i1, "sandbox-template-shell-basic:latest", 64, 8, 32,
				 &err);
			if (!h) {
				diag("create: %s", err.message);
				all_ok = 0;
				break;
			}
			json_array_append_new(hs, h);
		}
		ok(all_ok && json_array_size(hs) == 4 && slots_distinct(hs),
		   "two instances on one state dir hand out distinct slots, claimed on disk");
		x = make_in_children(3, 3);
		json_array_extend(hs, x);
		ok(json_array_size(x) == 9 && slots_distinct(hs),
		   "three processes creating at once on one state dir get distinct slots (%zu)",
		   json_array_size(x));
		json_decref(x);
		all_ok = 1;
		json_array_foreach (hs, i, h) {
			st = NULL;
			all_ok &= rt->sandbox_status(i1, h, &st, &err) == 0 &&
				  !strcmp(json_string_value(json_object_get(st, "state")) ?: "",
					  "running");
			json_decref(st);
		}
		ok(all_ok, "one instance reads the status of sandboxes other processes made");
		all_ok = 1;
		json_array_foreach (hs, i, h) {
			char p[1200];
			snprintf(p, sizeof p, "%s/slots/%lld", state_dir,
				 (long long)json_integer_value(json_object_get(h, "slot")));
			/* (an init whose creating process exited is reaped by pid 1, or not) */
			if (rt->sandbox_destroy(i % 2 ? i1 : i2, h, &err) < 0 || exists(p) ||
			    !cgroup_gone(json_string_value(json_object_get(h, "sandbox_id")))) {
				diag("destroy %zu: %s", i, err.message);
				all_ok = 0;
			}
		}
		ok(all_ok, "any instance destroys any sandbox of the state dir and frees its slot");
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		prctl(PR_SET_CHILD_SUBREAPER, 0);
		json_decref(hs);
		st = NULL;
		if (i1)
			rt->life.destroy(i1);
		if (i2)
			rt->life.destroy(i2);
	}

	/* Stale claims: a sandbox directory that is gone, or a create whose process died. */
	{
		char sd[64], p[256], saved[64];
		void *one;
		json_t *h1 = NULL, *h2 = NULL;
		int cfd;
		const char *ghost = "lx-00000000000000000000000000000001\n";

		memcpy(saved, state_dir, sizeof saved);
		snprintf(sd, sizeof sd, "%.40s/stale", saved);
		memcpy(state_dir, sd, sizeof sd);
		mkdir(sd, 0711);
		x = json_pack("{s:i}", "max_sessions", 1);
		one = new_instance(x, &err);
		json_decref(x);
		snprintf(p, sizeof p, "%s/slots/0", sd);
		write_text(p, ghost);
		h1 = one ? make(one, "sandbox-template-shell-basic:latest", 64, 8, 32, &err) : NULL;
		ok(h1 && json_integer_value(json_object_get(h1, "slot")) == 0,
		   "a claim whose sandbox directory is gone is reclaimed (%s)",
		   h1 ? "ok" : err.message);
		h2 = one ? make(one, "sandbox-template-shell-basic:latest", 64, 8, 32, &err) : NULL;
		ok(!h2 && err.code == SBX_E_LIMIT,
		   "a live claim is not reclaimed: SBX_E_LIMIT (%s)", err.message);
		if (h1)
			rt->sandbox_destroy(one, h1, &err);
		json_decref(h1);
		json_decref(h2);

		/* a create in progress: claim locked, no directory yet */
		cfd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (cfd >= 0 && write(cfd, ghost, strlen(ghost)) > 0 && flock(cfd, LOCK_EX) == 0) {
			h1 = one ? make(one, "sandbox-template-shell-basic:latest", 64, 8, 32, &err)
				 : NULL;
			ok(!h1 && err.code == SBX_E_LIMIT,
			   "a claim locked by a create in progress is left alone (%s)",
			   h1 ? "reclaimed" : err.message);
			json_decref(h1);
		} else
			ok(0, "write a locked claim");
		if (cfd >= 0)
			close(cfd); /* its creator "dies": the lock goes */

		/* ... which leaves a half-made directory (no sandbox.json) */
		snprintf(p, sizeof p, "%s/sandboxes/lx-00000000000000000000000000000001", sd);
		mkdir(p, 0711);
		snprintf(p, sizeof p, "%s/sandboxes/lx-00000000000000000000000000000001/run", sd);
		mkdir(p, 0755);
		h1 = one ? make(one, "sandbox-template-shell-basic:latest", 64, 8, 32, &err) : NULL;
		ok(h1 && !exists(p),
		   "the claim of a create that died is reclaimed, its directory "
		   "removed (%s)",
		   h1 ? "ok" : err.message);
		if (h1)
			rt->sandbox_destroy(one, h1, &err);
		json_decref(h1);
		if (one)
			rt->life.destroy(one);
		memcpy(state_dir, saved, sizeof saved);
		snprintf(p, sizeof p, "rm -rf %s", sd);
		if (system(p) != 0)
			diag("could not remove %s", sd);
	}
	x = NULL;

	/* Latency */
	for (i = 0; i < 10; i++) {
		double t0 = ms_now();
		c = make(inst, "sandbox-template-shell-basic:latest", 256, 64, 64, &err);
		t_create[i] = ms_now() - t0;
		if (!c)
			break;
		t0 = ms_now();
		rt->sandbox_destroy(inst, c, &err);
		t_destroy[i] = ms_now() - t0;
		json_decref(c);
	}
	if (ok(i == 10, "ten create/destroy cycles succeed")) {
		qsort(t_create, 10, sizeof *t_create, cmp_double);
		qsort(t_destroy, 10, sizeof *t_destroy, cmp_double);
		diag("create p50 %.1f ms (max %.1f), destroy p50 %.1f ms (max %.1f)", t_create[5],
		     t_create[9], t_destroy[5], t_destroy[9]);
	}
	for (i = 0; i < 10; i++) {
		double t0 = ms_now();
		c = make(inst, "sandbox-template-python-basic:latest", 256, 64, 64, &err);
		t_create[i] = ms_now() - t0;
		if (!c)
			break;
		rt->sandbox_destroy(inst, c, &err);
		json_decref(c);
	}
	if (i == 10) {
		qsort(t_create, 10, sizeof *t_create, cmp_double);
		diag("create with python preload p50 %.1f ms (max %.1f)", t_create[5], t_create[9]);
	}

done:
	if (b) {
		rt->sandbox_destroy(inst, b, &err);
		json_decref(b);
	}
	json_decref(a);
	rt->life.destroy(inst);
	fakecore_module_close(&mod);
	rmdir(state_dir); /* fails, visibly in the next test run, if anything was left */
	{
		char p[512];
		snprintf(p, sizeof p, "rm -rf %s", state_dir);
		if (system(p) != 0)
			diag("could not remove %s", state_dir);
	}
	fakecore_cleanup();
	return tap_done();
}
