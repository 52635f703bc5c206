/*
 * The `docker` runtime module: descriptor, instance lifecycle and the runtime methods
 * (create, destroy, status, list, nodes, health). A sandbox is one container of the
 * template's image, running the executor bundle (bind-mounted read-only) as its entry
 * point, with the executor's Unix socket in a bind-mounted host directory.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "plugins/runtime/common/execready.h"
#include "docker.h"

#ifndef SBX_EXECUTOR_DIR
#define SBX_EXECUTOR_DIR "/usr/local/libexec/sbxd/executor"
#endif

#define LBL_MANAGED  DK_LABEL_PREFIX "managed-by"
#define LBL_INSTANCE DK_LABEL_PREFIX "instance"
#define LBL_SESSION  DK_LABEL_PREFIX "session"
#define LBL_TEMPLATE DK_LABEL_PREFIX "template"
#define LBL_SANDBOX  DK_LABEL_PREFIX "sandbox"
#define LBL_POOL     DK_LABEL_PREFIX "pool-owner"
#define LBL_NODE     DK_LABEL_PREFIX "node"
#define LBL_CPU      DK_LABEL_PREFIX "cpu"
#define LBL_MEM      DK_LABEL_PREFIX "memory-mb"
#define LBL_DISK     DK_LABEL_PREFIX "disk-mb"
#define LBL_PROCS    DK_LABEL_PREFIX "max-processes"

#define PATH_OK_MAX 512

/* Sandbox ids are ours ("dk-" + 32 hex) before they are used in a path or a URL. */
static int valid_id(const char *id)
{
	size_t i;

	if (!id || strncmp(id, "dk-", 3) || strlen(id) != DK_ID_LEN)
		return 0;
	for (i = 3; id[i]; i++)
		if (!strchr("0123456789abcdef", id[i]))
			return 0;
	return 1;
}

/* Container ids as the engine reports them (64 hex). */
static int valid_cid(const char *id)
{
	size_t i, n = id ? strlen(id) : 0;

	if (n < 12 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", id[i]))
			return 0;
	return 1;
}

static char *url_encode(const char *src)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(src);
	char *out = malloc(3 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

static int rm_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void sock_dir_of(const struct dk *dk, const char *id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", dk->sockets_dir, id);
}

static void dk_free(struct dk *dk)
{
	if (!dk)
		return;
	free(dk->name);
	free(dk->host);
	free(dk->tls_ca);
	free(dk->tls_cert);
	free(dk->tls_key);
	free(dk->node);
	free(dk->executor_dir);
	free(dk->sockets_dir);
	free(dk->user);
	free(dk->oci_runtime);
	json_decref(dk->template_runtimes);
	free(dk->seccomp_opt);
	free(dk->sock_path);
	free(dk->base_url);
	pthread_mutex_destroy(&dk->lock);
	free(dk);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char p[PATH_OK_MAX];
	char *s;

	if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
		return errno = ENAMETOOLONG, -1;
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* SecurityOpt "seccomp=<profile>" with the sandbox policy (seccomp = "sbxd"). */
static int seccomp_opt_make(struct dk *dk, sbx_err *err)
{
	char *prof;
	int rc;

	if (!dk->seccomp_sbxd)
		return 0;
	if ((rc = dk_seccomp_profile(&prof, err)) < 0)
		return rc;
	dk->seccomp_opt = malloc(strlen(prof) + sizeof "seccomp=");
	if (dk->seccomp_opt)
		sprintf(dk->seccomp_opt, "seccomp=%s", prof);
	free(prof);
	return dk->seccomp_opt ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static int dk_create(const struct sbx_core_api *core, const char *instance_name,
		     const json_t *config, void **inst, sbx_err *err)
{
	struct dk *dk = calloc(1, sizeof *dk);
	struct sockaddr_un sa;
	sbx_err nerr;
	int rc;

	if (!dk)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	pthread_mutex_init(&dk->lock, NULL);
	dk->core = core;
	if (!(dk->name = strdup(instance_name ? instance_name : "docker"))) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}
	if ((rc = dk_config_parse(dk, config, err)) < 0)
		goto fail;
	if (!dk->node)
		dk->node = strdup(dk->name);
	if (!dk->executor_dir)
		dk->executor_dir = strdup(SBX_EXECUTOR_DIR);
	if (!dk->sockets_dir) {
		char *base = rt_path_join(core->data_dir(), "docker");
		dk->sockets_dir = base ? rt_path_join(base, dk->name) : NULL;
		free(base);
	}
	if (!dk->node || !dk->executor_dir || !dk->sockets_dir) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}
	if ((rc = seccomp_opt_make(dk, err)) < 0)
		goto fail;
	if (dk->init)
		core->log(dk->name, SBX_LOG_WARN,
			  "event=docker_init_pid1: init = true makes docker-init PID 1 and the "
			  "executor an ordinary process: a handler (same uid) can signal it; "
			  "leave init = false (the executor is the container's init)");
	if (!dk->seccomp_sbxd)
		core->log(dk->name, SBX_LOG_WARN,
			  "event=docker_seccomp_default: seccomp = \"default\": the engine's "
			  "profile allows ptrace and (Docker < 25) io_uring, which the sandbox "
			  "policy denies");
	/* <sockets_dir>/<id>/executor.sock must fit in sun_path. */
	if (strlen(dk->sockets_dir) + 1 + DK_ID_LEN + 1 + strlen(DK_SOCKET_NAME) >=
	    sizeof sa.sun_path) {
		rc = sbx_err_set(err, SBX_E_INVALID,
				 "docker runtime: sockets_dir '%s' is too long for Unix socket "
				 "paths (at most %zu bytes)",
				 dk->sockets_dir,
				 sizeof sa.sun_path - 3 - DK_ID_LEN - strlen(DK_SOCKET_NAME));
		goto fail;
	}
	/* Root-only: the sockets inside belong to the sandbox user, which may exist on the
	 * host too (65534 is "nobody"); nobody but sbxd may reach them. */
	if (mkdir_p(dk->sockets_dir, 0700) < 0 || chmod(dk->sockets_dir, 0700) < 0) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "docker runtime: sockets_dir %s: %s",
				 dk->sockets_dir, strerror(errno));
		goto fail;
	}
	/* The engine may be down now and come up later; an engine that is too old, or that
	 * refuses us, is a configuration error. */
	if ((rc = dk_negotiate(dk, &nerr)) < 0) {
		if (-rc == SBX_E_INVALID) {
			*err = nerr;
			goto fail;
		}
		core->log(dk->name, SBX_LOG_WARN,
			  "event=docker_unreachable host=%s: %s (retried on first use)", dk->host,
			  nerr.message);
	}
	*inst = dk;
	return 0;
fail:
	dk_free(dk);
	return rc;
}

