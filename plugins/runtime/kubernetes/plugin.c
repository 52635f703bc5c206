/*
 * The `kubernetes` runtime module: descriptor, instance lifecycle and the runtime methods.
 * A sandbox is a Pod (plus a Secret with its executor's token); create waits on a watch
 * until the pod is ready and its executor answers, and maps pod failures to reasons.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "k8s.h"

#define IMAGE_PULL_REASONS                                                                         \
	"|ErrImagePull|ImagePullBackOff|InvalidImageName|ErrImageNeverPull|RegistryUnavailable|"

static void k8s_free(struct k8s *k)
{
	if (!k)
		return;
	config_free(k);
	pthread_mutex_destroy(&k->lock);
	free(k);
	curl_global_cleanup();
}

static int k8s_create(const struct sbx_core_api *core, const char *instance_name,
		      const json_t *config, void **inst, sbx_err *err)
{
	struct k8s *k = calloc(1, sizeof *k);
	char label[K8S_LABEL_MAX + 1];
	int rc;

	if (!k)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	/* Reference-counted; the core initialised libcurl already, this keeps it alive. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_mutex_init(&k->lock, NULL);
	k->core = core;
	k->name = strdup(instance_name ? instance_name : "kubernetes");
	label_value(k->name, label, sizeof label);
	k->inst_label = strdup(label);
	if (!k->name || !k->inst_label) {
		k8s_free(k);
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	if ((rc = config_parse(k, config, err)) < 0) {
		k8s_free(k);
		return rc;
	}
	*inst = k;
	return 0;
}

static void k8s_destroy(void *inst)
{
	k8s_free(inst);
}

/* RFC 1123 label of at most 63 characters (our pod names). */
static int pod_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0, i;

	if (!n || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return 0;
	for (i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return 0;
	return 1;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static double num(const json_t *o, const char *key, double def)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : def;
}

/* "labelSelector=..." selecting every pod of this instance. */
static int selector_query(const struct k8s *k, char *out, size_t cap)
{
	char sel[256], enc[600];

	snprintf(sel, sizeof sel, "%s=sbxd,%s=%s", K8S_MANAGED_BY, K8S_L_INSTANCE, k->inst_label);
	if (url_encode(sel, enc, sizeof enc) < 0)
		return -1;
	return snprintf(out, cap, "labelSelector=%s", enc) >= (int)cap ? -1 : 0;
}

static int list_pods(struct k8s *k, json_t **items, sbx_err *err)
{
	char path[1024], q[700];
	long status;
	json_t *resp = NULL;
	int rc;

	if (selector_query(k, q, sizeof q) < 0)
		return sbx_err_set(err, SBX_E_INTERNAL, "label selector too long");
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods?%s", k->namespace, q);
	if ((rc = api_call(k, "GET", path, NULL, NULL, &status, &resp, err)) < 0)
		return rc;
	if (status != 200 || !json_is_array(json_object_get(resp, "items"))) {
		rc = status == 200 ? sbx_err_set(err, SBX_E_UNAVAILABLE,
						 "kubernetes API: list pods: not a PodList")
				   : api_error(k, status, resp, "list pods", err);
		json_decref(resp);
		return rc;
	}
	*items = json_incref(json_object_get(resp, "items"));
	json_decref(resp);
	return 0;
}

static int is_terminating(const json_t *pod)
{
	return json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp") != NULL;
}

/* ---- create ---------------------------------------------------------------- */

struct wait {
	struct k8s *k;
	const char *name;
	const char *image;
	char rv[64];     /* the resourceVersion to watch from */
	char pod_ip[64]; /* set when ready */
	char k8s_node[256];
};

static const json_t *condition(const json_t *pod, const char *type)
{
	const json_t *c, *conds = json_object_get(json_object_get(pod, "status"), "conditions");
	size_t i;

	json_array_foreach (conds, i, c)
		if (!strcmp(str(c, "type") ?: "", type))
			return c;
	return NULL;
}

static int pull_reason(const char *reason)
{
	char needle[80];

	snprintf(needle, sizeof needle, "|%s|", reason);
	return strstr(IMAGE_PULL_REASONS, needle) != NULL;
}

/* Why a container cannot run: 0 nothing wrong (yet), <0 with err set. */
static int container_failure(struct wait *w, const json_t *cs, int init, sbx_err *err)
{
	const json_t *st = json_object_get(cs, "state");
	const json_t *waiting = json_object_get(st, "waiting");
	const json_t *term = json_object_get(st, "terminated");
	const char *reason, *msg;
	const char *image = init ? w->k->executor_image : w->image;

	if (waiting && (reason = str(waiting, "reason"))) {
		msg = str(waiting, "message") ?: "";
		if (pull_reason(reason))
			return sbx_err_set(
			    err, SBX_E_INVALID, "image '%s' cannot be pulled (%s: %s)%s", image,
			    reason, msg, init ? "; check executor_image" : "; check the template");
		if (!strcmp(reason, "CreateContainerConfigError") ||
		    !strcmp(reason, "CreateContainerError") || !strcmp(reason, "RunContainerError"))
			return sbx_err_set(err, SBX_E_UNAVAILABLE,
					   "sandbox pod %s: container %s cannot start (%s: %s)",
					   w->name, str(cs, "name") ?: "?", reason, msg);
	}
	if (term) {
		long code = (long)json_integer_value(json_object_get(term, "exitCode"));
		reason = str(term, "reason") ?: "Error";
		msg = str(term, "message") ?: "";
		if (init && code == 0)
			return 0;
		if (init)
			return sbx_err_set(
			    err, SBX_E_UNAVAILABLE,
			    "sandbox pod %s: the executor init container failed (%s, "
			    "exit code %ld): check that executor_image holds the bundle "
			    "at executor_image_dir and a cp command",
			    w->name, reason, code);
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "sandbox pod %s: the sandbox container terminated before it was "
				   "ready (%s, exit code %ld)%s%.200s",
				   w->name, reason, code, msg[0] ? ": " : "", msg);
	}
	return 0;
}

