/*
 * Configuration loading. Every key is checked against a table: an unknown key is an
 * error naming the file, line and key, because a typo silently ignored is how a sandbox
 * ends up without the limit its operator wrote.
 */
#include "config.h"

#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include <sandbox/plugin.h>

#include "log.h"

struct errs {
	char *buf;
	size_t len, used;
	int n;
	const char *file;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
addf(struct errs *e, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	e->n++;
	if (e->used >= e->len)
		return;
	n = snprintf(e->buf + e->used, e->len - e->used, "%s%s:%d: ", e->used ? "\n" : "", e->file,
		     s ? (int)config_setting_source_line(s) : 0);
	if (n > 0)
		e->used += (size_t)n;
	if (e->used >= e->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(e->buf + e->used, e->len - e->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		e->used += (size_t)n;
	if (e->used > e->len)
		e->used = e->len;
}

/* The dotted path of a setting, for messages: "server.listen", "plugins.[2].kind". */
static void path_of(const config_setting_t *s, char *out, size_t len)
{
	char tmp[256] = "";
	char seg[96];

	out[0] = '\0';
	for (; s && config_setting_parent(s); s = config_setting_parent(s)) {
		if (config_setting_name(s))
			snprintf(seg, sizeof seg, "%s", config_setting_name(s));
		else
			snprintf(seg, sizeof seg, "[%d]", config_setting_index(s));
		snprintf(tmp, sizeof tmp, "%s%s%s", seg, out[0] ? "." : "", out);
		snprintf(out, len, "%s", tmp);
	}
}

int64_t conf_parse_size(const char *s)
{
	static const struct {
		const char *suf;
		int64_t mul;
	} units[] = {{"", 1},
		     {"K", 1000},
		     {"M", 1000 * 1000},
		     {"G", 1000 * 1000 * 1000},
		     {"Ki", 1024},
		     {"Mi", 1024 * 1024},
		     {"Gi", 1024LL * 1024 * 1024},
		     {"Ti", 1024LL * 1024 * 1024 * 1024},
		     {"k", 1000},
		     {"KB", 1000},
		     {"MB", 1000 * 1000},
		     {"GB", 1000 * 1000 * 1000}};
	char *end;
	double v;

	if (!s || !*s || !(isdigit((unsigned char)*s) || *s == '.'))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || v < 0)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(end, units[i].suf) == 0) {
			double r = v * (double)units[i].mul;
			if (r > (double)INT64_MAX / 2)
				return -1;
			return (int64_t)r;
		}
	return -1;
}

int conf_parse_listen(const char *s, char **host, int *port)
{
	const char *colon;
	char *end;
	long p;
	size_t hl;

	if (!s)
		return -1;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -1;
		colon = rb + 1;
		s++;
		hl = (size_t)(rb - s);
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl > 255)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || p < 0 || p > 65535 || end == colon + 1)
		return -1;
	*host = strndup(s, hl);
	*port = (int)p;
	return *host ? 0 : -1;
}

static const char *const kind_names[] = {NULL, "runtime", "storage", "policy", "auth", "db"};

const char *conf_kind_name(int kind)
{
	return kind >= 1 && kind <= 5 ? kind_names[kind] : "unknown";
}

int conf_kind_parse(const char *s)
{
	for (int i = 1; i <= 5; i++)
		if (s && strcmp(s, kind_names[i]) == 0)
			return i;
	return -1;
}

/* libconfig → JSON, recursively. */
static json_t *to_json(const config_setting_t *s)
{
	json_t *j = NULL;
	int n, i;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		j = json_object();
		n = config_setting_length(s);
		for (i = 0; i < n; i++) {
			const config_setting_t *c = config_setting_get_elem(s, (unsigned)i);
			json_object_set_new(j, config_setting_name(c), to_json(c));
		}
		break;
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST:
		j = json_array();
		n = config_setting_length(s);
		for (i = 0; i < n; i++)
			json_array_append_new(j, to_json(config_setting_get_elem(s, (unsigned)i)));
		break;
	case CONFIG_TYPE_INT:
		j = json_integer(config_setting_get_int(s));
		break;
	case CONFIG_TYPE_INT64:
		j = json_integer(config_setting_get_int64(s));
		break;
	case CONFIG_TYPE_FLOAT:
		j = json_real(config_setting_get_float(s));
		break;
	case CONFIG_TYPE_STRING:
		j = json_string(config_setting_get_string(s));
		break;
	case CONFIG_TYPE_BOOL:
		j = json_boolean(config_setting_get_bool(s));
		break;
	default:
		j = json_null();
	}
	return j ? j : json_null();
}