static void dk_destroy(void *inst)
{
	dk_free(inst);
}

/* ---- helpers around the engine ------------------------------------------------------ */

static double num(const json_t *o, const char *k, double def)
{
	const json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : def;
}

static const char *label(const json_t *labels, const char *k)
{
	return json_string_value(json_object_get(labels, k));
}

/* Our containers carry both labels; anything else is not ours to touch. */
static int labels_ours(const struct dk *dk, const json_t *labels)
{
	const char *m = label(labels, LBL_MANAGED), *i = label(labels, LBL_INSTANCE);
	return m && i && !strcmp(m, "sbxd") && !strcmp(i, dk->name);
}

/* GET /containers/<ref>/json: 0 with *info, 1 when the engine has no such container. */
static int inspect(struct dk *dk, const char *ref, json_t **info, sbx_err *err)
{
	char path[128];
	long status;
	int rc;

	*info = NULL;
	snprintf(path, sizeof path, "/containers/%s/json", ref);
	if ((rc = dk_call(dk, "GET", path, 1, NULL, dk->create_timeout_ms, &status, info, err)) < 0)
		return rc;
	if (status == 404) {
		json_decref(*info);
		*info = NULL;
		return 1;
	}
	if (status != 200) {
		rc = dk_fail(dk, "inspect container", status, *info, err);
		json_decref(*info);
		*info = NULL;
		return rc;
	}
	return 0;
}

/* The last line the container printed (the executor's stderr), for error messages. */
static void log_tail(struct dk *dk, const char *cid, char *out, size_t cap)
{
	char path[160];
	json_t *r = NULL;
	long status;
	sbx_err e;
	const unsigned char *p, *end;
	size_t n, len;
	char buf[512];

	out[0] = '\0';
	snprintf(path, sizeof path, "/containers/%s/logs?stdout=1&stderr=1&tail=5", cid);
	if (dk_call(dk, "GET", path, 1, NULL, 5000, &status, &r, &e) < 0 || status != 200 ||
	    !json_is_string(r)) {
		json_decref(r);
		return;
	}
	/* Without a TTY the stream is framed: [stream, 0, 0, 0, size (big endian)] data. */
	p = (const unsigned char *)json_string_value(r);
	end = p + json_string_length(r);
	len = 0;
	while (end - p >= 8) {
		n = (size_t)p[4] << 24 | (size_t)p[5] << 16 | (size_t)p[6] << 8 | p[7];
		p += 8;
		if (n > (size_t)(end - p))
			n = (size_t)(end - p);
		for (size_t i = 0; i < n; i++) {
			if (p[i] == '\n') {
				if (i + 1 < n || p + n < end)
					len = 0; /* a new line starts: keep only the last one */
				continue;
			}
			if (len < sizeof buf - 1 && p[i] >= 0x20)
				buf[len++] = (char)p[i];
		}
		p += n;
	}
	if (len >= cap) /* keep the end of the line: that is where the error is */
		memmove(buf, buf + len - (cap - 1), cap - 1), len = cap - 1;
	memcpy(out, buf, len);
	out[len] = '\0';
	json_decref(r);
}

/* Why a container is not running, from its inspect record. */
static void exit_reason(const json_t *info, char *out, size_t cap)
{
	const json_t *st = json_object_get(info, "State");
	const json_t *hc = json_object_get(info, "HostConfig");
	const char *status = json_string_value(json_object_get(st, "Status"));
	const char *error = json_string_value(json_object_get(st, "Error"));
	json_int_t code = json_integer_value(json_object_get(st, "ExitCode"));
	json_int_t mem = json_integer_value(json_object_get(hc, "Memory"));

	if (json_is_true(json_object_get(st, "OOMKilled")))
		snprintf(out, cap, "killed: out of memory (limit %lld MiB)",
			 (long long)(mem / (1024 * 1024)));
	else if (status && !strcmp(status, "created"))
		snprintf(out, cap, "the container was never started");
	else if (error && error[0])
		snprintf(out, cap, "exited with code %lld: %.200s", (long long)code, error);
	else if (code == 137)
		snprintf(out, cap, "exited with code 137 (killed by SIGKILL)");
	else
		snprintf(out, cap, "exited with code %lld", (long long)code);
}