/* 1 ready, 0 not yet, <0 failed (err set). */
static int pod_evaluate(struct wait *w, const json_t *pod, sbx_err *err)
{
	const json_t *status = json_object_get(pod, "status"), *c, *cs;
	const char *phase = str(status, "phase") ?: "";
	const char *rv = str(json_object_get(pod, "metadata"), "resourceVersion");
	size_t i;
	int rc;

	if (rv)
		snprintf(w->rv, sizeof w->rv, "%s", rv);
	if (is_terminating(pod))
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "sandbox pod %s was deleted while it was starting", w->name);
	c = condition(pod, "PodScheduled");
	if (c && !strcmp(str(c, "status") ?: "", "False") &&
	    !strcmp(str(c, "reason") ?: "", "Unschedulable"))
		return sbx_err_set(err, SBX_E_LIMIT, "the cluster cannot place sandbox pod %s: %s",
				   w->name, str(c, "message") ?: "Unschedulable");
	json_array_foreach (json_object_get(status, "initContainerStatuses"), i, cs)
		if ((rc = container_failure(w, cs, 1, err)) < 0)
			return rc;
	json_array_foreach (json_object_get(status, "containerStatuses"), i, cs)
		if ((rc = container_failure(w, cs, 0, err)) < 0)
			return rc;
	if (!strcmp(phase, "Failed") || !strcmp(phase, "Succeeded"))
		return sbx_err_set(
		    err, SBX_E_UNAVAILABLE, "sandbox pod %s %s before it was ready%s%s%s%s",
		    w->name, phase, str(status, "reason") ? ": " : "", str(status, "reason") ?: "",
		    str(status, "message") ? ": " : "", str(status, "message") ?: "");
	c = condition(pod, "Ready");
	if (!strcmp(phase, "Running") && str(status, "podIP") && c &&
	    !strcmp(str(c, "status") ?: "", "True")) {
		snprintf(w->pod_ip, sizeof w->pod_ip, "%s", str(status, "podIP"));
		snprintf(w->k8s_node, sizeof w->k8s_node, "%s",
			 str(json_object_get(pod, "spec"), "nodeName") ?: "");
		return 1;
	}
	return 0;
}

