/*
 * Internal interface of the `kubernetes` runtime module: the per-instance state and what
 * each file of the module offers the others (config, API client, object builders).
 */
#ifndef SBX_RUNTIME_K8S_H
#define SBX_RUNTIME_K8S_H

#include <pthread.h>
#include <stdint.h>

#include <sandbox/core.h>
#include <sandbox/runtime.h>

#define K8S_BODY_MAX     (8u << 20) /* any response body or watch line */
#define K8S_TOKEN_MAX    16384      /* a service-account token file */
#define K8S_SA_DIR       "/var/run/secrets/kubernetes.io/serviceaccount"
#define K8S_MANAGED_BY   "app.kubernetes.io/managed-by"
#define K8S_L_INSTANCE   "sbxd.io/instance"
#define K8S_L_SESSION    "sbxd.io/session"
#define K8S_L_TEMPLATE   "sbxd.io/template"
#define K8S_L_SANDBOX    "sbxd.io/sandbox"
#define K8S_L_POOL_OWNER "sbxd.io/pool-owner"
#define K8S_A_SESSION    "sbxd.io/session-id" /* annotation: the unsanitised session id */
#define K8S_A_POOL_OWNER "sbxd.io/pool-owner" /* annotation: the unsanitised pool owner */
#define K8S_EXEC_MOUNT   "/opt/sbx"           /* the executor bundle in the sandbox */
#define K8S_TOKEN_MOUNT  "/run/sbx"           /* the Secret with the executor's token */
#define K8S_LABEL_MAX    63

/* One instance of the module (several may be loaded: no globals). */
struct k8s {
	const struct sbx_core_api *core;
	char *name;       /* instance name (logs) */
	char *inst_label; /* the instance name as a label value */
	char *server;     /* https://host:port, no trailing slash */
	char *token_file; /* may be NULL: no Authorization header */
	char *ca_file;    /* may be NULL: the system trust store */
	char *namespace;  /* DNS-1123 label */
	char *executor_image;
	char *executor_image_dir; /* where the bundle lies inside executor_image */
	char *image_pull_policy;  /* Always | IfNotPresent | Never, or NULL */
	char *runtime_class_name; /* or NULL */
	char *service_account_name;
	char *pod_name_prefix;
	char *node; /* inventory id */
	int insecure_skip_tls_verify;
	int allow_insecure_http;
	unsigned executor_port;
	unsigned max_sessions;
	double capacity_cpu;
	unsigned capacity_memory_mb;
	unsigned tmp_size_mb;
	unsigned create_timeout_ms;
	unsigned request_timeout_ms;
	unsigned delete_grace_s;
	unsigned token_reload_s;

	pthread_mutex_t lock; /* guards the token cache */
	char *token;          /* the bearer token as last read */
	int64_t token_read_ms;
};

/* config.c */
int config_parse(struct k8s *k, const json_t *config, sbx_err *err);
void config_free(struct k8s *k);
/* The current bearer token (re-read when older than token_reload_s, or when `force`),
 * copied into buf. 0, or <0 with err naming the file. An empty buf: no token configured. */
int token_get(struct k8s *k, int force, char *buf, size_t cap, sbx_err *err);

/* api.c: one request to the API server. path starts with "/". body may be NULL.
 * *status is the HTTP status; *resp (new reference, may be NULL for an empty or non-JSON
 * body). Returns 0 when an HTTP status was received, <0 for transport failures. A 401
 * triggers one re-read of the token and a retry. */
int api_call(struct k8s *k, const char *method, const char *path, const char *content_type,
	     const json_t *body, long *status, json_t **resp, sbx_err *err);

/* A watch: `on_event` gets every event object (borrowed) and returns 0 to go on, 1 to stop
 * (done), <0 to fail (err filled). Returns 1 when on_event stopped it, 0 when the server
 * closed the stream or timeout_ms passed, <0 on error (410 Gone as SBX_E_CONFLICT with
 * *gone = 1). */
typedef int (*api_event_fn)(void *ctx, const json_t *event, sbx_err *err);
int api_watch(struct k8s *k, const char *path, long timeout_ms, api_event_fn on_event, void *ctx,
	      int *gone, sbx_err *err);

/* GET http(s)://addr/health on the executor with the bearer token: 0 when 200; *status. */
int api_executor_health(struct k8s *k, const char *url, const char *token, long *status,
			sbx_err *err);

/* Turn a failed API answer into an sbx error naming `what` and the API's message. */
int api_error(const struct k8s *k, long status, const json_t *resp, const char *what, sbx_err *err);

/* URL-encode a query value into out (NUL-terminated). 0, or -1 when it does not fit. */
int url_encode(const char *in, char *out, size_t cap);

/* objects.c */
/* A label value from any string: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, <= 63. */
void label_value(const char *in, char *out, size_t cap);
json_t *build_secret(const struct k8s *k, const char *name, const char *token,
		     const json_t *labels);
json_t *build_pod(const struct k8s *k, const char *name, const char *secret, const json_t *spec,
		  const json_t *labels, const char *session_id);

#endif