/* Wait (bounded) until the executor answers /health on its socket, noticing early when
 * the container stopped instead. */
static int ready_wait(struct dk *dk, const char *cid, const char *sock, sbx_err *err)
{
	int64_t start = dk->core->monotonic_ms(), next_check = start + 50;
	int64_t deadline = start + dk->ready_timeout_ms;
	long nap_us = 200;
	char tail[256], reason[300];
	json_t *info;
	int rc;

	for (;;) {
		if (rt_socket_listening(sock) == 0)
			return rt_executor_health(dk->core, sock, err);
		if (dk->core->monotonic_ms() >= next_check) {
			next_check = dk->core->monotonic_ms() + 100;
			if ((rc = inspect(dk, cid, &info, err)) < 0)
				return rc;
			if (rc == 1)
				return sbx_err_set(err, SBX_E_UNAVAILABLE,
						   "docker runtime '%s': the container was removed "
						   "before its executor was ready",
						   dk->name);
			if (!json_is_true(
				json_object_get(json_object_get(info, "State"), "Running"))) {
				exit_reason(info, reason, sizeof reason);
				json_decref(info);
				log_tail(dk, cid, tail, sizeof tail);
				return sbx_err_set(
				    err, SBX_E_UNAVAILABLE,
				    "docker runtime '%s': the container stopped before "
				    "its executor was ready: %s%s%s",
				    dk->name, reason, tail[0] ? "; last output: " : "", tail);
			}
			json_decref(info);
		}
		if (dk->core->monotonic_ms() > deadline) {
			log_tail(dk, cid, tail, sizeof tail);
			return sbx_err_set(err, SBX_E_TIMEOUT,
					   "docker runtime '%s': the executor did not listen on %s "
					   "within %ld ms%s%s",
					   dk->name, sock, dk->ready_timeout_ms,
					   tail[0] ? "; last output: " : "", tail);
		}
		{
			struct timespec ts = {0, nap_us * 1000};
			nanosleep(&ts, NULL);
		}
		if (nap_us < 2000)
			nap_us *= 2;
	}
}

/* The managed containers of this instance (all states): the engine's array. */
static int list_containers(struct dk *dk, json_t **out, sbx_err *err)
{
	char filt[512], path[1200], *enc;
	json_t *r = NULL;
	long status;
	int rc;

	snprintf(filt, sizeof filt, "{\"label\":[\"%s=sbxd\",\"%s=%s\"]}", LBL_MANAGED,
		 LBL_INSTANCE, dk->name);
	if (!(enc = url_encode(filt)))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	snprintf(path, sizeof path, "/containers/json?all=1&filters=%s", enc);
	free(enc);
	if ((rc = dk_negotiate(dk, err)) < 0 ||
	    (rc = dk_call(dk, "GET", path, 1, NULL, dk->create_timeout_ms, &status, &r, err)) < 0)
		return rc;
	if (status != 200 || !json_is_array(r)) {
		rc = dk_fail(dk, "list containers", status, r, err);
		json_decref(r);
		return rc;
	}
	*out = r;
	return 0;
}

static json_t *handle_new(const struct dk *dk, const char *id, const char *cid,
			  const json_t *labels, const char *image)
{
	char dir[PATH_OK_MAX], sock[PATH_OK_MAX + 32];
	const char *session = label(labels, LBL_SESSION), *pool = label(labels, LBL_POOL);
	json_t *h;

	sock_dir_of(dk, id, dir, sizeof dir);
	snprintf(sock, sizeof sock, "%s/%s", dir, DK_SOCKET_NAME);
	h = json_pack("{s:s, s:s?, s:s, s:s, s:s?, s:s?, s:s, s:{s:s, s:s}, s:{s:f, s:I, s:I, "
		      "s:I}}",
		      "sandbox_id", id, "session_id", session && session[0] ? session : NULL,
		      "node", dk->node, "container_id", cid, "template_id",
		      label(labels, LBL_TEMPLATE), "image", image, "socket_dir", dir, "executor",
		      "unix_socket", sock, "url", "http://sandbox", "resources", "cpu",
		      atof(label(labels, LBL_CPU) ?: "0"), "memory_mb",
		      (json_int_t)atoll(label(labels, LBL_MEM) ?: "0"), "disk_mb",
		      (json_int_t)atoll(label(labels, LBL_DISK) ?: "0"), "max_processes",
		      (json_int_t)atoll(label(labels, LBL_PROCS) ?: "0"));
	if (h && pool && pool[0])
		json_object_set_new(h, "pool_owner", json_string(pool));
	return h;
}

/* ---- create ------------------------------------------------------------------------- */

static int wants_python(const json_t *spec, const char *image)
{
	const char *rt = json_string_value(json_object_get(spec, "runtime_type"));

	return (rt && !strncmp(rt, "python", 6)) || (image && strstr(image, "python"));
}