static int on_event(void *ctx, const json_t *ev, sbx_err *err)
{
	struct wait *w = ctx;
	const char *type = str(ev, "type") ?: "";
	const json_t *pod = json_object_get(ev, "object");

	if (!strcmp(type, "BOOKMARK")) {
		const char *rv = str(json_object_get(pod, "metadata"), "resourceVersion");
		if (rv)
			snprintf(w->rv, sizeof w->rv, "%s", rv);
		return 0;
	}
	if (!strcmp(type, "DELETED"))
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "sandbox pod %s was deleted while it was starting", w->name);
	return pod_evaluate(w, pod, err);
}

static int get_pod(struct k8s *k, const char *name, long *status, json_t **pod, sbx_err *err)
{
	char path[512];

	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", k->namespace, name);
	return api_call(k, "GET", path, NULL, NULL, status, pod, err);
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Watch the pod until it is ready; re-list (GET) when the watch is gone or ends. */
static int wait_ready(struct wait *w, int64_t deadline, sbx_err *err)
{
	struct k8s *k = w->k;
	char path[1024], fs[200];
	int gone, rc, relist = 0;

	for (;;) {
		int64_t left = deadline - k->core->monotonic_ms();
		if (left <= 0)
			return sbx_err_set(err, SBX_E_TIMEOUT,
					   "sandbox pod %s was not ready within %u ms", w->name,
					   k->create_timeout_ms);
		if (relist) {
			long status;
			json_t *pod = NULL;
			if ((rc = get_pod(k, w->name, &status, &pod, err)) < 0)
				return rc;
			if (status != 200) {
				rc = api_error(k, status, pod, "get the sandbox pod", err);
				json_decref(pod);
				return rc;
			}
			rc = pod_evaluate(w, pod, err);
			json_decref(pod);
			if (rc != 0)
				return rc;
		}
		snprintf(fs, sizeof fs, "metadata.name%%3D%s", w->name);
		snprintf(path, sizeof path,
			 "/api/v1/namespaces/%s/pods?watch=1&fieldSelector=%s&resourceVersion=%s"
			 "&allowWatchBookmarks=true&timeoutSeconds=%ld",
			 k->namespace, fs, w->rv, left / 1000 + 1);
		rc = api_watch(k, path, left + 1000, on_event, w, &gone, err);
		if (rc == 1)
			return 1;
		if (rc < 0 && !gone)
			return rc;
		if (gone)
			k->core->log(k->name, SBX_LOG_INFO,
				     "event=watch_expired pod=%s rv=%s (re-listing)", w->name,
				     w->rv);
		else
			nap_ms(
			    50); /* the server ended the stream: do not spin if it keeps doing so */
		relist = 1;
	}
}

static int executor_wait(struct k8s *k, const char *url, const char *token, int64_t deadline,
			 sbx_err *err)
{
	long status;
	int rc;

	for (;;) {
		rc = api_executor_health(k, url, token, &status, err);
		if (rc == 0)
			return 0;
		if (status == 401)
			return sbx_err_set(err, SBX_E_UNAVAILABLE,
					   "the executor at %s refused the session token (401): "
					   "the token Secret did not reach it",
					   url);
		if (k->core->monotonic_ms() > deadline)
			return rc == -SBX_E_UNAVAILABLE
				   ? sbx_err_set(
					 err, SBX_E_TIMEOUT,
					 "the sandbox's executor did not answer in time: %s",
					 err->message)
				   : rc;
		nap_ms(100);
	}
}

static int delete_obj(struct k8s *k, const char *kind, const char *name, unsigned grace,
		      sbx_err *err)
{
	char path[512], what[128];
	long status;
	json_t *resp = NULL;
	int rc;

	snprintf(path, sizeof path, "/api/v1/namespaces/%s/%s/%s?gracePeriodSeconds=%u",
		 k->namespace, kind, name, grace);
	if ((rc = api_call(k, "DELETE", path, NULL, NULL, &status, &resp, err)) < 0)
		return rc;
	if (status == 200 || status == 202 || status == 404)
		rc = 0;
	else {
		snprintf(what, sizeof what, "delete %s %s", kind, name);
		rc = api_error(k, status, resp, what, err);
	}
	json_decref(resp);
	return rc;
}

static int post_obj(struct k8s *k, const char *kind, const json_t *obj, json_t **created,
		    sbx_err *err)
{
	char path[512], what[128];
	long status;
	json_t *resp = NULL;
	int rc;

	snprintf(path, sizeof path, "/api/v1/namespaces/%s/%s?fieldValidation=Strict", k->namespace,
		 kind);
	if ((rc = api_call(k, "POST", path, NULL, obj, &status, &resp, err)) < 0)
		return rc;
	if (status == 201 || status == 200) {
		*created = resp;
		return 0;
	}
	snprintf(what, sizeof what, "create %s %s", kind,
		 str(json_object_get(obj, "metadata"), "name") ?: "?");
	rc = api_error(k, status, resp, what, err);
	json_decref(resp);
	return rc;
}

/* The Secret is owned by the pod, so the cluster's garbage collector removes it too. */
static void own_secret(struct k8s *k, const char *secret, const char *pod, const char *uid)
{
	char path[512];
	long status = 0;
	json_t *patch, *resp = NULL;
	sbx_err err = {0};

	patch = json_pack("{s:{s:[{s:s, s:s, s:s, s:s, s:b}]}}", "metadata", "ownerReferences",
			  "apiVersion", "v1", "kind", "Pod", "name", pod, "uid", uid,
			  "blockOwnerDeletion", 0);
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s?fieldValidation=Strict",
		 k->namespace, secret);
	if (!patch ||
	    api_call(k, "PATCH", path, "application/merge-patch+json", patch, &status, &resp,
		     &err) < 0 ||
	    status != 200)
		k->core->log(k->name, SBX_LOG_WARN,
			     "event=secret_owner_failed secret=%s status=%ld %s (sbxd deletes it "
			     "with the sandbox)",
			     secret, status, err.message);
	json_decref(patch);
	json_decref(resp);
}