enum vtype { T_STR, T_INT, T_SIZE, T_BOOL, T_LISTEN, T_LEVEL, T_MODE, T_I64, T_REAL };

struct key {
	const char *name;
	enum vtype type;
	size_t off;       /* offsetof in struct config */
	int64_t min, max; /* for T_INT / T_SIZE */
};

#define K(n, t, f, lo, hi)                                                                         \
	{                                                                                          \
		n, t, offsetof(struct config, f), lo, hi                                           \
	}

static const struct key server_keys[] = {
    K("listen", T_LISTEN, listen_host, 0, 0),
    K("data_dir", T_STR, data_dir, 0, 0),
    K("plugins_dir", T_STR, plugins_dir, 0, 0),
    K("workers", T_INT, workers, 1, 256),
    K("max_connections", T_INT, max_connections, 16, 100000),
    K("max_request_body", T_SIZE, max_body, 4096, 1LL << 30),
    K("max_upload", T_SIZE, max_upload, 4096, 1LL << 40),
    K("log_level", T_LEVEL, log_level, 0, 0),
    K("shutdown_sandboxes", T_MODE, shutdown_destroy, 0, 0),
    K("shutdown_grace_s", T_INT, shutdown_grace_s, 0, 3600),
    K("cors_origins", T_STR, cors_origins, 0, 0),
    K("replica_id", T_STR, replica_id, 0, 0),
    {NULL, 0, 0, 0, 0},
};

static const struct key session_keys[] = {
    K("default_timeout", T_INT, session_default_timeout, 1, 30 * 86400),
    K("max_timeout", T_INT, session_max_timeout, 1, 365 * 86400),
    K("reap_interval_ms", T_INT, reap_interval_ms, 50, 600000),
    K("create_timeout_s", T_INT, create_timeout_s, 1, 3600),
    K("archive_workspace", T_BOOL, archive_workspace, 0, 1),
    K("archive_retention_s", T_I64, archive_retention_s, 0, 10LL * 365 * 86400),
    K("max_lifetime_s", T_I64, max_lifetime_s, 0, 365LL * 86400),
    K("probe_interval_ms", T_INT, probe_interval_ms, 100, 600000),
    K("sync_interval_ms", T_INT, sync_interval_ms, 500, 3600000),
    K("lease_ttl_ms", T_INT, lease_ttl_ms, 1000, 600000),
    {NULL, 0, 0, 0, 0},
};

static const struct key pool_keys[] = {
    K("size", T_INT, pool_size, 0, 64),
    K("min", T_INT, pool_min, 0, 64),
    K("max_idle_s", T_INT, pool_max_idle_s, 10, 7 * 86400),
    {NULL, 0, 0, 0, 0},
};

static const struct key exec_keys[] = {
    K("max_output", T_SIZE, max_output, 1024, 64LL << 20),
    K("max_running", T_INT, max_running, 1, 100000),
    {NULL, 0, 0, 0, 0},
};

static const struct key quota_keys[] = {
    K("max_sessions", T_I64, quotas.max_sessions, 0, 1000000),
    K("max_running_executions", T_I64, quotas.max_running_executions, 0, 1000000),
    K("max_cpu", T_REAL, quotas.max_cpu, 0, 1000000),
    K("max_memory", T_SIZE, quotas.max_memory, 0, 1LL << 50),
    K("requests_per_second", T_REAL, quotas.requests_per_second, 0, 1000000),
    K("burst", T_I64, quotas.burst, 0, 10000000),
    {NULL, 0, 0, 0, 0},
};