static int str_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (!s || n > max)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* The container's whole configuration (POST /containers/create body). */
static json_t *container_config(struct dk *dk, const json_t *spec, const char *id,
				const char *sock_dir, double cpu, long mem, long disk, long procs)
{
	const char *image = json_string_value(json_object_get(spec, "image"));
	const char *session = json_string_value(json_object_get(spec, "session_id"));
	const char *tmpl = json_string_value(json_object_get(spec, "template_id"));
	const char *pool = json_string_value(json_object_get(spec, "pool_owner"));
	const char *oci =
	    tmpl ? json_string_value(json_object_get(dk->template_runtimes, tmpl)) : NULL;
	char tmp_opts[128], ws_opts[160], cpu_s[32], mem_s[24], disk_s[24], procs_s[24], log_s[24];
	json_t *cfg, *hc, *labels, *entry;

	if (!oci)
		oci = dk->oci_runtime;
	snprintf(tmp_opts, sizeof tmp_opts, "rw,exec,nosuid,nodev,size=%um,mode=1777",
		 dk->tmp_size_mb);
	snprintf(ws_opts, sizeof ws_opts, "rw,exec,nosuid,nodev,size=%ldm,mode=0700,uid=%u,gid=%u",
		 disk, dk->uid, dk->gid);
	snprintf(cpu_s, sizeof cpu_s, "%g", cpu);
	snprintf(mem_s, sizeof mem_s, "%ld", mem);
	snprintf(disk_s, sizeof disk_s, "%ld", disk);
	snprintf(procs_s, sizeof procs_s, "%ld", procs);
	snprintf(log_s, sizeof log_s, "%uk", dk->log_max_kb);

	entry = json_pack("[s, s, s, s, s, s, s, s, s, s, s, s]",
			  DK_MOUNT_EXE "/lib/ld-linux-x86-64.so.2", "--library-path",
			  DK_MOUNT_EXE "/lib", DK_MOUNT_EXE "/bin/sbx-executor", "--socket",
			  DK_MOUNT_RUN "/" DK_SOCKET_NAME, "--workspace", "/workspace", "--shims",
			  DK_MOUNT_EXE "/shims",
			  /* the core enforces server.max_upload; the workspace's size limit bounds
			   * what the executor can store anyway */
			  "--max-upload", "1099511627776");
	if (entry && wants_python(spec, image)) {
		json_array_append_new(entry, json_string("--preload"));
		json_array_append_new(entry, json_string("python"));
	}
	labels = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", LBL_MANAGED,
			   "sbxd", LBL_INSTANCE, dk->name, LBL_SESSION, session ? session : "",
			   LBL_TEMPLATE, tmpl ? tmpl : "", LBL_SANDBOX, id, LBL_NODE, dk->node,
			   LBL_CPU, cpu_s, LBL_MEM, mem_s, LBL_DISK, disk_s, LBL_PROCS, procs_s);
	if (labels && pool)
		json_object_set_new(labels, LBL_POOL, json_string(pool));
	hc = json_pack(
	    "{s:[{s:s, s:s, s:s, s:b, s:{s:s}}, {s:s, s:s, s:s, s:b, s:{s:s}}],"
	    " s:{s:s, s:s}, s:s, s:[s], s:[s], s:b, s:I, s:I, s:I, s:I, s:b,"
	    " s:[{s:s, s:I, s:I}, {s:s, s:I, s:I}], s:s, s:I, s:{s:s}, s:{s:s, s:{s:s, s:s}},"
	    " s:b, s:b}",
	    "Mounts", "Type", "bind", "Source", dk->executor_dir, "Target", DK_MOUNT_EXE,
	    "ReadOnly", 1, "BindOptions", "Propagation", "rprivate", "Type", "bind", "Source",
	    sock_dir, "Target", DK_MOUNT_RUN, "ReadOnly", 0, "BindOptions", "Propagation",
	    "rprivate", "Tmpfs", "/tmp", tmp_opts, "/workspace", ws_opts, "NetworkMode", "none",
	    "CapDrop", "ALL", "SecurityOpt", "no-new-privileges", "ReadonlyRootfs",
	    dk->readonly_rootfs, "PidsLimit", (json_int_t)procs, "Memory",
	    (json_int_t)mem * 1024 * 1024, "MemorySwap", (json_int_t)mem * 1024 * 1024, "NanoCpus",
	    (json_int_t)(cpu * 1e9 + 0.5), "Init", dk->init, "Ulimits", "Name", "nofile", "Soft",
	    (json_int_t)dk->nofile, "Hard", (json_int_t)dk->nofile, "Name", "core", "Soft",
	    (json_int_t)0, "Hard", (json_int_t)0, "IpcMode", "private", "ShmSize",
	    (json_int_t)64 * 1024 * 1024, "RestartPolicy", "Name", "no", "LogConfig", "Type",
	    "json-file", "Config", "max-size", log_s, "max-file", "1", "Privileged", 0,
	    "AutoRemove", 0);
	if (hc && oci)
		json_object_set_new(hc, "Runtime", json_string(oci));
	/* The sandbox policy instead of the engine's default profile (seccomp.c). */
	if (hc && dk->seccomp_opt &&
	    json_array_append_new(json_object_get(hc, "SecurityOpt"),
				  json_string(dk->seccomp_opt)) < 0) {
		json_decref(hc);
		hc = NULL; /* never a container without it: the create fails (out of memory) */
	}
	cfg = json_pack("{s:s, s:o, s:[], s:[s, s, s], s:s, s:s, s:s, s:b, s:o, s:o}", "Image",
			image, "Entrypoint", entry, "Cmd", "Env",
			"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/workspace", "LANG=C.UTF-8",
			"User", dk->user, "WorkingDir", "/workspace", "Hostname", "sandbox",
			"NetworkDisabled", 1, "Labels", labels, "HostConfig", hc);
	return cfg;
}