static json_t *make_labels(struct k8s *k, const json_t *spec, const char *name)
{
	char session[K8S_LABEL_MAX + 1], tmpl[K8S_LABEL_MAX + 1], owner[K8S_LABEL_MAX + 1];
	const char *pool_owner = str(spec, "pool_owner");
	json_t *l;

	label_value(str(spec, "session_id"), session, sizeof session);
	label_value(str(spec, "template_id"), tmpl, sizeof tmpl);
	l = json_pack("{s:s, s:s, s:s, s:s, s:s}", K8S_MANAGED_BY, "sbxd", K8S_L_INSTANCE,
		      k->inst_label, K8S_L_SESSION, session, K8S_L_TEMPLATE, tmpl, K8S_L_SANDBOX,
		      name);
	if (l && pool_owner) {
		label_value(pool_owner, owner, sizeof owner);
		json_object_set_new(l, K8S_L_POOL_OWNER, json_string(owner));
	}
	return l;
}

/* <prefix>-<session, lowercased, up to 30>-<10 random hex>: a DNS-1123 label. */
static int make_name(struct k8s *k, const char *session, char *out, size_t cap, sbx_err *err)
{
	unsigned char rnd[5];
	char part[31];
	size_t n = 0;

	if (k->core->random_bytes(rnd, sizeof rnd) < 0)
		return sbx_err_set(err, SBX_E_INTERNAL, "random_bytes failed");
	for (; session && *session && n < sizeof part - 1; session++) {
		unsigned char ch = (unsigned char)tolower((unsigned char)*session);
		if (isalnum(ch) && ch < 128)
			part[n++] = (char)ch;
		else if (n && part[n - 1] != '-')
			part[n++] = '-';
	}
	while (n && part[n - 1] == '-')
		n--;
	part[n] = '\0';
	snprintf(out, cap, "%s-%s%s%02x%02x%02x%02x%02x", k->pod_name_prefix, part, n ? "-" : "",
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4]);
	return 0;
}