static void set_one(struct config *cfg, const struct key *k, const config_setting_t *s,
		    struct errs *e)
{
	char *base = (char *)cfg;
	char p[256];
	int t = config_setting_type(s);

	path_of(s, p, sizeof p);
	switch (k->type) {
	case T_STR:
	case T_LISTEN:
	case T_LEVEL:
	case T_MODE: {
		const char *v = config_setting_get_string(s);
		if (t != CONFIG_TYPE_STRING) {
			addf(e, s, "%s: expected a string", p);
			return;
		}
		if (k->type == T_LISTEN) {
			char *h = NULL;
			int port;
			if (conf_parse_listen(v, &h, &port) < 0) {
				addf(e, s, "%s: '%s' is not HOST:PORT (e.g. \"127.0.0.1:8000\")", p,
				     v);
				return;
			}
			free(cfg->listen_host);
			cfg->listen_host = h;
			cfg->listen_port = port;
		} else if (k->type == T_LEVEL) {
			int l = log_level_parse(v);
			if (l < 0)
				addf(e, s, "%s: '%s' is not one of error, warn, info, debug", p, v);
			else
				cfg->log_level = l;
		} else if (k->type == T_MODE) {
			if (strcmp(v, "keep") == 0)
				cfg->shutdown_destroy = 0;
			else if (strcmp(v, "destroy") == 0)
				cfg->shutdown_destroy = 1;
			else
				addf(e, s, "%s: '%s' is not \"keep\" or \"destroy\"", p, v);
		} else {
			char **dst = (char **)(base + k->off);
			free(*dst);
			*dst = strdup(v);
		}
		return;
	}
	case T_BOOL:
		if (t != CONFIG_TYPE_BOOL)
			addf(e, s, "%s: expected true or false", p);
		else
			*(int *)(base + k->off) = config_setting_get_bool(s);
		return;
	case T_REAL: {
		double v;
		if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
			v = (double)config_setting_get_int64(s);
		else if (t == CONFIG_TYPE_FLOAT)
			v = config_setting_get_float(s);
		else {
			addf(e, s, "%s: expected a number", p);
			return;
		}
		if (v < (double)k->min || v > (double)k->max) {
			addf(e, s, "%s: %g is outside %lld..%lld", p, v, (long long)k->min,
			     (long long)k->max);
			return;
		}
		*(double *)(base + k->off) = v;
		return;
	}
	case T_INT:
	case T_I64:
	case T_SIZE: {
		int64_t v;
		if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
			v = config_setting_get_int64(s);
		else if (k->type == T_SIZE && t == CONFIG_TYPE_STRING)
			v = conf_parse_size(config_setting_get_string(s));
		else {
			addf(e, s, "%s: expected %s", p,
			     k->type == T_SIZE ? "a size (bytes, or a string like \"1Mi\")"
					       : "an integer");
			return;
		}
		if (v < k->min || v > k->max) {
			addf(e, s, "%s: %lld is outside %lld..%lld", p, (long long)v,
			     (long long)k->min, (long long)k->max);
			return;
		}
		if (k->type == T_SIZE || k->type == T_I64)
			*(int64_t *)(base + k->off) = v;
		else
			*(int *)(base + k->off) = (int)v;
		return;
	}
	}
}

static void load_group(struct config *cfg, const config_setting_t *g, const struct key *keys,
		       struct errs *e)
{
	char p[256];
	int n, i;

	if (!config_setting_is_group(g)) {
		path_of(g, p, sizeof p);
		addf(e, g, "%s: expected a group { ... }", p);
		return;
	}
	n = config_setting_length(g);
	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const struct key *k;
		for (k = keys; k->name; k++)
			if (strcmp(k->name, config_setting_name(s)) == 0)
				break;
		if (!k->name) {
			path_of(s, p, sizeof p);
			addf(e, s, "%s: unknown key", p);
			continue;
		}
		set_one(cfg, k, s, e);
	}
}