/* Make the image present: with `pull`, POST /images/create; otherwise only say how. */
static int ensure_image(struct dk *dk, const char *image, sbx_err *err)
{
	char path[1200], *enc;
	json_t *r = NULL;
	long status;
	int rc;

	if (!(enc = url_encode(image)))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	snprintf(path, sizeof path, "/images/%s/json", enc);
	rc = dk_call(dk, "GET", path, 1, NULL, dk->create_timeout_ms, &status, &r, err);
	json_decref(r);
	r = NULL;
	if (rc < 0 || status == 200) {
		free(enc);
		return rc;
	}
	if (!dk->pull) {
		free(enc);
		return sbx_err_set(err, SBX_E_INVALID,
				   "docker runtime '%s': image '%s' is not present on %s; build it "
				   "(etc/images/build.sh) or load it (docker pull / docker load) "
				   "on that host, or set pull = true",
				   dk->name, image, dk->host);
	}
	snprintf(path, sizeof path, "/images/create?fromImage=%s", enc);
	free(enc);
	dk->core->log(dk->name, SBX_LOG_INFO, "event=docker_pull image=%s", image);
	if ((rc = dk_call(dk, "POST", path, 1, NULL, dk->create_timeout_ms, &status, &r, err)) < 0)
		return rc;
	if (status != 200) {
		rc = status == 404 ? sbx_err_set(err, SBX_E_INVALID,
						 "docker runtime '%s': image '%s' cannot be "
						 "pulled: %.300s",
						 dk->name, image, dk_message(r))
				   : dk_fail(dk, "pull image", status, r, err);
		json_decref(r);
		return rc;
	}
	/* The progress stream reports failures inside a 200: look again. */
	json_decref(r);
	r = NULL;
	if (!(enc = url_encode(image)))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	snprintf(path, sizeof path, "/images/%s/json", enc);
	free(enc);
	rc = dk_call(dk, "GET", path, 1, NULL, dk->create_timeout_ms, &status, &r, err);
	json_decref(r);
	if (rc == 0 && status != 200)
		rc = sbx_err_set(err, SBX_E_INVALID,
				 "docker runtime '%s': pulling image '%s' on %s failed (see the "
				 "engine's log)",
				 dk->name, image, dk->host);
	return rc;
}

static int remove_container(struct dk *dk, const char *ref, sbx_err *err)
{
	char path[160];
	json_t *r = NULL, *info = NULL;
	long status;
	int rc;
	int64_t deadline;

	snprintf(path, sizeof path, "/containers/%s?v=1&force=1", ref);
	if ((rc = dk_call(dk, "DELETE", path, 1, NULL, dk->stop_timeout_ms + 5000, &status, &r,
			  err)) < 0)
		return rc;
	if (status == 204 || status == 200 || status == 404) {
		json_decref(r);
		return 0;
	}
	if (status != 409) {
		rc = dk_fail(dk, "remove container", status, r, err);
		json_decref(r);
		return rc;
	}
	json_decref(r);
	/* 409: a removal is already in progress (another caller); wait for it to finish. */
	deadline = dk->core->monotonic_ms() + dk->stop_timeout_ms;
	while ((rc = inspect(dk, ref, &info, err)) == 0) {
		json_decref(info);
		if (dk->core->monotonic_ms() > deadline)
			return sbx_err_set(err, SBX_E_TIMEOUT,
					   "docker runtime '%s': container %s is still being "
					   "removed after %ld ms",
					   dk->name, ref, dk->stop_timeout_ms);
		usleep(50000);
	}
	return rc < 0 ? rc : 0;
}