static void fmt_url(char *out, size_t cap, const char *ip, unsigned port)
{
	snprintf(out, cap, strchr(ip, ':') ? "http://[%s]:%u" : "http://%s:%u", ip, port);
}

static int count_active(struct k8s *k, long *n, double *cpu, long *mem, sbx_err *err)
{
	json_t *items = NULL, *pod;
	size_t i;
	int rc;

	*n = 0;
	*cpu = 0;
	*mem = 0;
	if ((rc = list_pods(k, &items, err)) < 0)
		return rc;
	json_array_foreach (items, i, pod) {
		const json_t *ann =
		    json_object_get(json_object_get(pod, "metadata"), "annotations");
		const char *phase = str(json_object_get(pod, "status"), "phase") ?: "";
		if (is_terminating(pod) || !strcmp(phase, "Failed") || !strcmp(phase, "Succeeded"))
			continue;
		(*n)++;
		*cpu += atof(str(ann, "sbxd.io/cpu") ?: "0");
		*mem += atol(str(ann, "sbxd.io/memory-mb") ?: "0");
	}
	json_decref(items);
	return 0;
}

static int k8s_sandbox_create(void *inst, const json_t *spec, json_t **handle, sbx_err *err)
{
	struct k8s *k = inst;
	const char *session = str(spec, "session_id");
	const char *image = str(spec, "image");
	const json_t *res = json_object_get(spec, "resources");
	double cpu = num(res, "cpu", 1.0);
	long mem = (long)num(res, "memory_mb", 512), disk = (long)num(res, "disk_mb", 1024);
	long procs = (long)num(res, "max_processes", 128), active;
	char name[80], secret[96], token[80], url[128], buf[32];
	json_t *labels = NULL, *obj = NULL, *created = NULL, *h = NULL, *ann;
	struct wait w = {.k = k, .image = image};
	int64_t deadline = k->core->monotonic_ms() + k->create_timeout_ms;
	int rc, have_secret = 0, have_pod = 0;
	double used_cpu;
	long used_mem;

	if (!image || !image[0])
		return sbx_err_set(err, SBX_E_INVALID,
				   "kubernetes runtime: the template has no image");
	if (!(cpu > 0 && cpu <= 1024) || mem < 16 || disk < 1 || procs < 1)
		return sbx_err_set(
		    err, SBX_E_INVALID,
		    "resources out of range (cpu > 0, memory_mb >= 16, disk_mb >= 1)");
	if (str(spec, "executor_token")) {
		const char *t = str(spec, "executor_token");
		if (strlen(t) < 16 || strlen(t) >= sizeof token ||
		    strspn(t, "0123456789abcdef") != strlen(t))
			return sbx_err_set(err, SBX_E_INVALID,
					   "executor_token must be 16..64 lowercase hex digits");
		snprintf(token, sizeof token, "%s", t);
	} else {
		unsigned char rnd[32];
		if (k->core->random_bytes(rnd, sizeof rnd) < 0)
			return sbx_err_set(err, SBX_E_INTERNAL, "random_bytes failed");
		for (size_t i = 0; i < sizeof rnd; i++)
			snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	}
	if ((rc = count_active(k, &active, &used_cpu, &used_mem, err)) < 0)
		return rc;
	if (active >= (long)k->max_sessions)
		return sbx_err_set(err, SBX_E_LIMIT,
				   "kubernetes runtime '%s': all %u sessions in use", k->name,
				   k->max_sessions);
	if ((rc = make_name(k, session, name, sizeof name, err)) < 0)
		return rc;
	snprintf(secret, sizeof secret, "%s-token", name);
	w.name = name;
	if (!(labels = make_labels(k, spec, name))) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}

	if (!(obj = build_secret(k, secret, token, labels))) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}
	rc = post_obj(k, "secrets", obj, &created, err);
	json_decref(obj);
	obj = NULL;
	if (rc < 0)
		goto fail;
	have_secret = 1;
	json_decref(created);
	created = NULL;

	if (!(obj = build_pod(k, name, secret, spec, labels, session))) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}
	ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
	snprintf(buf, sizeof buf, "%g", cpu);
	json_object_set_new(ann, "sbxd.io/cpu", json_string(buf));
	snprintf(buf, sizeof buf, "%ld", mem);
	json_object_set_new(ann, "sbxd.io/memory-mb", json_string(buf));
	if (str(spec, "pool_owner")) /* state sync keeps warm sandboxes of live replicas */
		json_object_set(ann, K8S_A_POOL_OWNER, json_object_get(spec, "pool_owner"));
	rc = post_obj(k, "pods", obj, &created, err);
	json_decref(obj);
	obj = NULL;
	if (rc < 0)
		goto fail;
	have_pod = 1;
	snprintf(w.rv, sizeof w.rv, "%s",
		 str(json_object_get(created, "metadata"), "resourceVersion") ?: "0");
	own_secret(k, secret, name, str(json_object_get(created, "metadata"), "uid") ?: "");
	rc = pod_evaluate(&w, created, err);
	if (rc == 0)
		rc = wait_ready(&w, deadline, err);
	if (rc < 0)
		goto fail;
	fmt_url(url, sizeof url, w.pod_ip, k->executor_port);
	if ((rc = executor_wait(k, url, token, deadline, err)) < 0)
		goto fail;

	h = json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s, s:s, s:s?, s:{s:s, s:s}, s:s, "
		      "s:{s:f, s:I, s:I, s:I}}",
		      "sandbox_id", name, "session_id", session, "node", k->node, "pod_name", name,
		      "namespace", k->namespace, "secret_name", secret, "pod_uid",
		      str(json_object_get(created, "metadata"), "uid") ?: "", "k8s_node",
		      w.k8s_node[0] ? w.k8s_node : NULL, "executor", "url", url, "token", token,
		      "image", image, "resources", "cpu", cpu, "memory_mb", (json_int_t)mem,
		      "disk_mb", (json_int_t)disk, "max_processes", (json_int_t)procs);
	if (h && str(spec, "pool_owner"))
		json_object_set(h, "pool_owner", json_object_get(spec, "pool_owner"));
	if (!h) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}
	k->core->log(k->name, SBX_LOG_INFO,
		     "event=sandbox_created sandbox=%s session=%s pod_ip=%s node=%s", name,
		     session ? session : "-", w.pod_ip, w.k8s_node[0] ? w.k8s_node : "-");
	json_decref(created);
	json_decref(labels);
	explicit_bzero(token, sizeof token);
	*handle = h;
	return 0;