static void load_plugins(struct config *cfg, const config_setting_t *list, struct errs *e)
{
	char p[256];
	int n, i;

	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		addf(e, list, "plugins: expected a list ( {...}, {...} )");
		return;
	}
	n = config_setting_length(list);
	cfg->plugins = calloc((size_t)n + 1, sizeof *cfg->plugins);
	if (!cfg->plugins)
		return;
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct plugin_spec *ps = &cfg->plugins[cfg->n_plugins];
		const char *kind = NULL, *module = NULL, *name = NULL, *path = NULL;
		const config_setting_t *conf = NULL;
		int m, j;

		path_of(g, p, sizeof p);
		if (!config_setting_is_group(g)) {
			addf(e, g, "%s: expected a group { kind = ...; module = ...; }", p);
			continue;
		}
		m = config_setting_length(g);
		for (j = 0; j < m; j++) {
			const config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
			const char *k = config_setting_name(s);
			char sp[256];
			path_of(s, sp, sizeof sp);
			if (strcmp(k, "config") == 0) {
				if (!config_setting_is_group(s))
					addf(e, s, "%s: expected a group { ... }", sp);
				conf = s;
				continue;
			}
			if (strcmp(k, "kind") && strcmp(k, "module") && strcmp(k, "name") &&
			    strcmp(k, "path")) {
				addf(e, s,
				     "%s: unknown key (expected kind, module, name, path, config)",
				     sp);
				continue;
			}
			if (config_setting_type(s) != CONFIG_TYPE_STRING) {
				addf(e, s, "%s: expected a string", sp);
				continue;
			}
			if (strcmp(k, "kind") == 0)
				kind = config_setting_get_string(s);
			else if (strcmp(k, "module") == 0)
				module = config_setting_get_string(s);
			else if (strcmp(k, "name") == 0)
				name = config_setting_get_string(s);
			else
				path = config_setting_get_string(s);
		}
		ps->line = (int)config_setting_source_line(g);
		ps->kind = conf_kind_parse(kind);
		if (!kind) {
			addf(e, g, "%s.kind: missing (one of runtime, storage, policy, auth, db)",
			     p);
			continue;
		}
		if (ps->kind < 0) {
			addf(e, g,
			     "%s.kind: unknown kind '%s' (one of runtime, storage, policy, auth, "
			     "db)",
			     p, kind);
			continue;
		}
		if (!module && !path) {
			addf(e, g, "%s.module: missing (e.g. module = \"sqlite\";)", p);
			continue;
		}
		if (module)
			for (const char *c = module; *c; c++)
				if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_') {
					addf(e, g,
					     "%s.module: '%s' may only hold letters, digits, - and "
					     "_",
					     p, module);
					module = NULL;
					break;
				}
		if (!module && !path)
			continue;
		ps->module = strdup(module ? module : "custom");
		ps->name = strdup(name ? name : ps->module);
		ps->path = path ? strdup(path) : NULL;
		ps->config = conf ? to_json(conf) : json_object();
		for (size_t q = 0; q < cfg->n_plugins; q++)
			if (strcmp(cfg->plugins[q].name, ps->name) == 0 &&
			    cfg->plugins[q].kind == ps->kind) {
				addf(e, g,
				     "%s.name: a %s instance named '%s' is already configured "
				     "(line %d); give this one another name",
				     p, kind, ps->name, cfg->plugins[q].line);
				break;
			}
		cfg->n_plugins++;
	}
}

