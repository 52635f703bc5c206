/*
 * Tests of the `kubernetes` runtime module against tests/plugins/k8s_standin.py, a stand-in
 * API server (no real cluster runs here) that validates every request and runs the real
 * executor bundle for each pod. Started by runtime_kubernetes.sh, which passes K8S_SERVER,
 * K8S_TOKEN_FILE, K8S_FORBIDDEN_TOKEN_FILE, K8S_EXECUTOR_PORT and K8S_WORKDIR.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sandbox/runtime.h>

#include "tests/plugins/fakecore.h"
#include "tests/tap.h"

static const struct sbx_core_api *core;
static const struct sbx_runtime_plugin *rt;
static const char *server, *token_file, *forbidden_file, *workdir;
static int exec_port;

static void *new_instance(const char *name, json_t *extra, sbx_err *err)
{
	json_t *cfg = json_pack(
	    "{s:s, s:s, s:s, s:b, s:s, s:i, s:i, s:i, s:f, s:i}", "server", server, "token_file",
	    token_file, "namespace", "sbx-test", "allow_insecure_http", 1, "executor_image",
	    "sbx-executor:test", "executor_port", exec_port, "create_timeout_ms", 20000,
	    "max_sessions", 10, "capacity_cpu", 8.0, "capacity_memory_mb", 16384);
	void *inst = NULL;

	sbx_err_clear(err);
	if (extra)
		json_object_update(cfg, extra);
	if (rt->life.create(core, name, cfg, &inst, err) < 0)
		inst = NULL;
	json_decref(cfg);
	return inst;
}

static json_t *spec_of(const char *session, const char *image, const char *token)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:{s:f, s:i, s:i, s:i}, s:{s:s}, s:s, s:s}",
			 "session_id", session, "template_id", "python_basic/Test", "image", image,
			 "runtime_type", "python3.11", "resources", "cpu", 0.5, "memory_mb", 256,
			 "disk_mb", 100, "max_processes", 64, "env_vars", "SBX_SECRET_ENV",
			 "do-not-leak-into-pod", "network", "none", "executor_token", token);
}

static json_t *make(void *inst, const char *session, const char *image, sbx_err *err)
{
	json_t *spec = spec_of(session, image, "0123456789abcdef0123456789abcdef");
	json_t *h = NULL;

	sbx_err_clear(err);
	if (rt->sandbox_create(inst, spec, &h, err) < 0)
		h = NULL;
	json_decref(spec);
	return h;
}

/* An HTTP request through the fake core; returns the status (0 on transport failure). */
static long http(const char *method, const char *url, const char *bearer, const char *body,
		 json_t **out)
{
	json_t *req = json_pack("{s:s, s:s, s:i, s:{}}", "method", method, "url", url, "timeout_ms",
				20000, "headers");
	json_t *resp = NULL;
	sbx_err err;
	long status = 0;
	char auth[256];

	if (bearer) {
		snprintf(auth, sizeof auth, "Bearer %s", bearer);
		json_object_set_new(json_object_get(req, "headers"), "Authorization",
				    json_string(auth));
	}
	if (body)
		json_object_set_new(json_object_get(req, "headers"), "Content-Type",
				    json_string("application/json"));
	if (core->http_request(req, body, body ? strlen(body) : 0, NULL, NULL, NULL, NULL, &resp,
			       &err) == 0)
		status = (long)json_integer_value(json_object_get(resp, "status"));
	if (out) {
		/* JSON, or for an NDJSON stream its last line (the execution's result) */
		const char *b = json_string_value(json_object_get(resp, "body"));
		const char *last = b;
		size_t n = b ? strlen(b) : 0;
		while (n && b[n - 1] == '\n')
			n--;
		for (size_t i = 0; b && i < n; i++)
			if (b[i] == '\n')
				last = b + i + 1;
		*out = b ? json_loadb(last, n - (size_t)(last - b), JSON_DECODE_ANY, NULL) : NULL;
	}
	json_decref(req);
	json_decref(resp);
	return status;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	static char buf[4096];
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf;
}