fail : {
	sbx_err e2 = {0};
	if (have_pod && delete_obj(k, "pods", name, 0, &e2) < 0)
		k->core->log(k->name, SBX_LOG_WARN, "event=cleanup_failed pod=%s %s", name,
			     e2.message);
	if (have_secret && delete_obj(k, "secrets", secret, 0, &e2) < 0)
		k->core->log(k->name, SBX_LOG_WARN, "event=cleanup_failed secret=%s %s", secret,
			     e2.message);
}
	explicit_bzero(token, sizeof token);
	json_decref(created);
	json_decref(labels);
	json_decref(obj);
	return rc;
}

/* ---- destroy, status, list --------------------------------------------------- */

static int handle_pod(const struct k8s *k, const json_t *handle, const char **name, sbx_err *err)
{
	const char *ns = str(handle, "namespace");

	*name = str(handle, "pod_name");
	if (!pod_name_ok(*name))
		return sbx_err_set(err, SBX_E_INVALID, "not a kubernetes runtime handle");
	if (ns && strcmp(ns, k->namespace))
		return sbx_err_set(err, SBX_E_INVALID,
				   "sandbox %s lives in namespace '%s', this instance manages '%s'",
				   *name, ns, k->namespace);
	return 0;
}

static int k8s_sandbox_destroy(void *inst, const json_t *handle, sbx_err *err)
{
	struct k8s *k = inst;
	const char *name;
	char secret[96];
	int rc;

	if ((rc = handle_pod(k, handle, &name, err)) < 0)
		return rc;
	snprintf(secret, sizeof secret, "%s-token", name);
	if ((rc = delete_obj(k, "pods", name, k->delete_grace_s, err)) < 0 ||
	    (rc = delete_obj(k, "secrets", secret, 0, err)) < 0)
		return rc;
	k->core->log(k->name, SBX_LOG_INFO, "event=sandbox_destroyed sandbox=%s", name);
	return 0;
}

