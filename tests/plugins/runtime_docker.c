/*
 * Tests of the `docker` runtime module against a real Docker Engine: loads the built module
 * through the fake core, creates sandboxes from a real image around the executor bundle,
 * and checks them through the Engine API itself (security settings, labels), through the
 * executor's socket (health, executions), and across failures (a container killed behind
 * the module's back, an OOM kill, a missing image, a wrong socket).
 * Skips unless SBX_TEST_DOCKER_HOST (unix:///path) is set; tests/plugins/runtime_docker.sh
 * starts a private dockerd and sets it. SBX_TEST_DOCKER_IMAGE names an image with python3
 * (default sbxd-test-python:latest).
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sandbox/runtime.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

static const struct sbx_core_api *core;
static const struct sbx_runtime_plugin *rt;
static const char *host, *image;
static char exe_dir[1024], socks[600];

static void skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(0);
}

static int exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

/* ---- the Engine API, straight (not through the module) ---- */

struct buf {
	char *p;
	size_t n;
};

static size_t on_write(char *d, size_t s, size_t n, void *ud)
{
	struct buf *b = ud;
	char *np = realloc(b->p, b->n + s * n + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, d, s * n);
	b->n += s * n;
	b->p[b->n] = '\0';
	return s * n;
}

/* One engine call; returns the status and sets *out to the parsed body (or NULL). */
static long engine(const char *method, const char *path, const char *body, json_t **out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	struct buf b = {0};
	char url[1024];
	long status = 0;

	snprintf(url, sizeof url, "http://docker/v1.41%s", path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, host + 7);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	if (body || !strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (out)
		*out = b.p ? json_loads(b.p, JSON_DECODE_ANY, NULL) : NULL;
	free(b.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static json_t *inspect(const char *cid)
{
	char p[256];
	json_t *r = NULL;

	snprintf(p, sizeof p, "/containers/%s/json", cid);
	if (engine("GET", p, NULL, &r) != 200) {
		json_decref(r);
		return NULL;
	}
	return r;
}

/* ---- the module ---- */

static void *new_instance(const char *name, json_t *extra, sbx_err *err)
{
	json_t *cfg = json_pack("{s:s, s:s, s:s}", "host", host, "executor_dir", exe_dir,
				"sockets_dir", socks);
	void *inst = NULL;

	if (extra)
		json_object_update(cfg, extra);
	sbx_err_clear(err);
	if (rt->life.create(core, name, cfg, &inst, err) < 0)
		inst = NULL;
	json_decref(cfg);
	return inst;
}

static json_t *spec_new(const char *img, long mem)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:{s:f, s:i, s:i, s:i}, s:{}, s:s, s:s}",
			 "session_id", "s-dockertest", "template_id", "python-basic", "image", img,
			 "runtime_type", "python3.11", "resources", "cpu", 0.5, "memory_mb",
			 (int)mem, "disk_mb", 64, "max_processes", 64, "env_vars", "network",
			 "none", "executor_token", "0123456789abcdef");
}

static json_t *make(void *inst, json_t *spec, sbx_err *err)
{
	json_t *h = NULL;

	sbx_err_clear(err);
	if (rt->sandbox_create(inst, spec, &h, err) < 0)
		h = NULL;
	json_decref(spec);
	return h;
}

static const char *sock_of(const json_t *h)
{
	return json_string_value(json_object_get(json_object_get(h, "executor"), "unix_socket"));
}

static const char *cid_of(const json_t *h)
{
	return json_string_value(json_object_get(h, "container_id"));
}

static int health_ok(const json_t *h)
{
	json_t *req = json_pack("{s:s, s:s, s:s}", "method", "GET", "url", "http://sandbox/health",
				"unix_socket", sock_of(h));
	json_t *resp = NULL;
	sbx_err err;
	int good = core->http_request(req, NULL, 0, NULL, NULL, NULL, NULL, &resp, &err) == 0 &&
		   json_integer_value(json_object_get(resp, "status")) == 200;
	json_decref(req);
	json_decref(resp);
	return good;
}

/* POST /execute of a python handler; returns the result event (new reference) or NULL. */
static json_t *run_py(const json_t *h, const char *code)
{
	static int n;
	char id[32];
	json_t *req, *resp = NULL, *body, *result = NULL;
	char *text, *copy, *line, *save = NULL;
	const char *out;
	sbx_err err;

	snprintf(id, sizeof id, "e-%d", ++n);
	body = json_pack("{s:s, s:s, s:s, s:i, s:{}}", "id", id, "code", code, "language", "python",
			 "timeout_ms", 20000, "event");
	text = json_dumps(body, JSON_COMPACT);
	req = json_pack("{s:s, s:s, s:s, s:i, s:{s:s}}", "method", "POST", "url",
			"http://sandbox/execute", "unix_socket", sock_of(h), "timeout_ms", 30000,
			"headers", "Content-Type", "application/json");
	if (core->http_request(req, text, strlen(text), NULL, NULL, NULL, NULL, &resp, &err) < 0) {
		diag("execute: %s", err.message);
		goto out;
	}
	if (!(out = json_string_value(json_object_get(resp, "body"))))
		goto out;
	copy = strdup(out);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *ev = json_loads(line, 0, NULL);
		if (ev && !strcmp(json_string_value(json_object_get(ev, "type")) ?: "", "result")) {
			json_decref(result);
			result = ev;
		} else {
			json_decref(ev);
		}
	}
	free(copy);
	if (!result)
		diag("execute: no result in %.300s", out);