static void set_defaults(struct config *cfg)
{
	cfg->listen_host = strdup("127.0.0.1");
	cfg->listen_port = 8000;
	cfg->data_dir = strdup(SBX_LOCALSTATE_DIR);
	cfg->plugins_dir = strdup(SBX_PLUGINS_DIR);
	cfg->workers = 8;
	cfg->max_connections = 1024;
	cfg->max_body = 4 << 20;
	cfg->max_upload = 100 << 20;
	cfg->log_level = SBX_LOG_INFO;
	cfg->shutdown_destroy = 0;
	cfg->shutdown_grace_s = 30;
	cfg->session_default_timeout = 300;
	cfg->session_max_timeout = 7 * 86400;
	cfg->reap_interval_ms = 1000;
	cfg->create_timeout_s = 60;
	cfg->archive_workspace = 1;
	cfg->archive_retention_s = 7 * 86400;
	cfg->max_lifetime_s = 86400;
	cfg->probe_interval_ms = 5000;
	cfg->sync_interval_ms = 30000;
	cfg->lease_ttl_ms = 15000;
	cfg->pool_size = 0;
	cfg->pool_min = -1; /* unset: follows size */
	cfg->pool_max_idle_s = 3600;
	cfg->max_output = 1 << 20;
	cfg->max_running = 256;
	/* generous per-tenant defaults: limits exist, and a single user never meets them */
	cfg->quotas.max_sessions = 256;
	cfg->quotas.max_running_executions = 64;
	cfg->quotas.max_cpu = 64;
	cfg->quotas.max_memory = 256LL << 30;
	cfg->quotas.requests_per_second = 1000;
	cfg->quotas.burst = 2000;
}

int conf_load(struct config *cfg, const char *file, char *errbuf, size_t errlen)
{
	struct errs e = {.buf = errbuf, .len = errlen, .file = file};
	config_t lc;
	const config_setting_t *root, *s;
	int n, i;

	errbuf[0] = '\0';
	set_defaults(cfg);
	cfg->file = strdup(file);
	config_init(&lc);
	if (!config_read_file(&lc, file)) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			snprintf(errbuf, errlen, "%s: cannot read the file (does it exist?)", file);
		else
			snprintf(errbuf, errlen, "%s:%d: %s", file, config_error_line(&lc),
				 config_error_text(&lc));
		config_destroy(&lc);
		return -1;
	}
	root = config_root_setting(&lc);
	n = config_setting_length(root);
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(s);
		if (strcmp(name, "server") == 0)
			load_group(cfg, s, server_keys, &e);
		else if (strcmp(name, "sessions") == 0)
			load_group(cfg, s, session_keys, &e);
		else if (strcmp(name, "executions") == 0)
			load_group(cfg, s, exec_keys, &e);
		else if (strcmp(name, "quotas") == 0)
			load_group(cfg, s, quota_keys, &e);
		else if (strcmp(name, "warm_pools") == 0)
			load_group(cfg, s, pool_keys, &e);
		else if (strcmp(name, "plugins") == 0)
			load_plugins(cfg, s, &e);
		else if (strcmp(name, "templates") == 0) {
			if (!config_setting_is_list(s))
				addf(&e, s, "templates: expected a list ( {...}, {...} )");
			else
				cfg->templates = to_json(s);
		} else
			addf(&e, s,
			     "%s: unknown key (expected server, sessions, executions, quotas, "
			     "warm_pools, plugins, templates)",
			     name);
	}
	if (cfg->session_default_timeout > cfg->session_max_timeout)
		addf(&e, config_lookup(&lc, "sessions.default_timeout"),
		     "sessions.default_timeout: %d is larger than sessions.max_timeout (%d)",
		     cfg->session_default_timeout, cfg->session_max_timeout);
	if (cfg->pool_min < 0 || cfg->pool_min > cfg->pool_size)
		cfg->pool_min = cfg->pool_size;
	if (cfg->lease_ttl_ms < 3 * cfg->reap_interval_ms)
		addf(&e, config_lookup(&lc, "sessions.lease_ttl_ms"),
		     "sessions.lease_ttl_ms: %d must be at least 3 x sessions.reap_interval_ms "
		     "(%d), "
		     "or leases lapse between renewals",
		     cfg->lease_ttl_ms, cfg->reap_interval_ms);
	config_destroy(&lc);
	return e.n ? -1 : 0;
}

void conf_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_plugins; i++) {
		free(cfg->plugins[i].module);
		free(cfg->plugins[i].name);
		free(cfg->plugins[i].path);
		json_decref(cfg->plugins[i].config);
	}
	free(cfg->plugins);
	free(cfg->file);
	free(cfg->listen_host);
	free(cfg->data_dir);
	free(cfg->plugins_dir);
	free(cfg->cors_origins);
	free(cfg->replica_id);
	json_decref(cfg->templates);
	memset(cfg, 0, sizeof *cfg);
}