static json_t *standin(const char *what)
{
	char url[512];
	json_t *out = NULL;

	snprintf(url, sizeof url, "%s/_standin/%s", server, what);
	http("GET", url, NULL, NULL, &out);
	return out;
}

static void standin_config(const char *json)
{
	char url[512];

	snprintf(url, sizeof url, "%s/_standin/config", server);
	http("POST", url, NULL, json, NULL);
}

/* The body of the last recorded request `method` whose path starts with `prefix`. */
static json_t *recorded(const char *method, const char *prefix)
{
	json_t *all = standin("requests"), *r, *found = NULL;
	size_t i;

	json_array_foreach (all, i, r)
		if (!strcmp(json_string_value(json_object_get(r, "method")), method) &&
		    !strncmp(json_string_value(json_object_get(r, "path")), prefix, strlen(prefix)))
			found = json_object_get(r, "body");
	json_incref(found);
	json_decref(all);
	return found;
}

static int count_requests(const char *method, const char *substr)
{
	json_t *all = standin("requests"), *r;
	size_t i;
	int n = 0;

	json_array_foreach (all, i, r)
		n += !strcmp(json_string_value(json_object_get(r, "method")), method) &&
		     strstr(json_string_value(json_object_get(r, "path")), substr);
	json_decref(all);
	return n;
}

static int in_stats(const char *list, const char *name)
{
	json_t *st = standin("stats"), *v;
	size_t i;
	int found = 0;

	json_array_foreach (json_object_get(st, list), i, v)
		found |= !strcmp(json_string_value(v), name);
	json_decref(st);
	return found;
}

static int n_stats(const char *list)
{
	json_t *st = standin("stats");
	int n = (int)json_array_size(json_object_get(st, list));
	json_decref(st);
	return n;
}

static const char *jpath(const json_t *o, const char *path)
{
	char buf[256], *tok, *save = NULL;
	static char out[512];

	snprintf(buf, sizeof buf, "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save))
		o = json_is_array(o) ? json_array_get(o, (size_t)atoi(tok))
				     : json_object_get(o, tok);
	if (!o)
		return "(absent)";
	if (json_is_string(o))
		return json_string_value(o);
	{
		char *d = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(out, sizeof out, "%s", d ? d : "?");
		free(d);
	}
	return out;
}

static int contains(const json_t *arr, const char *s)
{
	const json_t *v;
	size_t i;

	json_array_foreach (arr, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), s))
			return 1;
	return 0;
}

static const json_t *volume(const json_t *pod, const char *name)
{
	const json_t *v;
	size_t i;

	json_array_foreach (json_object_get(json_object_get(pod, "spec"), "volumes"), i, v)
		if (!strcmp(json_string_value(json_object_get(v, "name")) ?: "", name))
			return v;
	return NULL;
}