out:
	free(text);
	json_decref(body);
	json_decref(req);
	json_decref(resp);
	return result;
}

/* The handler's return value as compact JSON text (caller frees). */
static char *py(const json_t *h, const char *code)
{
	json_t *r = run_py(h, code);
	char *s;

	if (!r)
		return strdup("<no result>");
	if (strcmp(json_string_value(json_object_get(r, "status")) ?: "", "completed"))
		diag("status %s: %s %s", json_string_value(json_object_get(r, "status")),
		     json_string_value(json_object_get(r, "error_message")),
		     json_string_value(json_object_get(r, "stderr")));
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

static json_t *status_of(void *inst, const json_t *h)
{
	json_t *st = NULL;
	sbx_err err;

	if (rt->sandbox_status(inst, h, &st, &err) < 0) {
		diag("status: %s", err.message);
		return NULL;
	}
	return st;
}

static int state_is(const json_t *st, const char *want)
{
	const char *s = json_string_value(json_object_get(st, "state"));
	return s && !strcmp(s, want);
}

static const char *reason_of(const json_t *st)
{
	return json_string_value(json_object_get(st, "reason")) ?: "";
}

/* Wait until the container is no longer running (bounded). */
static int wait_stopped(const char *cid)
{
	for (int i = 0; i < 200; i++) {
		json_t *r = inspect(cid);
		int running =
		    r && json_is_true(json_object_get(json_object_get(r, "State"), "Running"));
		json_decref(r);
		if (!running)
			return 1;
		usleep(50000);
	}
	return 0;
}

static int in_list(void *inst, const char *sandbox_id)
{
	json_t *l = NULL, *x;
	sbx_err err;
	size_t i;
	int found = 0;

	if (rt->sandbox_list(inst, &l, &err) < 0) {
		diag("list: %s", err.message);
		return -1;
	}
	json_array_foreach (l, i, x)
		found |=
		    !strcmp(json_string_value(json_object_get(x, "sandbox_id")) ?: "", sandbox_id);
	json_decref(l);
	return found;
}

static int str_in(const json_t *arr, const char *s)
{
	const json_t *v;
	size_t i;

	json_array_foreach (arr, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), s))
			return 1;
	return 0;
}

/* SecurityOpt carries the sandbox's own seccomp profile: default allow, the policy's
 * denials (plain names, clone with namespace flags, clone3 with ENOSYS). */
static void check_seccomp_opt(const json_t *opts)
{
	const json_t *v, *e, *n;
	json_t *prof = NULL;
	size_t i, j, k;
	int ptrace = 0, io_uring = 0, clone_ns = 0, clone3 = 0, n_opts = 0;

	json_array_foreach (opts, i, v)
		if (json_is_string(v) && !strncmp(json_string_value(v), "seccomp=", 8)) {
			n_opts++;
			json_decref(prof);
			prof = json_loads(json_string_value(v) + 8, 0, NULL);
		}
	json_array_foreach (json_object_get(prof, "syscalls"), i, e) {
		const char *act = json_string_value(json_object_get(e, "action")) ?: "";
		json_int_t eno = json_integer_value(json_object_get(e, "errnoRet"));
		const json_t *args = json_object_get(e, "args");

		json_array_foreach (json_object_get(e, "names"), j, n) {
			const char *name = json_string_value(n) ?: "";
			if (strcmp(act, "SCMP_ACT_ERRNO"))
				continue;
			ptrace |= !strcmp(name, "ptrace") && eno == EPERM && !args;
			io_uring |= !strcmp(name, "io_uring_setup") && eno == EPERM && !args;
			clone3 |= !strcmp(name, "clone3") && eno == ENOSYS && !args;
			json_array_foreach (args, k, v)
				clone_ns |=
				    !strcmp(name, "clone") && eno == EPERM &&
				    json_integer_value(json_object_get(v, "value")) ==
					CLONE_NEWUSER &&
				    !strcmp(json_string_value(json_object_get(v, "op")) ?: "",
					    "SCMP_CMP_MASKED_EQ");
		}
	}
	ok(n_opts == 1 &&
	       !strcmp(json_string_value(json_object_get(prof, "defaultAction")) ?: "",
		       "SCMP_ACT_ALLOW") &&
	       ptrace && io_uring && clone3 && clone_ns,
	   "the sandbox's seccomp profile (ptrace, io_uring_setup EPERM; clone NEWUSER EPERM; "
	   "clone3 ENOSYS)");
	json_decref(prof);
}