static int dk_sandbox_create(void *inst, const json_t *spec, json_t **handle, sbx_err *err)
{
	struct dk *dk = inst;
	const char *image = json_string_value(json_object_get(spec, "image"));
	const char *session = json_string_value(json_object_get(spec, "session_id"));
	const char *tmpl = json_string_value(json_object_get(spec, "template_id"));
	const char *network = json_string_value(json_object_get(spec, "network"));
	const json_t *pool = json_object_get(spec, "pool_owner");
	const json_t *res = json_object_get(spec, "resources");
	double cpu = num(res, "cpu", 1.0);
	long mem = (long)num(res, "memory_mb", 512), disk = (long)num(res, "disk_mb", 1024);
	long procs = (long)num(res, "max_processes", 128);
	unsigned char rnd[16];
	char id[DK_ID_LEN + 1], dir[PATH_OK_MAX], sock[PATH_OK_MAX + 32], path[128], cid[72];
	json_t *cfg = NULL, *r = NULL, *list = NULL, *h = NULL;
	long status;
	int rc, dir_made = 0, counted = 0;
	size_t i;

	cid[0] = '\0';
	if (!image || !str_ok(image, 512) || !image[0])
		return sbx_err_set(err, SBX_E_INVALID, "docker runtime: spec.image is required");
	if ((session && !str_ok(session, 128)) || (tmpl && !str_ok(tmpl, 128)) ||
	    (pool && (!json_is_string(pool) || !str_ok(json_string_value(pool), 128))))
		return sbx_err_set(err, SBX_E_INVALID,
				   "docker runtime: session_id, template_id and pool_owner must be "
				   "strings of at most 128 printable characters");
	if (network && strcmp(network, "none") && strcmp(network, "loopback"))
		return sbx_err_set(err, SBX_E_INVALID,
				   "docker runtime: network '%s' is not supported (none, loopback)",
				   network);
	if (!(cpu > 0 && cpu <= 1024) || mem < 16 || mem > (1L << 24) || disk < 1 ||
	    disk > (1L << 24) || procs < 8 || procs > 1000000)
		return sbx_err_set(err, SBX_E_INVALID,
				   "resources out of range (cpu in (0, 1024], memory_mb >= 16, "
				   "disk_mb >= 1, max_processes >= 8)");
	if ((rc = dk_negotiate(dk, err)) < 0)
		return rc;

	/* Capacity: containers that exist plus creations in flight. */
	pthread_mutex_lock(&dk->lock);
	dk->creating++;
	pthread_mutex_unlock(&dk->lock);
	counted = 1;
	if ((rc = list_containers(dk, &list, err)) < 0)
		goto fail;
	pthread_mutex_lock(&dk->lock);
	rc = json_array_size(list) + dk->creating - 1 >= dk->max_sessions;
	pthread_mutex_unlock(&dk->lock);
	json_decref(list);
	list = NULL;
	if (rc) {
		rc = sbx_err_set(err, SBX_E_LIMIT, "docker runtime '%s': all %u sessions in use",
				 dk->name, dk->max_sessions);
		goto fail;
	}
	if ((rc = ensure_image(dk, image, err)) < 0)
		goto fail;

	if (dk->core->random_bytes(rnd, sizeof rnd) < 0) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "random_bytes failed");
		goto fail;
	}
	memcpy(id, "dk-", 3);
	for (i = 0; i < sizeof rnd; i++)
		snprintf(id + 3 + 2 * i, 3, "%02x", rnd[i]);
	sock_dir_of(dk, id, dir, sizeof dir);
	snprintf(sock, sizeof sock, "%s/%s", dir, DK_SOCKET_NAME);
	/* The executor (the sandbox user) makes its socket here; locked once it is ready. */
	if (mkdir(dir, 0700) < 0 || chown(dir, dk->uid, dk->gid) < 0) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "docker runtime: mkdir %s: %s", dir,
				 strerror(errno));
		goto fail;
	}
	dir_made = 1;

	if (!(cfg = container_config(dk, spec, id, dir, cpu, mem, disk, procs))) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}
	snprintf(path, sizeof path, "/containers/create?name=sbx-%s", id);
	if ((rc = dk_call(dk, "POST", path, 1, cfg, dk->create_timeout_ms, &status, &r, err)) < 0)
		goto fail;
	if (status == 404) {
		rc = sbx_err_set(err, SBX_E_INVALID,
				 "docker runtime '%s': image '%s' is not present on %s (%.200s); "
				 "build it (etc/images/build.sh) or load it (docker pull / docker "
				 "load) on that host",
				 dk->name, image, dk->host, dk_message(r));
		goto fail;
	}
	if (status != 201 || !json_is_string(json_object_get(r, "Id")) ||
	    !valid_cid(json_string_value(json_object_get(r, "Id")))) {
		rc = dk_fail(dk, "create container", status, r, err);
		goto fail;
	}
	snprintf(cid, sizeof cid, "%s", json_string_value(json_object_get(r, "Id")));
	json_decref(r);
	r = NULL;

	snprintf(path, sizeof path, "/containers/%s/start", cid);
	if ((rc = dk_call(dk, "POST", path, 1, NULL, dk->create_timeout_ms, &status, &r, err)) < 0)
		goto fail;
	if (status != 204 && status != 304) {
		rc = dk_fail(dk, "start container", status, r, err);
		goto fail;
	}
	json_decref(r);
	r = NULL;
	if ((rc = ready_wait(dk, cid, sock, err)) < 0)
		goto fail;
	/* The executor has made its socket; from now on nothing in the sandbox may add,
	 * replace or remove entries of this host directory (host disk use, or a symlink in
	 * place of the socket that the core would follow on the host). */
	if (chown(dir, 0, 0) < 0 || chmod(dir, 0755) < 0) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "docker runtime: lock %s: %s", dir,
				 strerror(errno));
		goto fail;
	}
	if (!(h = handle_new(dk, id, cid, json_object_get(cfg, "Labels"), image))) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}
	json_decref(cfg);
	pthread_mutex_lock(&dk->lock);
	dk->creating--;
	pthread_mutex_unlock(&dk->lock);
	*handle = h;
	dk->core->log(dk->name, SBX_LOG_INFO,
		      "event=sandbox_created sandbox=%s session=%s container=%.12s", id,
		      session ? session : "-", cid);
	return 0;
