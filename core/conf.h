/*
 * The daemon's configuration: the libconfig file parsed strictly into struct config
 * (errors name file, line and key) and each plugin instance's group turned into JSON.
 */
#ifndef SBXD_CONF_H
#define SBXD_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct plugin_spec {
	int kind;       /* enum sbx_plugin_kind */
	char *module;   /* e.g. "sqlite" */
	char *name;     /* instance name, defaults to module */
	char *path;     /* explicit file, or NULL to search plugins_dir */
	json_t *config; /* the instance's `config` group as JSON (owned) */
	int line;       /* where it was declared, for messages */
};

struct config {
	char *file;
	/* server */
	char *listen_host;
	int listen_port;
	char *data_dir;
	char *plugins_dir;
	int workers;
	int max_connections;
	int64_t max_body;   /* bytes of a JSON request body */
	int64_t max_upload; /* bytes of a file upload request */
	int log_level;
	int shutdown_destroy; /* destroy sandboxes on SIGTERM (else keep for re-adoption) */
	int shutdown_grace_s;
	char *cors_origins; /* NULL: CORS off */
	char *replica_id;   /* names this replica in leases and records; default host:port */
	/* sessions */
	int session_default_timeout;
	int session_max_timeout;
	int reap_interval_ms;
	int create_timeout_s;
	int archive_workspace;       /* archive /workspace to storage when a session ends */
	int64_t archive_retention_s; /* archives older than this are deleted (0: kept) */
	int64_t max_lifetime_s;      /* a session ends this long after creation (0: never) */
	int probe_interval_ms;       /* health probe of every live sandbox */
	int sync_interval_ms;        /* state sync: orphans, work of dead replicas */
	int lease_ttl_ms;            /* background-loop leases expire after this */
	/* warm pools: defaults for templates that set none */
	int pool_size;       /* ready sandboxes kept per template and node (0: no pool) */
	int pool_min;        /* refill starts when fewer than this are ready */
	int pool_max_idle_s; /* a pooled sandbox older than this is replaced */
	/* executions */
	int64_t max_output; /* per stream, bytes */
	int max_running;    /* concurrent executions in the whole daemon */
	/* per-tenant quotas (0 = unlimited); an API key's own "quotas" override them */
	struct quota_cfg {
		int64_t max_sessions;
		int64_t max_running_executions;
		double max_cpu;
		int64_t max_memory; /* bytes */
		double requests_per_second;
		int64_t burst;
	} quotas;
	/* plugins */
	struct plugin_spec *plugins;
	size_t n_plugins;
	/* templates seeded into an empty db (array of template objects) */
	json_t *templates;
};

/* Load FILE into *cfg (zeroed by the caller). On error returns -1 and writes one line per
 * problem into errbuf ("FILE:LINE: key: message"). */
int conf_load(struct config *cfg, const char *file, char *errbuf, size_t errlen);
void conf_free(struct config *cfg);

/* "127.0.0.1:8000", "[::1]:8000" → host/port; -1 when malformed. */
int conf_parse_listen(const char *s, char **host, int *port);
/* "512Mi", "1Gi", "100M", "2048" → bytes; -1 when malformed. */
int64_t conf_parse_size(const char *s);
const char *conf_kind_name(int kind);
int conf_kind_parse(const char *s);

#endif