static int k8s_sandbox_status(void *inst, const json_t *handle, json_t **out, sbx_err *err)
{
	struct k8s *k = inst;
	const char *name, *phase, *state = "running";
	const json_t *status, *cs;
	char reason[400] = "";
	long code;
	json_t *pod = NULL;
	int rc, oom = 0;
	size_t i;

	if ((rc = handle_pod(k, handle, &name, err)) < 0)
		return rc;
	if ((rc = get_pod(k, name, &code, &pod, err)) < 0)
		return rc;
	if (code == 404) {
		json_decref(pod);
		*out = json_pack("{s:s, s:s}", "state", "missing", "reason",
				 "the sandbox pod no longer exists (deleted)");
		return *out ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	if (code != 200) {
		rc = api_error(k, code, pod, "get the sandbox pod", err);
		json_decref(pod);
		return rc;
	}
	status = json_object_get(pod, "status");
	phase = str(status, "phase") ?: "Unknown";
	json_array_foreach (json_object_get(status, "containerStatuses"), i, cs) {
		const json_t *term = json_object_get(json_object_get(cs, "state"), "terminated");
		if (!term)
			continue;
		state = "exited";
		oom |= !strcmp(str(term, "reason") ?: "", "OOMKilled");
		snprintf(reason, sizeof reason, "container %s terminated: %s (exit code %lld)",
			 str(cs, "name") ?: "?", str(term, "reason") ?: "Error",
			 (long long)json_integer_value(json_object_get(term, "exitCode")));
	}
	if (!strcmp(phase, "Failed") || !strcmp(phase, "Succeeded")) {
		state = "exited";
		if (str(status, "reason")) /* Evicted, DeadlineExceeded, ... */
			snprintf(reason, sizeof reason, "pod %s: %s: %.300s", phase,
				 str(status, "reason"), str(status, "message") ?: "");
		else if (!reason[0])
			snprintf(reason, sizeof reason, "pod %s", phase);
	} else if (is_terminating(pod)) {
		state = "exited";
		snprintf(reason, sizeof reason, "the sandbox pod is being deleted");
	} else if (!strcmp(phase, "Unknown") && !reason[0]) {
		snprintf(reason, sizeof reason, "pod phase Unknown (its node is unreachable)");
	}
	json_decref(pod);
	*out = json_pack("{s:s, s:s?}", "state", state, "reason", reason[0] ? reason : NULL);
	if (*out && oom)
		json_object_set_new(*out, "oom_killed", json_true());
	return *out ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static json_t *handle_of(const struct k8s *k, const json_t *pod)
{
	const json_t *meta = json_object_get(pod, "metadata");
	const json_t *ann = json_object_get(meta, "annotations");
	const char *ip = str(json_object_get(pod, "status"), "podIP");
	const char *session = str(ann, K8S_A_SESSION);
	char url[128] = "";

	if (ip)
		fmt_url(url, sizeof url, ip, k->executor_port);
	return json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s?, s:{s:s?}, s:s?}", "sandbox_id",
			 str(meta, "name"), "session_id", session && session[0] ? session : NULL,
			 "node", k->node, "pod_name", str(meta, "name"), "namespace", k->namespace,
			 "pod_uid", str(meta, "uid"), "executor", "url", url[0] ? url : NULL,
			 "pool_owner", str(ann, K8S_A_POOL_OWNER));
}