/* The security settings of a sandbox's container, as the engine reports them. */
static void check_container(const json_t *h)
{
	json_t *in = inspect(cid_of(h));
	const json_t *hc = json_object_get(in, "HostConfig"), *cf = json_object_get(in, "Config");
	const json_t *lb = json_object_get(cf, "Labels"), *tmpfs = json_object_get(hc, "Tmpfs");
	const char *user = json_string_value(json_object_get(cf, "User")) ?: "";
	const char *ws = json_string_value(json_object_get(tmpfs, "/workspace")) ?: "";
	const json_t *m, *ul;
	size_t i;
	int exe_ro = 0, run_bind = 0, nofile_ok = 0;

	if (!ok(in != NULL, "the engine knows the container %.12s", cid_of(h)))
		return;
	ok(!strcmp(json_string_value(json_object_get(hc, "NetworkMode")) ?: "", "none"),
	   "NetworkMode none");
	ok(json_array_size(json_object_get(hc, "CapDrop")) == 1 &&
	       str_in(json_object_get(hc, "CapDrop"), "ALL") &&
	       json_array_size(json_object_get(hc, "CapAdd")) == 0,
	   "CapDrop [ALL], no CapAdd");
	ok(json_is_true(json_object_get(hc, "ReadonlyRootfs")), "ReadonlyRootfs");
	ok(str_in(json_object_get(hc, "SecurityOpt"), "no-new-privileges") &&
	       !str_in(json_object_get(hc, "SecurityOpt"), "seccomp=unconfined") &&
	       !json_is_true(json_object_get(hc, "Privileged")),
	   "no-new-privileges, seccomp confined, not privileged");
	check_seccomp_opt(json_object_get(hc, "SecurityOpt"));
	ok(!strcmp(user, "65534:65534"), "non-root user (%s)", user);
	ok(json_integer_value(json_object_get(hc, "PidsLimit")) == 64, "PidsLimit 64");
	ok(json_integer_value(json_object_get(hc, "Memory")) == 256LL << 20 &&
	       json_integer_value(json_object_get(hc, "MemorySwap")) == 256LL << 20,
	   "Memory == MemorySwap == 256 MiB");
	ok(json_integer_value(json_object_get(hc, "NanoCpus")) == 500000000, "NanoCpus 0.5e9");
	ok(!json_is_true(json_object_get(hc, "Init")), "Init false: the executor is PID 1");
	json_array_foreach (json_object_get(hc, "Ulimits"), i, ul)
		if (!strcmp(json_string_value(json_object_get(ul, "Name")) ?: "", "nofile"))
			nofile_ok = json_integer_value(json_object_get(ul, "Hard")) <= 20000 &&
				    json_integer_value(json_object_get(ul, "Hard")) > 0;
	ok(nofile_ok, "Ulimits nofile within the host's hard limit");
	ok(strstr(ws, "size=64m") && strstr(ws, "uid=65534") &&
	       json_object_get(tmpfs, "/tmp") != NULL,
	   "tmpfs /tmp and /workspace (%s)", ws);
	json_array_foreach (json_object_get(in, "Mounts"), i, m) {
		const char *dst = json_string_value(json_object_get(m, "Destination")) ?: "";
		if (!strcmp(dst, "/opt/sbx"))
			exe_ro = !json_is_true(json_object_get(m, "RW"));
		if (!strcmp(dst, "/run/sbx"))
			run_bind =
			    !strcmp(json_string_value(json_object_get(m, "Type")) ?: "", "bind");
		if (!strcmp(json_string_value(json_object_get(m, "Type")) ?: "", "volume"))
			diag("unexpected volume at %s", dst);
	}
	ok(exe_ro && run_bind,
	   "executor bundle bound read-only at /opt/sbx, socket dir at /run/sbx");
	ok(!strcmp(json_string_value(json_object_get(lb, "io.sbxd.managed-by")) ?: "", "sbxd") &&
	       !strcmp(json_string_value(json_object_get(lb, "io.sbxd.instance")) ?: "",
		       "dk-test") &&
	       !strcmp(json_string_value(json_object_get(lb, "io.sbxd.session")) ?: "",
		       "s-dockertest") &&
	       !strcmp(json_string_value(json_object_get(lb, "io.sbxd.template")) ?: "",
		       "python-basic") &&
	       !strcmp(json_string_value(json_object_get(lb, "io.sbxd.sandbox")) ?: "",
		       json_string_value(json_object_get(h, "sandbox_id"))),
	   "labels: managed-by, instance, session, template, sandbox");
	json_decref(in);
}

