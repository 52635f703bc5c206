/*
 * Internal interface of the `docker` runtime module: the per-instance state and the
 * functions each file of the module offers the others. Nothing here is exported.
 */
#ifndef SBX_RUNTIME_DOCKER_H
#define SBX_RUNTIME_DOCKER_H

#include <pthread.h>

#include <sandbox/core.h>
#include <sandbox/runtime.h>

#define DK_API_MIN      "1.41"     /* Docker Engine 20.10 */
#define DK_API_MAX      "1.45"     /* the newest version this module was checked against */
#define DK_BODY_MAX     (8u << 20) /* cap on every engine response read */
#define DK_LABEL_PREFIX "io.sbxd."
#define DK_MOUNT_EXE    "/opt/sbx"
#define DK_MOUNT_RUN    "/run/sbx"
#define DK_SOCKET_NAME  "executor.sock"
#define DK_NOFILE_MAX   4096
#define DK_ID_LEN       35 /* "dk-" + 32 hex */

/* One instance of the module: one Docker host, one scheduling node (no globals). */
struct dk {
	const struct sbx_core_api *core;
	char *name; /* instance name */

	/* config (config.c) */
	char *host; /* unix:///path or tcp://host:port */
	char *tls_ca, *tls_cert, *tls_key;
	int tls_verify;
	char *node;
	unsigned max_sessions;
	char *executor_dir;
	char *sockets_dir;
	char *user; /* "uid:gid", numeric */
	unsigned uid, gid;
	char *oci_runtime;         /* NULL: the engine's default */
	json_t *template_runtimes; /* object: template id -> OCI runtime name */
	int readonly_rootfs;
	unsigned tmp_size_mb;
	int init;         /* docker-init as PID 1 instead of the executor (weaker; default 0) */
	int seccomp_sbxd; /* 1: the sandbox policy as profile (default); 0: the engine's */
	int pull;
	unsigned nofile;
	unsigned log_max_kb;
	long create_timeout_ms, ready_timeout_ms, stop_timeout_ms;

	/* derived */
	char *seccomp_opt; /* "seccomp=<profile JSON>" (seccomp.c), NULL with the engine's */
	char *sock_path;   /* unix: the engine socket; NULL for tcp */
	char *base_url;    /* "http://docker" or "https://host:port" */

	pthread_mutex_t lock; /* guards api[] and the session count below */
	char api[16];         /* negotiated "1.41"..; "" until the engine answered */
	unsigned creating;    /* sandbox_create calls in flight (capacity check) */
};

/* config.c */
int dk_config_parse(struct dk *dk, const json_t *config, sbx_err *err);

/* seccomp.c: the sandbox's seccomp policy as a Docker profile (JSON text, malloc'd). */
int dk_seccomp_profile(char **out, sbx_err *err);

/* engine.c: one Engine API call. `path` starts with "/" and is sent under the negotiated
 * version prefix (unversioned when `versioned` is 0). `body` (borrowed, may be NULL) is
 * sent as JSON. On return 0, *status is the HTTP status and *resp (new reference, may be
 * NULL when the body is empty or not JSON) the parsed body; <0 on transport failure with
 * err naming the host (connection refused, permission, timeout, response too large). */
int dk_call(struct dk *dk, const char *method, const char *path, int versioned, const json_t *body,
	    long timeout_ms, long *status, json_t **resp, sbx_err *err);

/* The engine's "message" of an error body, or "" (borrowed from resp). */
const char *dk_message(const json_t *resp);

/* Negotiate the API version if not done yet (GET /version). */
int dk_negotiate(struct dk *dk, sbx_err *err);

/* Map an unexpected engine status to an sbx error: 4xx/5xx with the engine's message. */
int dk_fail(struct dk *dk, const char *what, long status, const json_t *resp, sbx_err *err);

#endif