fail:
	json_decref(r);
	json_decref(cfg);
	if (cid[0]) {
		sbx_err e2;
		if (remove_container(dk, cid, &e2) < 0)
			dk->core->log(dk->name, SBX_LOG_WARN,
				      "event=docker_cleanup_failed container=%.12s: %s", cid,
				      e2.message);
	}
	if (dir_made)
		rm_tree(dir);
	if (counted) {
		pthread_mutex_lock(&dk->lock);
		dk->creating--;
		pthread_mutex_unlock(&dk->lock);
	}
	return rc;
}

/* ---- destroy, status, list ---------------------------------------------------------- */

/* The engine reference of a handle's container: its id, else the name we gave it. */
static int handle_ref(const json_t *handle, char *ref, size_t cap, const char **id, sbx_err *err)
{
	const char *cid = json_string_value(json_object_get(handle, "container_id"));

	*id = json_string_value(json_object_get(handle, "sandbox_id"));
	if (!valid_id(*id))
		return sbx_err_set(err, SBX_E_INVALID, "not a docker runtime handle");
	if (cid && valid_cid(cid))
		snprintf(ref, cap, "%s", cid);
	else
		snprintf(ref, cap, "sbx-%s", *id);
	return 0;
}

static int dk_sandbox_destroy(void *inst, const json_t *handle, sbx_err *err)
{
	struct dk *dk = inst;
	const char *id;
	char ref[80], dir[PATH_OK_MAX];
	json_t *info = NULL;
	int rc;

	if ((rc = handle_ref(handle, ref, sizeof ref, &id, err)) < 0)
		return rc;
	if ((rc = dk_negotiate(dk, err)) < 0)
		return rc;
	if ((rc = inspect(dk, ref, &info, err)) < 0)
		return rc;
	if (rc == 0) {
		const json_t *labels = json_object_get(json_object_get(info, "Config"), "Labels");
		const char *sid = label(labels, LBL_SANDBOX);
		if (!labels_ours(dk, labels) || !sid || strcmp(sid, id)) {
			json_decref(info);
			return sbx_err_set(err, SBX_E_INVALID,
					   "docker runtime '%s': container %s is not sandbox %s of "
					   "this instance; not removed",
					   dk->name, ref, id);
		}
		json_decref(info);
		if ((rc = remove_container(dk, ref, err)) < 0)
			return rc;
	}
	sock_dir_of(dk, id, dir, sizeof dir);
	if (rm_tree(dir) < 0)
		return sbx_err_set(err, SBX_E_INTERNAL, "docker runtime: remove %s: %s", dir,
				   strerror(errno));
	dk->core->log(dk->name, SBX_LOG_INFO, "event=sandbox_destroyed sandbox=%s", id);
	return 0;
}