int main(void)
{
	const char *top = getenv("top_builddir") ? getenv("top_builddir") : ".";
	struct fakecore_module mod;
	char errbuf[512], path[1200], dir[700];
	sbx_err err;
	void *inst, *other;
	json_t *a = NULL, *b = NULL, *st, *x, *nodes = NULL;
	json_t *foreign = NULL;
	char foreign_id[80] = "";
	struct stat sst;

	host = getenv("SBX_TEST_DOCKER_HOST");
	if (!host || !host[0])
		skip_all(
		    "SBX_TEST_DOCKER_HOST is not set (tests/plugins/runtime_docker.sh sets it)");
	if (strncmp(host, "unix://", 7))
		skip_all("SBX_TEST_DOCKER_HOST must be unix:///path");
	if (geteuid() != 0)
		skip_all("needs root (socket directories owned by the sandbox user)");
	image = getenv("SBX_TEST_DOCKER_IMAGE") ? getenv("SBX_TEST_DOCKER_IMAGE")
						: "sbxd-test-python:latest";
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
	snprintf(socks, sizeof socks, "%s/dk-socks", fakecore_data_dir());
	snprintf(path, sizeof path, "%s/plugins/runtime/docker/runtime_docker.la", top);
	if (fakecore_module_open(path, SBX_KIND_RUNTIME, sizeof(struct sbx_runtime_plugin), &mod,
				 errbuf, sizeof errbuf) < 0) {
		ok(0, "module loads: %s", errbuf);
		return tap_done();
	}
	rt = (const struct sbx_runtime_plugin *)mod.hdr;
	ok(!strcmp(rt->hdr.name, "docker"), "module name is docker");

	/* Configuration */
	x = json_pack("{s:i}", "no_such_key", 1);
	ok(!new_instance("dk-test", x, &err) && err.code == SBX_E_INVALID &&
	       strstr(err.message, "no_such_key"),
	   "unknown config key is refused, naming it (%s)", err.message);
	json_decref(x);
	x = json_pack("{s:s}", "user", "0:0");
	ok(!new_instance("dk-test", x, &err) && err.code == SBX_E_INVALID &&
	       strstr(err.message, "non-root"),
	   "root user is refused (%s)", err.message);
	json_decref(x);
	x = json_pack("{s:s}", "host", "http://x");
	ok(!new_instance("dk-test", x, &err) && err.code == SBX_E_INVALID,
	   "a host that is neither unix:// nor tcp:// is refused (%s)", err.message);
	json_decref(x);
	x = json_pack("{s:s, s:s}", "host", "tcp://127.0.0.1:18199", "tls_cert", "/nonexistent");
	ok(!new_instance("dk-test", x, &err) && err.code == SBX_E_INVALID &&
	       strstr(err.message, "tls_key"),
	   "tls_cert without tls_key is refused (%s)", err.message);
	json_decref(x);

	/* A wrong socket: the instance is made (the engine may come later), calls fail. */
	x = json_pack("{s:s}", "host", "unix:///tmp/docker-nonexistent/docker.sock");
	other = new_instance("dk-missing", x, &err);
	json_decref(x);
	ok(other != NULL, "an instance on an absent engine is created (%s)", err.message);
	if (other) {
		b = make(other, spec_new(image, 256), &err);
		ok(!b && err.code == SBX_E_UNAVAILABLE &&
		       strstr(err.message, "/tmp/docker-nonexistent/docker.sock") &&
		       strstr(err.message, "dockerd running"),
		   "create on a wrong socket: SBX_E_UNAVAILABLE naming it (%s)", err.message);
		json_decref(b);
		b = NULL;
		x = NULL;
		ok(rt->health(other, &x, &err) < 0 && err.code == SBX_E_UNAVAILABLE,
		   "health on a wrong socket fails (%s)", err.message);
		json_decref(x);
		rt->life.destroy(other);
	}
	/* Refused connection: a socket file nobody listens on. */
	{
		char dead[700];
		int fd;
		snprintf(dead, sizeof dead, "%s/dead.sock", fakecore_data_dir());
		fd = open(dead, O_CREAT | O_WRONLY, 0600);
		if (fd >= 0)
			close(fd);
		snprintf(path, sizeof path, "unix://%s", dead);
		x = json_pack("{s:s}", "host", path);
		other = new_instance("dk-dead", x, &err);
		json_decref(x);
		if (other) {
			x = NULL;
			ok(rt->health(other, &x, &err) < 0 && err.code == SBX_E_UNAVAILABLE &&
			       strstr(err.message, "dockerd running"),
			   "health on a dead socket: SBX_E_UNAVAILABLE (%s)", err.message);
			json_decref(x);
			rt->life.destroy(other);
		} else {
			ok(0, "instance on a dead socket (%s)", err.message);
		}
	}

	/* EACCES: a process that may not use the engine's socket (uid 65534, no group). */
	{
		char nsocks[] = "/tmp/docker-nobody-XXXXXX", msg[SBX_ERR_MSG_MAX] = "";
		int pfd[2] = {-1, -1}, code = 0, wst = 0;
		pid_t pid;

		if (mkdtemp(nsocks) && chown(nsocks, 65534, 65534) == 0 && pipe(pfd) == 0 &&
		    (pid = fork()) >= 0) {
			if (pid == 0) {
				void *ni = NULL;
				json_t *cfg, *d = NULL;
				char sd[64];
				close(pfd[0]);
				snprintf(sd, sizeof sd, "%s/s", nsocks);
				cfg = json_pack("{s:s, s:s, s:s}", "host", host, "executor_dir",
						exe_dir, "sockets_dir", sd);
				if (setgroups(0, NULL) < 0 || setgid(65534) < 0 ||
				    setuid(65534) < 0)
					_exit(2);
				if (rt->life.create(core, "dk-nobody", cfg, &ni, &err) == 0)
					rt->health(ni, &d, &err);
				if (write(pfd[1], &err.code, sizeof err.code) < 0 ||
				    write(pfd[1], err.message, strlen(err.message)) < 0)
					_exit(3);
				_exit(0);
			}
			close(pfd[1]);
			if (read(pfd[0], &code, sizeof code) == (ssize_t)sizeof code) {
				ssize_t n = read(pfd[0], msg, sizeof msg - 1);
				msg[n > 0 ? n : 0] = '\0';
			}
			close(pfd[0]);
			waitpid(pid, &wst, 0);
		}
		ok(code == SBX_E_UNAVAILABLE && strstr(msg, "permission denied") &&
		       strstr(msg, host),
		   "no permission on the socket: SBX_E_UNAVAILABLE saying so (%s)", msg);
		snprintf(path, sizeof path, "rm -rf '%s'", nsocks);
		if (system(path) != 0)
			diag("could not remove %s", nsocks);
	}

	inst = new_instance("dk-test", NULL, &err);
	if (!ok(inst != NULL, "instance on the real engine (%s)", inst ? "ok" : err.message))
		return tap_done();
	x = NULL;
	{
		int hrc = rt->health(inst, &x, &err);
		ok(hrc == 0 && json_string_value(json_object_get(x, "api_version")),
		   "health: engine answers /_ping, API %s (%s)",
		   json_string_value(json_object_get(x, "api_version")) ?: "?", err.message);
	}
	json_decref(x);

	/* Missing image */
	b = make(inst, spec_new("sbxd-no-such-image:never", 256), &err);
	ok(!b && err.code == SBX_E_INVALID && strstr(err.message, "sbxd-no-such-image:never") &&
	       strstr(err.message, "build.sh"),
	   "missing image: SBX_E_INVALID naming the image and the fix (%s)", err.message);
	json_decref(b);
	b = NULL;

	/* A foreign container (not ours) must never be listed nor touched. */
	{
		json_t *r = NULL;
		char body[512];
		snprintf(
		    body, sizeof body,
		    "{\"Image\":\"%s\",\"Cmd\":[\"sleep\",\"300\"],\"Labels\":{\"io.sbxd.managed-"
		    "by\":\"sbxd\",\"io.sbxd.instance\":\"someone-else\",\"io.sbxd.sandbox\":"
		    "\"dk-00000000000000000000000000000000\"},\"HostConfig\":{\"NetworkMode\":"
		    "\"none\"}}",
		    image);
		if (engine("POST", "/containers/create?name=sbxd-test-foreign", body, &r) == 201)
			snprintf(foreign_id, sizeof foreign_id, "%s",
				 json_string_value(json_object_get(r, "Id")));
		json_decref(r);
		ok(foreign_id[0] != '\0', "a foreign container was made");
	}

	/* Create, health, container settings */
	{
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		x = spec_new(image, 256);
		json_object_set_new(x, "pool_owner", json_string("pool-python"));
		a = make(inst, x, &err);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (!ok(a != NULL, "sandbox created (%s) in %.0f ms", a ? "ok" : err.message,
			(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6))
			goto out;
	}
	ok(health_ok(a), "the executor answers /health on %s", sock_of(a));
	ok(!strcmp(json_string_value(json_object_get(a, "node")) ?: "", "dk-test") &&
	       !strcmp(json_string_value(json_object_get(a, "pool_owner")) ?: "", "pool-python") &&
	       !strcmp(json_string_value(json_object_get(a, "session_id")) ?: "", "s-dockertest"),
	   "handle: node, session_id, pool_owner");
	check_container(a);
	{
		json_t *in = inspect(cid_of(a));
		ok(!strcmp(json_string_value(json_object_get(
			       json_object_get(json_object_get(in, "Config"), "Labels"),
			       "io.sbxd.pool-owner"))
			       ?: "",
			   "pool-python"),
		   "label io.sbxd.pool-owner");
		json_decref(in);
	}
	snprintf(dir, sizeof dir, "%s/%s", socks,
		 json_string_value(json_object_get(a, "sandbox_id")));
	ok(stat(dir, &sst) == 0 && sst.st_uid == 0 && (sst.st_mode & 0777) == 0755,
	   "socket dir is locked (root, 0755) once the executor is ready");
	ok(stat(socks, &sst) == 0 && (sst.st_mode & 0077) == 0, "sockets_dir is private (0700)");

	/* Inside: what the sandbox sees */
	ok(py_is(a,
		 "def handler(event, context):\n    import os\n    return [os.getuid(), "
		 "os.getgid()]\n",
		 "[65534,65534]"),
	   "runs as 65534:65534");
	ok(py_is(a,
		 "def handler(event, context):\n    return [l.split(':')[0].strip() for l in "
		 "open('/proc/net/dev').readlines()[2:]]\n",
		 "[\"lo\"]"),
	   "no network: only lo (/proc/net/dev: if_nameindex() needs a raw netlink socket, "
	   "which the seccomp policy refuses with SOCK_RAW)");
	ok(py_is(a,
		 "def handler(event, context):\n    try:\n        open('/etc/x','w')\n        "
		 "return 'wrote'\n    except OSError as e:\n        return e.errno\n",
		 "30"),
	   "root filesystem is read-only (EROFS)");
	ok(py_is(a,
		 "def handler(event, context):\n    open('/workspace/f','w').write('x')\n    "
		 "open('/tmp/f','w').write('x')\n    return 'ok'\n",
		 "\"ok\""),
	   "/workspace and /tmp are writable");
	ok(py_is(a,
		 "def handler(event, context):\n    try:\n        "
		 "open('/run/sbx/x','w')\n        return 'wrote'\n    except OSError as e:\n"
		 "        return e.errno\n",
		 "13"),
	   "the socket dir is not writable from inside (EACCES)");
	ok(py_is(a,
		 "def handler(event, context):\n    import os\n    "
		 "return [l.split()[1] for l in open('/proc/self/status') if "
		 "l.startswith(('CapEff','NoNewPrivs'))]\n",
		 "[\"0000000000000000\",\"1\"]"),
	   "no capabilities, no_new_privs set");
	ok(py_is(a,
		 "def handler(event, context):\n    return "
		 "open('/proc/1/cmdline').read().split('\\0')[3]\n",
		 "\"/opt/sbx/bin/sbx-executor\""),
	   "the executor is PID 1 of the container");
	ok(py_is(a,
		 "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
		 "def sc(*a):\n    return 0 if libc.syscall(*a) >= 0 else ctypes.get_errno()\n"
		 "def handler(event, context):\n"
		 "    return [sc(101, 0, 0, 0, 0), sc(425, 1, 0), sc(272, 0x10000000),"
		 " sc(435, 0, 0), sc(135, 0x0040000)]\n",
		 "[1,1,1,38,1]"),
	   "seccomp: ptrace, io_uring_setup, unshare(NEWUSER) EPERM; clone3 ENOSYS; "
	   "personality(ADDR_NO_RANDOMIZE) EPERM");
	/* The profile names no architectures: a system call through the i386 ABI (int 0x80,
	 * here getpid) meets the filter's bad-architecture action and the process dies of
	 * SIGSYS, as in the linux runtime. Docker's default profile would allow it. */
	ok(py_is(a,
		 "import ctypes, mmap, os\ndef handler(event, context):\n"
		 "    pid = os.fork()\n    if pid == 0:\n"
		 "        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | "
		 "mmap.PROT_EXEC)\n"
		 "        m.write(b'\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3')\n"
		 "        a = ctypes.addressof(ctypes.c_char.from_buffer(m))\n"
		 "        ctypes.CFUNCTYPE(ctypes.c_long)(a)()\n        os._exit(0)\n"
		 "    return os.waitpid(pid, 0)[1] & 0x7f\n",
		 "31"),
	   "a system call through the i386 ABI is killed (SIGSYS)");
	/* As PID 1 of its pid namespace the executor gets no signal from inside that it has
	 * no handler for, and ignores SIGTERM/SIGINT from inside. */
	ok(py_is(a,
		 "import os, signal\ndef handler(event, context):\n"
		 "    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGSTOP):\n"
		 "        os.kill(1, s)\n    return 'sent'\n",
		 "\"sent\"") &&
	       health_ok(a) && py_is(a, "def handler(event, context):\n    return 1\n", "1"),
	   "signals to PID 1 from a handler are ignored; the executor still serves");
	/* An orphan (double fork, own session) is re-parented to the executor: it is killed
	 * when the execution ends and reaped; so is a child the handler never waited for. */
	ok(py_is(a,
		 "import os, time\ndef handler(event, context):\n"
		 "    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
		 "            open('/tmp/orphan', 'w').write(str(os.getpid()))\n"
		 "            time.sleep(60)\n        os._exit(0)\n"
		 "    if os.fork() == 0:\n        os._exit(0)\n"
		 "    for _ in range(100):\n        if os.path.exists('/tmp/orphan'):\n"
		 "            break\n        time.sleep(0.02)\n"
		 "    return 'forked'\n",
		 "\"forked\"") &&
	       py_is(a,
		     "import os, time\ndef handler(event, context):\n"
		     "    pid = open('/tmp/orphan').read()\n    time.sleep(0.3)\n"
		     "    zombies = [p for p in os.listdir('/proc') if p.isdigit() and\n"
		     "               open('/proc/%s/stat' % p).read().rsplit(')', 1)[1].split()[0]"
		     " == 'Z']\n"
		     "    return [os.path.exists('/proc/' + pid), zombies]\n",
		     "[false,[]]"),
	   "the executor as init kills and reaps what a handler left behind (no zombies)");

	/* Status and list */
	st = status_of(inst, a);
	ok(state_is(st, "running") && !json_object_get(st, "oom_killed"), "status running");
	json_decref(st);
	ok(in_list(inst, json_string_value(json_object_get(a, "sandbox_id"))) == 1,
	   "list has the sandbox");
	{
		json_t *l = NULL, *e;
		size_t i;
		int foreign_seen = 0, n = 0;
		if (rt->sandbox_list(inst, &l, &err) == 0)
			json_array_foreach (l, i, e) {
				n++;
				if (!strcmp(json_string_value(json_object_get(e, "container_id"))
						?: "",
					    foreign_id))
					foreign_seen = 1;
				if (!json_object_get(e, "executor") || !json_object_get(e, "node"))
					foreign_seen = 1;
			}
		ok(n == 1 && !foreign_seen, "list shows only this instance's containers (%d)", n);
		json_decref(l);
	}

	/* nodes */
	if (ok(rt->nodes(inst, &nodes, &err) == 0, "nodes (%s)", err.message)) {
		x = json_array_get(nodes, 0);
		ok(json_array_size(nodes) == 1 &&
		       !strcmp(json_string_value(json_object_get(x, "id")) ?: "", "dk-test") &&
		       json_integer_value(json_object_get(json_object_get(x, "capacity"), "cpu")) >
			   0 &&
		       json_integer_value(
			   json_object_get(json_object_get(x, "capacity"), "memory_mb")) > 0 &&
		       json_integer_value(
			   json_object_get(json_object_get(x, "allocated"), "sessions")) == 1 &&
		       json_integer_value(
			   json_object_get(json_object_get(x, "allocated"), "memory_mb")) == 256 &&
		       str_in(json_object_get(x, "images_cached"), image),
		   "one node: capacity from /info, allocated 1 session / 256 MiB, image cached");
		json_decref(nodes);
	}

	/* Killed behind the module's back */
	{
		char p[256];
		snprintf(p, sizeof p, "/containers/%s/kill", cid_of(a));
		ok(engine("POST", p, NULL, NULL) == 204, "container killed through the engine");
		wait_stopped(cid_of(a));
		st = status_of(inst, a);
		ok(state_is(st, "exited") && strstr(reason_of(st), "exited with code"),
		   "status exited with a reason (%s)", reason_of(st));
		json_decref(st);
	}
	ok(rt->sandbox_destroy(inst, a, &err) == 0, "destroy (%s)", err.message);
	{
		json_t *in = inspect(cid_of(a));
		ok(!in && !exists(dir), "no container, no socket dir left");
		json_decref(in);
	}
	st = status_of(inst, a);
	ok(state_is(st, "missing") && strstr(reason_of(st), "removed"), "status missing (%s)",
	   reason_of(st));
	json_decref(st);
	ok(rt->sandbox_destroy(inst, a, &err) == 0, "destroy again is 0 (idempotent)");
	ok(in_list(inst, json_string_value(json_object_get(a, "sandbox_id"))) == 0,
	   "list no longer has it");

	/* OOM: the executor itself is made the OOM killer's choice, then memory runs out. */
	b = make(inst, spec_new(image, 64), &err);
	if (ok(b != NULL, "small sandbox created (%s)", b ? "ok" : err.message)) {
		json_t *r = run_py(b, "def handler(event, context):\n"
				      "    import os\n"
				      "    for p in os.listdir('/proc'):\n"
				      "        if p.isdigit():\n"
				      "            try:\n"
				      "                cmd = open('/proc/%s/cmdline' % p).read()\n"
				      "                if 'sbx-executor' in cmd:\n"
				      "                    open('/proc/%s/oom_score_adj' % p, "
				      "'w').write('1000')\n"
				      "            except OSError:\n"
				      "                pass\n"
				      "    x = []\n"
				      "    while True:\n"
				      "        x.append(bytearray(8 << 20))\n");
		json_decref(r);
		wait_stopped(cid_of(b));
		st = status_of(inst, b);
		ok(state_is(st, "exited") && json_is_true(json_object_get(st, "oom_killed")) &&
		       strstr(reason_of(st), "out of memory (limit 64 MiB)"),
		   "OOM: exited, oom_killed, reason (%s)", reason_of(st));
		json_decref(st);
		ok(rt->sandbox_destroy(inst, b, &err) == 0, "destroy after OOM (%s)", err.message);
	}

	/* Several sandboxes, then destroy all through list (state sync's orphan path). */
	{
		json_t *h1 = make(inst, spec_new(image, 128), &err);
		json_t *h2 = make(inst, spec_new(image, 128), &err);
		json_t *l = NULL, *e;
		size_t i;
		int n = 0, gone = 1;

		ok(h1 && h2, "two more sandboxes");
		if (rt->sandbox_list(inst, &l, &err) == 0)
			json_array_foreach (l, i, e) {
				n++;
				if (rt->sandbox_destroy(inst, e, &err) < 0)
					gone = 0;
			}
		ok(n == 2 && gone, "list returned %d handles that destroy accepts", n);
		json_decref(l);
		ok(h1 && h2 && !inspect(cid_of(h1)) && !inspect(cid_of(h2)),
		   "their containers are gone");
		json_decref(h1);
		json_decref(h2);
	}

	/* The opt-outs: the engine's default seccomp profile and docker-init as PID 1. */
	{
		void *oi;
		json_t *oh, *in;
		const json_t *v, *hc;
		size_t k;
		int seccomp_opts = 0;

		x = json_pack("{s:s}", "seccomp", "strict");
		ok(!new_instance("dk-optout", x, &err) && err.code == SBX_E_INVALID &&
		       strstr(err.message, "'seccomp'") && strstr(err.message, "\"default\""),
		   "seccomp other than \"sbxd\"/\"default\" is refused (%s)", err.message);
		json_decref(x);
		x = json_pack("{s:s, s:b}", "seccomp", "default", "init", 1);
		oi = new_instance("dk-optout", x, &err);
		json_decref(x);
		oh = oi ? make(oi, spec_new(image, 128), &err) : NULL;
		in = oh ? inspect(cid_of(oh)) : NULL;
		hc = json_object_get(in, "HostConfig");
		json_array_foreach (json_object_get(hc, "SecurityOpt"), k, v)
			seccomp_opts += !strncmp(json_string_value(v) ?: "", "seccomp=", 8);
		ok(in && seccomp_opts == 0 &&
		       str_in(json_object_get(hc, "SecurityOpt"), "no-new-privileges") &&
		       json_is_true(json_object_get(hc, "Init")) &&
		       py_is(oh,
			     "def handler(event, context):\n    return "
			     "open('/proc/1/cmdline').read().split('\\0')[0]\n",
			     "\"/sbin/docker-init\""),
		   "seccomp = \"default\", init = true: no profile of ours, docker-init is PID 1 "
		   "(%s)",
		   oh ? "ok" : err.message);
		ok(oh && rt->sandbox_destroy(oi, oh, &err) == 0, "opt-out sandbox destroyed");
		json_decref(in);
		json_decref(oh);
		if (oi)
			rt->life.destroy(oi);
	}

	/* The same engine over tcp:// with TLS client certificates. */
	if (getenv("SBX_TEST_DOCKER_TLS_HOST") && getenv("SBX_TEST_DOCKER_TLS_DIR")) {
		const char *th = getenv("SBX_TEST_DOCKER_TLS_HOST");
		const char *td = getenv("SBX_TEST_DOCKER_TLS_DIR");
		char ca[700], oca[700], cert[700], key[700];
		void *ti;
		json_t *th_h;

		snprintf(ca, sizeof ca, "%s/ca.pem", td);
		snprintf(oca, sizeof oca, "%s/other-ca.pem", td);
		snprintf(cert, sizeof cert, "%s/client.pem", td);
		snprintf(key, sizeof key, "%s/client-key.pem", td);
		x = json_pack("{s:s, s:s, s:s, s:s}", "host", th, "tls_ca", ca, "tls_cert", cert,
			      "tls_key", key);
		ti = new_instance("dk-test", x, &err);
		json_decref(x);
		if (ok(ti != NULL, "instance on %s with TLS client certificates (%s)", th,
		       ti ? "ok" : err.message)) {
			x = NULL;
			ok(rt->health(ti, &x, &err) == 0, "health over TLS (%s)", err.message);
			json_decref(x);
			th_h = make(ti, spec_new(image, 128), &err);
			ok(th_h && health_ok(th_h),
			   "a sandbox created over TLS answers /health (%s)",
			   th_h ? "ok" : err.message);
			ok(th_h && rt->sandbox_destroy(ti, th_h, &err) == 0 &&
			       !inspect(cid_of(th_h)),
			   "and is destroyed over TLS");
			json_decref(th_h);
			rt->life.destroy(ti);
		}
		x = json_pack("{s:s, s:s, s:s, s:s}", "host", th, "tls_ca", oca, "tls_cert", cert,
			      "tls_key", key);
		ti = new_instance("dk-tls-wrong-ca", x, &err);
		json_decref(x);
		if (ti) {
			x = NULL;
			ok(rt->health(ti, &x, &err) < 0 && err.code == SBX_E_UNAVAILABLE &&
			       strstr(err.message, "TLS"),
			   "a CA that did not sign the daemon's certificate: refused (%s)",
			   err.message);
			json_decref(x);
			rt->life.destroy(ti);
		} else {
			ok(0, "instance with the wrong CA (%s)", err.message);
		}
		x = json_pack("{s:s, s:s}", "host", th, "tls_ca", ca);
		ti = new_instance("dk-tls-no-cert", x, &err);
		json_decref(x);
		if (ti) {
			x = NULL;
			ok(rt->health(ti, &x, &err) < 0 && err.code == SBX_E_UNAVAILABLE &&
			       strstr(err.message, "client certificate"),
			   "no client certificate: the daemon refuses (%s)", err.message);
			json_decref(x);
			rt->life.destroy(ti);
		} else {
			ok(0, "instance without a client certificate (%s)", err.message);
		}
	} else {
		printf("ok %d - # SKIP TLS: SBX_TEST_DOCKER_TLS_HOST/_DIR not set\n", ++tap_n);
	}

	/* The foreign container is untouched, and destroy refuses it. */
	if (foreign_id[0]) {
		json_t *in = inspect(foreign_id), *fh;
		char p[256];
		ok(in != NULL, "the foreign container is still there");
		json_decref(in);
		fh = json_pack("{s:s, s:s}", "sandbox_id", "dk-00000000000000000000000000000000",
			       "container_id", foreign_id);
		ok(rt->sandbox_destroy(inst, fh, &err) < 0 && err.code == SBX_E_INVALID,
		   "destroy of a foreign container is refused (%s)", err.message);
		json_decref(fh);
		snprintf(p, sizeof p, "/containers/%s?force=1&v=1", foreign_id);
		engine("DELETE", p, NULL, NULL);
	}
	{
		json_t *vols = NULL;
		engine("GET", "/volumes", NULL, &vols);
		ok(json_array_size(json_object_get(vols, "Volumes")) == 0, "no volume left behind");
		json_decref(vols);
	}
	rt->life.destroy(inst);
out:
	json_decref(a);
	json_decref(b);
	json_decref(foreign);
	fakecore_module_close(&mod);
	fakecore_cleanup();
	return tap_done();
}