static void check_pod_body(const json_t *pod, const char *session)
{
	const json_t *spec = json_object_get(pod, "spec");
	const json_t *c = json_array_get(json_object_get(spec, "containers"), 0);
	const json_t *ic = json_array_get(json_object_get(spec, "initContainers"), 0);
	const json_t *cmd = json_object_get(c, "command");
	char *text = json_dumps(pod, JSON_COMPACT);
	char listen[64];

	ok(!strcmp(json_string_value(
		       json_object_get(json_object_get(json_object_get(pod, "metadata"), "labels"),
				       "app.kubernetes.io/managed-by"))
		       ?: "",
		   "sbxd"),
	   "pod label app.kubernetes.io/managed-by=sbxd");
	{
		const json_t *l = json_object_get(json_object_get(pod, "metadata"), "labels");
		ok(!strcmp(json_string_value(json_object_get(l, "sbxd.io/instance")) ?: "",
			   "k8s-test") &&
		       !strcmp(json_string_value(json_object_get(l, "sbxd.io/session")) ?: "",
			       session) &&
		       !strcmp(json_string_value(json_object_get(l, "sbxd.io/template")) ?: "",
			       "python_basic-Test") &&
		       json_object_get(l, "sbxd.io/sandbox"),
		   "labels instance, session, template (sanitised: python_basic-Test), sandbox");
	}
	ok(!strcmp(jpath(spec, "automountServiceAccountToken"), "false") &&
	       !strcmp(jpath(spec, "enableServiceLinks"), "false") &&
	       !strcmp(jpath(spec, "restartPolicy"), "Never"),
	   "automountServiceAccountToken false, enableServiceLinks false, restartPolicy Never");
	ok(!strcmp(jpath(spec, "securityContext.runAsNonRoot"), "true") &&
	       !strcmp(jpath(spec, "securityContext.runAsUser"), "65534") &&
	       !strcmp(jpath(spec, "securityContext.runAsGroup"), "65534") &&
	       !strcmp(jpath(spec, "securityContext.fsGroup"), "65534") &&
	       !strcmp(jpath(spec, "securityContext.seccompProfile.type"), "RuntimeDefault"),
	   "pod securityContext: runAsNonRoot, 65534:65534, fsGroup, seccomp RuntimeDefault");
	ok(!strcmp(jpath(c, "securityContext.allowPrivilegeEscalation"), "false") &&
	       !strcmp(jpath(c, "securityContext.readOnlyRootFilesystem"), "true") &&
	       !strcmp(jpath(c, "securityContext.privileged"), "false") &&
	       !strcmp(jpath(c, "securityContext.capabilities.drop"), "[\"ALL\"]") &&
	       !strcmp(jpath(ic, "securityContext.capabilities.drop"), "[\"ALL\"]") &&
	       !strcmp(jpath(ic, "securityContext.readOnlyRootFilesystem"), "true"),
	   "container and init container: no privilege escalation, read-only root, drop ALL");
	ok(!strcmp(jpath(c, "resources.limits.cpu"), "500m") &&
	       !strcmp(jpath(c, "resources.limits.memory"), "256Mi") &&
	       !strcmp(jpath(c, "resources.requests.memory"), "256Mi") &&
	       strcmp(jpath(c, "resources.limits.ephemeral-storage"), "(absent)"),
	   "resources: cpu 500m, memory 256Mi (requests = limits), ephemeral-storage (%s)",
	   jpath(c, "resources.limits"));
	ok(!strcmp(jpath(volume(pod, "workspace"), "emptyDir.sizeLimit"), "100Mi") &&
	       !strcmp(jpath(volume(pod, "tmp"), "emptyDir.medium"), "Memory") &&
	       strcmp(jpath(volume(pod, "executor"), "emptyDir"), "(absent)") &&
	       strcmp(jpath(volume(pod, "token"), "secret.secretName"), "(absent)"),
	   "volumes: workspace emptyDir 100Mi, tmp in memory, executor emptyDir, token Secret");
	ok(!strcmp(jpath(ic, "image"), "sbx-executor:test") &&
	       !strcmp(jpath(ic, "command.0"), "cp"),
	   "the init container copies the bundle from executor_image");
	snprintf(listen, sizeof listen, "0.0.0.0:%d", exec_port);
	ok(!strcmp(jpath(c, "image"), "python:3.11") && contains(cmd, "--listen") &&
	       contains(cmd, listen) && contains(cmd, "--token-file") &&
	       !strncmp(jpath(cmd, "0"), "/opt/sbx/lib/ld-linux", 21),
	   "main container: the template image running the bundle's loader, --listen %s", listen);
	ok(text && !strstr(text, "SBX_SECRET_ENV") && !strstr(text, "do-not-leak") &&
	       !strstr(text, "0123456789abcdef0123456789abcdef"),
	   "neither the spec's env_vars nor the executor token are in the pod");
	ok(!strcmp(jpath(spec,
			 "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution."
			 "0.preference.matchExpressions.0.values.0"),
		   "worker-7"),
	   "the policy's node hint is a preferred node affinity on kubernetes.io/hostname");
	free(text);
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

/* 1 when sandbox_list has sandbox_id (and, if `with` is given, that handle has member
 * `with` equal to `value`), 0 when not, -1 on error. */
static int listed_with(void *inst, const char *sandbox_id, const char *with, const char *value)
{
	json_t *list = NULL, *h;
	sbx_err err;
	size_t i;
	int found = 0;

	if (rt->sandbox_list(inst, &list, &err) < 0)
		return -1;
	json_array_foreach (list, i, h)
		if (!strcmp(json_string_value(json_object_get(h, "sandbox_id")) ?: "", sandbox_id))
			found |= !with || !strcmp(jpath(h, with), value);
	json_decref(list);
	return found;
}

static int listed(void *inst, const char *sandbox_id)
{
	return listed_with(inst, sandbox_id, NULL, NULL);
}

int main(void)
{
	const char *top = getenv("top_builddir") ? getenv("top_builddir") : ".";
	struct fakecore_module mod;
	char errbuf[512], path[1200], url[600];
	const char *api_token;
	sbx_err err;
	void *inst, *bad;
	json_t *a = NULL, *b = NULL, *st, *x, *body;
	int exited;

	server = getenv("K8S_SERVER");
	token_file = getenv("K8S_TOKEN_FILE");
	forbidden_file = getenv("K8S_FORBIDDEN_TOKEN_FILE");
	workdir = getenv("K8S_WORKDIR");
	exec_port = getenv("K8S_EXECUTOR_PORT") ? atoi(getenv("K8S_EXECUTOR_PORT")) : 0;
	if (!server || !token_file || !forbidden_file || !workdir || !exec_port) {
		printf("1..0 # SKIP run through runtime_kubernetes.sh (starts the API stand-in)\n");
		return 0;
	}
	core = fakecore_api();
	snprintf(path, sizeof path, "%s/plugins/runtime/kubernetes/runtime_kubernetes.la", top);
	if (fakecore_module_open(path, SBX_KIND_RUNTIME, sizeof(struct sbx_runtime_plugin), &mod,
				 errbuf, sizeof errbuf) < 0) {
		ok(0, "module loads: %s", errbuf);
		return tap_done();
	}
	rt = (const struct sbx_runtime_plugin *)mod.hdr;

	/* Config */
	x = json_pack("{s:i}", "no_such_key", 1);
	ok(!new_instance("k8s-test", x, &err) && err.code == SBX_E_INVALID &&
	       strstr(err.message, "no_such_key"),
	   "unknown config key is refused, naming the key (%s)", err.message);
	json_decref(x);
	x = json_pack("{s:b}", "allow_insecure_http", 0);
	ok(!new_instance("k8s-test", x, &err) && strstr(err.message, "allow_insecure_http"),
	   "plain http is refused unless allow_insecure_http (%s)", err.message);
	json_decref(x);
	x = json_pack("{s:s}", "server", "x");
	ok(!new_instance("k8s-test", x, &err) && strstr(err.message, "'server'"),
	   "a server that is not an http(s) URL is refused (%s)", err.message);
	json_decref(x);
	x = json_pack("{s:s}", "namespace", "Not_A_Namespace");
	ok(!new_instance("k8s-test", x, &err) && strstr(err.message, "namespace"),
	   "an invalid namespace is refused (%s)", err.message);
	json_decref(x);
	inst = new_instance("k8s-test", NULL, &err);
	if (!ok(inst != NULL, "instance is created (%s)", inst ? "ok" : err.message))
		return tap_done();
	{
		json_t *d = NULL;
		int rc = rt->health(inst, &d, &err);
		ok(rc == 0 && !strcmp(jpath(d, "version"), "v1.30.0-sbxd-standin"),
		   "health: GET /version and a pod list succeed (%s)", rc ? err.message : "ok");
		json_decref(d);
	}

	/* Create: a pod whose executor answers over TCP with the session token */
	{
		json_t *spec =
		    spec_of("s-Test_1", "python:3.11", "0123456789abcdef0123456789abcdef");
		json_object_set_new(spec, "node", json_string("worker-7"));
		json_object_set_new(spec, "pool_owner", json_string("pool/py"));
		if (rt->sandbox_create(inst, spec, &a, &err) < 0)
			a = NULL;
		json_decref(spec);
	}
	if (!ok(a != NULL, "sandbox_create returns a handle (%s)", a ? "ok" : err.message))
		return tap_done();
	{
		const char *u = jpath(a, "executor.url");
		ok(!strncmp(u, "http://127.0.0.", 15) &&
		       !strcmp(jpath(a, "namespace"), "sbx-test") &&
		       !strcmp(jpath(a, "executor.token"), "0123456789abcdef0123456789abcdef") &&
		       !strcmp(jpath(a, "sandbox_id"), jpath(a, "pod_name")) &&
		       !strcmp(jpath(a, "session_id"), "s-Test_1") &&
		       !strcmp(jpath(a, "pool_owner"), "pool/py"),
		   "handle: pod name, namespace, executor url %s with the session token, "
		   "pool_owner",
		   u);
		snprintf(url, sizeof url, "%s/health", u);
	}
	ok(http("GET", url, "0123456789abcdef0123456789abcdef", NULL, NULL) == 200,
	   "the executor answers GET /health over TCP with the bearer token");
	ok(http("GET", url, NULL, NULL, NULL) == 401, "without the token: 401");
	ok(http("GET", url, "wrong-token", NULL, NULL) == 401, "with another token: 401");
	{
		char eurl[600];
		json_t *out = NULL;
		long s;
		snprintf(eurl, sizeof eurl, "%s/execute", jpath(a, "executor.url"));
		s = http("POST", eurl, "0123456789abcdef0123456789abcdef",
			 "{\"language\":\"python\",\"code\":\"def handler(event):\\n    return "
			 "event['x'] * 2\\n\",\"event\":{\"x\":21}}",
			 &out);
		ok(s == 200 && !strcmp(jpath(out, "status"), "completed") &&
		       !strcmp(jpath(out, "return_value"), "42"),
		   "POST /execute through the pod's executor over TCP: %ld, status %s, return %s",
		   s, jpath(out, "status"), jpath(out, "return_value"));
		json_decref(out);
	}
	body = recorded("POST", "/api/v1/namespaces/sbx-test/pods");
	if (ok(body != NULL, "the stand-in recorded the pod body"))
		check_pod_body(body, "s-Test_1");
	json_decref(body);
	body = recorded("POST", "/api/v1/namespaces/sbx-test/secrets");
	ok(body && !strcmp(jpath(body, "stringData.token"), "0123456789abcdef0123456789abcdef") &&
	       !strcmp(jpath(body, "immutable"), "true"),
	   "the token travels in an immutable Secret");
	json_decref(body);
	body = recorded("PATCH", "/api/v1/namespaces/sbx-test/secrets/");
	ok(body && !strcmp(jpath(body, "metadata.ownerReferences.0.kind"), "Pod") &&
	       !strcmp(jpath(body, "metadata.ownerReferences.0.uid"), jpath(a, "pod_uid")),
	   "the Secret is then owned by the pod (ownerReferences, merge patch)");
	json_decref(body);

	st = status_of(inst, a);
	ok(st && !strcmp(jpath(st, "state"), "running"), "status: running");
	json_decref(st);

	/* A foreign pod in the namespace: not listed, never touched */
	{
		char purl[600];
		const char *foreign =
		    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"foreign-"
		    "app\","
		    "\"labels\":{\"app\":\"web\",\"app.kubernetes.io/managed-by\":\"helm\"}},"
		    "\"spec\":{\"securityContext\":{\"runAsNonRoot\":true,\"seccompProfile\":"
		    "{\"type\":\"RuntimeDefault\"}},\"containers\":[{\"name\":\"web\","
		    "\"image\":\"nginx:1.25\",\"securityContext\":{\"allowPrivilegeEscalation\":"
		    "false,\"capabilities\":{\"drop\":[\"ALL\"]}}}]}}";
		api_token = read_file(token_file);
		snprintf(purl, sizeof purl, "%s/api/v1/namespaces/sbx-test/pods", server);
		ok(http("POST", purl, api_token, foreign, NULL) == 201,
		   "a foreign pod is created beside ours");
		ok(http("POST", purl, api_token,
			"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"root\"},"
			"\"spec\":{\"containers\":[{\"name\":\"x\",\"image\":\"i\"}]}}",
			NULL) == 403,
		   "the stand-in enforces the restricted Pod Security Standard (403), which the "
		   "module's pods passed");
		snprintf(purl, sizeof purl,
			 "%s/api/v1/namespaces/sbx-test/pods?fieldValidation=Strict", server);
		ok(http("POST", purl, api_token,
			"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\"},"
			"\"spec\":{\"containers\":[{\"name\":\"x\",\"image\":\"i\",\"bogus\":1}]}}",
			NULL) == 400,
		   "the stand-in refuses unknown fields (400 strict decoding error)");
	}
	b = make(inst, "s-second", "node:20", &err);
	ok(b != NULL, "a second sandbox (%s)", b ? "ok" : err.message);
	ok(listed(inst, jpath(a, "sandbox_id")) == 1 && listed(inst, "foreign-app") == 0 &&
	       (!b || listed(inst, jpath(b, "sandbox_id")) == 1),
	   "sandbox_list returns ours (by label) and not the foreign pod");
	ok(listed_with(inst, jpath(a, "sandbox_id"), "session_id", "s-Test_1") == 1 &&
	       listed_with(inst, jpath(a, "sandbox_id"), "pool_owner", "pool/py") == 1 &&
	       listed_with(
		   inst, jpath(a, "sandbox_id"), "executor.url",
		   json_string_value(json_object_get(json_object_get(a, "executor"), "url"))) == 1,
	   "listed handles carry the unsanitised session id and pool owner, and the executor url "
	   "(state sync)");
	{
		json_t *n = NULL;
		int rc = rt->nodes(inst, &n, &err);
		ok(rc == 0 && json_array_size(n) == 1 &&
		       !strcmp(jpath(n, "0.capacity.max_sessions"), "10") &&
		       !strcmp(jpath(n, "0.allocated.sessions"), b ? "2" : "1") &&
		       !strcmp(jpath(n, "0.healthy"), "true"),
		   "nodes: one entry, capacity from config, allocated sessions counted");
		json_decref(n);
	}

	/* Destroy */
	ok(rt->sandbox_destroy(inst, a, &err) == 0, "destroy");
	{
		int gone = 0;
		for (int i = 0; i < 50 && !gone; i++) {
			st = status_of(inst, a);
			gone = st && !strcmp(jpath(st, "state"), "missing");
			json_decref(st);
			if (!gone)
				usleep(100000);
		}
		ok(gone, "status after destroy: missing");
	}
	ok(http("GET", url, "0123456789abcdef0123456789abcdef", NULL, NULL) == 0,
	   "the executor is gone with its pod");
	ok(!in_stats("secrets", jpath(a, "secret_name")), "the token Secret is gone");
	ok(rt->sandbox_destroy(inst, a, &err) == 0, "destroy again: 404 is success");
	ok(in_stats("pods", "foreign-app"), "the foreign pod is untouched");
	json_decref(a);
	a = NULL;

	/* Failures, and nothing left behind */
	{
		int pods0 = n_stats("pods"), secrets0 = n_stats("secrets");

		x = make(inst, "s-missing", "missing:latest", &err);
		ok(!x && err.code == SBX_E_INVALID && strstr(err.message, "missing:latest") &&
		       strstr(err.message, "pulled"),
		   "an image that cannot be pulled: SBX_E_INVALID naming it (%s)", err.message);
		json_decref(x);
		x = make(inst, "s-unsched", "unschedulable:1", &err);
		ok(!x && err.code == SBX_E_LIMIT && strstr(err.message, "Insufficient cpu"),
		   "an unschedulable pod: SBX_E_LIMIT with the scheduler's message (%s)",
		   err.message);
		json_decref(x);
		x = make(inst, "s-crash", "crash:1", &err);
		ok(!x && err.code == SBX_E_UNAVAILABLE && strstr(err.message, "exit code 1"),
		   "a container that dies at start: the reason and exit code (%s)", err.message);
		json_decref(x);
		x = make(inst, "s-conflict", "conflict:1", &err);
		ok(!x && err.code == SBX_E_CONFLICT && strstr(err.message, "AlreadyExists"),
		   "409 AlreadyExists: SBX_E_CONFLICT (%s)", err.message);
		json_decref(x);
		x = make(inst, "s-invalid", " python:3.11", &err);
		ok(!x && err.code == SBX_E_INVALID &&
		       strstr(err.message, "spec.containers[0].image") &&
		       strstr(err.message, "whitespace"),
		   "422 Invalid: SBX_E_INVALID with the API's message (%s)", err.message);
		json_decref(x);
		for (int i = 0; i < 50 && n_stats("pods") != pods0; i++)
			usleep(100000);
		ok(n_stats("pods") == pods0 && n_stats("secrets") == secrets0,
		   "failed creations leave no pod and no Secret behind (%d/%d pods, %d/%d secrets)",
		   n_stats("pods"), pods0, n_stats("secrets"), secrets0);
	}

	/* OOM after start: status says so */
	x = make(inst, "s-oom", "oom:1", &err);
	ok(x != NULL, "an image that will be OOM-killed starts (%s)", x ? "ok" : err.message);
	exited = 0;
	for (int i = 0; x && i < 60 && !exited; i++) {
		st = status_of(inst, x);
		exited = st && !strcmp(jpath(st, "state"), "exited");
		if (exited)
			ok(strstr(jpath(st, "reason"), "OOMKilled") &&
			       !strcmp(jpath(st, "oom_killed"), "true"),
			   "status: exited, reason OOMKilled, oom_killed (%s)",
			   jpath(st, "reason"));
		json_decref(st);
		if (!exited)
			usleep(100000);
	}
	ok(exited, "the OOM kill is seen by sandbox_status");
	if (x)
		rt->sandbox_destroy(inst, x, &err);
	json_decref(x);
	x = make(inst, "s-evict", "evict:1", &err);
	exited = 0;
	for (int i = 0; x && i < 60 && !exited; i++) {
		st = status_of(inst, x);
		exited = st && !strcmp(jpath(st, "state"), "exited") &&
			 strstr(jpath(st, "reason"), "Evicted");
		json_decref(st);
		if (!exited)
			usleep(100000);
	}
	ok(exited, "an evicted pod: status exited, reason Evicted");
	if (x)
		rt->sandbox_destroy(inst, x, &err);
	json_decref(x);

	/* 410 Gone on a stale watch: re-list and watch again */
	{
		int gets = count_requests("GET", "/pods/");
		json_t *s0 = standin("stats"), *s1;
		standin_config("{\"compact_after_create\": true}");
		x = make(inst, "s-expired", "python:3.11", &err);
		standin_config("{\"compact_after_create\": false}");
		s1 = standin("stats");
		ok(x != NULL &&
		       json_integer_value(json_object_get(s1, "expired_watches")) >
			   json_integer_value(json_object_get(s0, "expired_watches")) &&
		       count_requests("GET", "/pods/") > gets,
		   "a watch answered 410 Expired: the module re-read the pod and still got it "
		   "ready (%s)",
		   x ? "ok" : err.message);
		json_decref(s0);
		json_decref(s1);
		if (x)
			rt->sandbox_destroy(inst, x, &err);
		json_decref(x);
	}

	/* Credentials */
	{
		char badfile[600];
		FILE *f;
		snprintf(badfile, sizeof badfile, "%s/wrong-token", workdir);
		f = fopen(badfile, "w");
		fputs("not-the-token\n", f);
		fclose(f);
		x = json_pack("{s:s}", "token_file", badfile);
		bad = new_instance("k8s-bad", x, &err);
		json_decref(x);
		ok(bad != NULL, "an instance with a wrong token file is created (config is fine)");
		x = bad ? make(bad, "s-401", "python:3.11", &err) : NULL;
		ok(!x && err.code == SBX_E_UNAVAILABLE && strstr(err.message, "401") &&
		       strstr(err.message, "token_file"),
		   "401: a clear message naming token_file (%s)", err.message);
		json_decref(x);
		/* the token "rotates" to a good one: the module re-reads it after a 401 */
		f = fopen(badfile, "w");
		fputs(read_file(token_file), f);
		fclose(f);
		{
			json_t *d = NULL;
			ok(bad && rt->health(bad, &d, &err) == 0,
			   "after the token file changes, the next call uses the new token");
			json_decref(d);
		}
		if (bad)
			rt->life.destroy(bad);
		x = json_pack("{s:s}", "token_file", forbidden_file);
		bad = new_instance("k8s-ro", x, &err);
		json_decref(x);
		x = bad ? make(bad, "s-403", "python:3.11", &err) : NULL;
		ok(!x && strstr(err.message, "403") && strstr(err.message, "rbac"),
		   "403: the message points at the Role (%s)", err.message);
		json_decref(x);
		if (bad)
			rt->life.destroy(bad);
	}

	/* TLS to the API server: the CA from ca_file is required */
	if (getenv("K8S_TLS_SERVER")) {
		json_t *d = NULL;
		x = json_pack("{s:s, s:s, s:b}", "server", getenv("K8S_TLS_SERVER"), "ca_file",
			      getenv("K8S_TLS_CA"), "allow_insecure_http", 0);
		bad = new_instance("k8s-tls", x, &err);
		json_decref(x);
		ok(bad && rt->health(bad, &d, &err) == 0,
		   "https with ca_file: the API server's certificate is verified (%s)",
		   bad ? (err.code ? err.message : "ok") : err.message);
		json_decref(d);
		d = NULL;
		if (bad)
			rt->life.destroy(bad);
		x = json_pack("{s:s, s:b}", "server", getenv("K8S_TLS_SERVER"),
			      "allow_insecure_http", 0);
		bad = new_instance("k8s-tls", x, &err);
		json_decref(x);
		ok(bad && rt->health(bad, &d, &err) < 0 && err.code == SBX_E_UNAVAILABLE &&
		       strstr(err.message, "ca_file"),
		   "https without our CA: refused, naming ca_file (%s)", err.message);
		json_decref(d);
		if (bad)
			rt->life.destroy(bad);
	} else {
		diag("no openssl: the TLS checks did not run");
	}

	if (b) {
		ok(rt->sandbox_destroy(inst, b, &err) == 0, "destroy the second sandbox");
		json_decref(b);
	}
	{
		json_t *list = NULL;
		int empty = 0;
		for (int i = 0; i < 50 && !empty; i++) {
			json_decref(list);
			list = NULL;
			empty =
			    rt->sandbox_list(inst, &list, &err) == 0 && json_array_size(list) == 0;
			if (!empty)
				usleep(100000);
		}
		ok(empty, "in the end the instance owns no pod");
		json_decref(list);
	}
	rt->life.destroy(inst);
	fakecore_module_close(&mod);
	fakecore_cleanup();
	return tap_done();
}