static int dk_sandbox_status(void *inst, const json_t *handle, json_t **status, sbx_err *err)
{
	struct dk *dk = inst;
	const char *id, *state = "running";
	char ref[80], reason[320];
	json_t *info = NULL;
	const json_t *st;
	int rc, oom = 0;

	if ((rc = handle_ref(handle, ref, sizeof ref, &id, err)) < 0)
		return rc;
	if ((rc = dk_negotiate(dk, err)) < 0 || (rc = inspect(dk, ref, &info, err)) < 0)
		return rc;
	reason[0] = '\0';
	if (rc == 1) {
		state = "missing";
		snprintf(reason, sizeof reason, "container removed");
	} else {
		const json_t *labels = json_object_get(json_object_get(info, "Config"), "Labels");
		const char *sid = label(labels, LBL_SANDBOX);

		st = json_object_get(info, "State");
		oom = json_is_true(json_object_get(st, "OOMKilled"));
		if (!labels_ours(dk, labels) || !sid || strcmp(sid, id)) {
			state = "missing";
			snprintf(reason, sizeof reason,
				 "container %s is no longer this sandbox's container", ref);
			oom = 0;
		} else if (!json_is_true(json_object_get(st, "Running")) ||
			   json_is_true(json_object_get(st, "Restarting"))) {
			state = "exited";
			exit_reason(info, reason, sizeof reason);
		} else if (json_is_true(json_object_get(st, "Paused"))) {
			state = "exited";
			snprintf(reason, sizeof reason, "the container is paused");
		}
	}
	json_decref(info);
	*status = json_pack("{s:s, s:s?}", "state", state, "reason", reason[0] ? reason : NULL);
	if (*status && oom)
		json_object_set_new(*status, "oom_killed", json_true());
	return *status ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static int dk_sandbox_list(void *inst, json_t **handles, sbx_err *err)
{
	struct dk *dk = inst;
	json_t *list = NULL, *arr, *c;
	size_t i;
	int rc;

	if ((rc = list_containers(dk, &list, err)) < 0)
		return rc;
	if (!(arr = json_array())) {
		json_decref(list);
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	json_array_foreach (list, i, c) {
		const json_t *labels = json_object_get(c, "Labels");
		const char *id = label(labels, LBL_SANDBOX);
		const char *cid = json_string_value(json_object_get(c, "Id"));
		json_t *h;

		/* The filter asked for both labels; check again, and skip what we cannot use
		 * as a path (a label someone else wrote). */
		if (!labels_ours(dk, labels) || !valid_id(id) || !valid_cid(cid))
			continue;
		if ((h = handle_new(dk, id, cid, labels,
				    json_string_value(json_object_get(c, "Image")))))
			json_array_append_new(arr, h);
	}
	json_decref(list);
	*handles = arr;
	return 0;
}

/* ---- nodes, health ------------------------------------------------------------------ */

static int get_json(struct dk *dk, const char *path, int versioned, json_t **out, sbx_err *err)
{
	long status;
	int rc;

	if ((rc = dk_call(dk, "GET", path, versioned, NULL, dk->create_timeout_ms, &status, out,
			  err)) < 0)
		return rc;
	if (status != 200) {
		rc = dk_fail(dk, path, status, *out, err);
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static int dk_health(void *inst, json_t **detail, sbx_err *err)
{
	struct dk *dk = inst;
	json_t *d = json_object(), *ping = NULL, *ver = NULL;
	char p[PATH_OK_MAX + 64];
	int rc;

	if (!d)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	json_object_set_new(d, "host", json_string(dk->host));
	json_object_set_new(d, "node", json_string(dk->node));
	rc = dk_negotiate(dk, err);
	if (rc == 0)
		rc = get_json(dk, "/_ping", 0, &ping, err);
	if (rc == 0 && (rc = get_json(dk, "/version", 0, &ver, err)) == 0) {
		json_object_set_new(d, "engine_version",
				    json_incref(json_object_get(ver, "Version")));
		json_object_set_new(d, "engine_api_version",
				    json_incref(json_object_get(ver, "ApiVersion")));
		pthread_mutex_lock(&dk->lock);
		json_object_set_new(d, "api_version", json_string(dk->api));
		pthread_mutex_unlock(&dk->lock);
	}
	snprintf(p, sizeof p, "%s/bin/sbx-executor", dk->executor_dir);
	if (rc == 0 && access(p, R_OK) < 0)
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "executor bundle missing: %s", p);
	snprintf(p, sizeof p, "%s/lib/ld-linux-x86-64.so.2", dk->executor_dir);
	if (rc == 0 && access(p, R_OK) < 0)
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "executor bundle has no loader: %s", p);
	if (rc == 0 && access(dk->sockets_dir, W_OK | X_OK) < 0)
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "sockets_dir %s not writable: %s",
				 dk->sockets_dir, strerror(errno));
	json_object_set_new(d, "executor_dir", json_string(dk->executor_dir));
	json_object_set_new(d, "healthy", json_boolean(rc == 0));
	json_decref(ping);
	json_decref(ver);
	*detail = d;
	return rc;
}

static int dk_nodes(void *inst, json_t **nodes, sbx_err *err)
{
	struct dk *dk = inst;
	json_t *info = NULL, *list = NULL, *imgs = NULL, *cached, *c, *t, *node, *hd = NULL;
	double cpu = 0;
	long long mem = 0, n = 0;
	size_t i, j;
	sbx_err herr;
	int rc, healthy;

	if ((rc = dk_negotiate(dk, err)) < 0 || (rc = get_json(dk, "/info", 1, &info, err)) < 0)
		return rc;
	if ((rc = list_containers(dk, &list, err)) < 0 ||
	    (rc = get_json(dk, "/images/json", 1, &imgs, err)) < 0) {
		json_decref(info);
		json_decref(list);
		return rc;
	}
	json_array_foreach (list, i, c) {
		const json_t *labels = json_object_get(c, "Labels");
		const char *state = json_string_value(json_object_get(c, "State"));
		if (!labels_ours(dk, labels) || !state || strcmp(state, "running"))
			continue;
		cpu += atof(label(labels, LBL_CPU) ?: "0");
		mem += atoll(label(labels, LBL_MEM) ?: "0");
		n++;
	}
	cached = json_array();
	json_array_foreach (imgs, i, c)
		json_array_foreach (json_object_get(c, "RepoTags"), j, t)
			if (json_is_string(t) && strcmp(json_string_value(t), "<none>:<none>"))
				json_array_append(cached, t);
	healthy = dk_health(dk, &hd, &herr) == 0;
	json_decref(hd);
	node = json_pack("{s:s, s:b, s:{s:I, s:I, s:I}, s:{s:f, s:I, s:I}, s:[], s:o, s:s}", "id",
			 dk->node, "healthy", healthy, "capacity", "cpu",
			 json_integer_value(json_object_get(info, "NCPU")), "memory_mb",
			 json_integer_value(json_object_get(info, "MemTotal")) / (1024 * 1024),
			 "max_sessions", (json_int_t)dk->max_sessions, "allocated", "cpu", cpu,
			 "memory_mb", (json_int_t)mem, "sessions", (json_int_t)n, "templates_warm",
			 "images_cached", cached, "host", dk->host);
	json_decref(info);
	json_decref(list);
	json_decref(imgs);
	if (!node)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	*nodes = json_pack("[o]", node);
	return *nodes ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static const struct sbx_runtime_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_RUNTIME, struct sbx_runtime_plugin, "docker", "0.1.0",
			     "sandboxes as containers of a Docker Engine (API >= " DK_API_MIN ")"),
    .life = {.create = dk_create, .destroy = dk_destroy},
    .sandbox_create = dk_sandbox_create,
    .sandbox_destroy = dk_sandbox_destroy,
    .sandbox_status = dk_sandbox_status,
    .sandbox_list = dk_sandbox_list,
    .nodes = dk_nodes,
    .health = dk_health,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);
SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