static int k8s_sandbox_list(void *inst, json_t **handles, sbx_err *err)
{
	struct k8s *k = inst;
	json_t *items = NULL, *pod, *arr = json_array();
	size_t i;
	int rc;

	if (!arr)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if ((rc = list_pods(k, &items, err)) < 0) {
		json_decref(arr);
		return rc;
	}
	json_array_foreach (items, i, pod) {
		const char *name = str(json_object_get(pod, "metadata"), "name");
		json_t *h;
		if (!pod_name_ok(name) || !(h = handle_of(k, pod)))
			continue;
		json_array_append_new(arr, h);
	}
	json_decref(items);
	*handles = arr;
	return 0;
}

/* ---- nodes, health ------------------------------------------------------------ */

static int k8s_health(void *inst, json_t **detail, sbx_err *err)
{
	struct k8s *k = inst;
	long status;
	json_t *resp = NULL, *d, *items = NULL;
	int rc;

	d = json_pack("{s:s, s:s}", "server", k->server, "namespace", k->namespace);
	if (!d)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	rc = api_call(k, "GET", "/version", NULL, NULL, &status, &resp, err);
	if (rc == 0 && status != 200)
		rc = api_error(k, status, resp, "GET /version", err);
	if (rc == 0)
		json_object_set_new(d, "version",
				    json_string(str(resp, "gitVersion") ?: "unknown"));
	json_decref(resp);
	/* Our RBAC, not only reachability: listing our pods must be allowed. */
	if (rc == 0 && (rc = list_pods(k, &items, err)) == 0)
		json_object_set_new(d, "sandboxes",
				    json_integer((json_int_t)json_array_size(items)));
	json_decref(items);
	json_object_set_new(d, "healthy", json_boolean(rc == 0));
	if (rc < 0)
		json_object_set_new(d, "error", json_string(err->message));
	*detail = d;
	return rc;
}

static int k8s_nodes(void *inst, json_t **nodes, sbx_err *err)
{
	struct k8s *k = inst;
	sbx_err e2 = {0};
	long n = 0, mem = 0;
	double cpu = 0;
	int healthy = count_active(k, &n, &cpu, &mem, &e2) == 0;

	*nodes = json_pack("[{s:s, s:b, s:{s:f, s:I, s:I}, s:{s:f, s:I, s:I}, s:[], s:[]}]", "id",
			   k->node, "healthy", healthy, "capacity", "cpu", k->capacity_cpu,
			   "memory_mb", (json_int_t)k->capacity_memory_mb, "max_sessions",
			   (json_int_t)k->max_sessions, "allocated", "cpu", cpu, "memory_mb",
			   (json_int_t)mem, "sessions", (json_int_t)n, "templates_warm",
			   "images_cached");
	return *nodes ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static const struct sbx_runtime_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_RUNTIME, struct sbx_runtime_plugin, "kubernetes", "0.1.0",
			     "sandboxes as pods through the Kubernetes API"),
    .life = {.create = k8s_create, .destroy = k8s_destroy},
    .sandbox_create = k8s_sandbox_create,
    .sandbox_destroy = k8s_sandbox_destroy,
    .sandbox_status = k8s_sandbox_status,
    .sandbox_list = k8s_sandbox_list,
    .nodes = k8s_nodes,
    .health = k8s_health,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);
SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
