/*
 * The instance's configuration: its libconfig group as JSON, unpacked strictly (an
 * unknown key is an error naming it), with the defaults documented in README.md and
 * docs/configuration.md.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "docker.h"

#define PFX "docker runtime: "

static int get_uint(const json_t *v, const char *key, unsigned min, unsigned max, unsigned *out,
		    sbx_err *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return sbx_err_set(err, SBX_E_INVALID, PFX "'%s' must be an integer in %u..%u", key,
				   min, max);
	*out = (unsigned)json_integer_value(v);
	return 0;
}

static int get_bool(const json_t *v, const char *key, int *out, sbx_err *err)
{
	if (!json_is_boolean(v))
		return sbx_err_set(err, SBX_E_INVALID, PFX "'%s' must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

static int get_str(const json_t *v, const char *key, char **out, sbx_err *err)
{
	if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 1024)
		return sbx_err_set(err, SBX_E_INVALID,
				   PFX "'%s' must be a string of 1..1024 characters", key);
	free(*out);
	*out = strdup(json_string_value(v));
	return *out ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

/* OCI runtime names as dockerd accepts them in daemon.json ("runc", "runsc", "kata-qemu"). */
static int runtime_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

static int parse_timeouts(struct dk *dk, const json_t *v, sbx_err *err)
{
	const char *k;
	json_t *t;

	if (!json_is_object(v))
		return sbx_err_set(err, SBX_E_INVALID,
				   PFX
				   "'timeouts' must be a group { create_ms; ready_ms; stop_ms; }");
	json_object_foreach ((json_t *)v, k, t) {
		long *dst = !strcmp(k, "create_ms")  ? &dk->create_timeout_ms
			    : !strcmp(k, "ready_ms") ? &dk->ready_timeout_ms
			    : !strcmp(k, "stop_ms")  ? &dk->stop_timeout_ms
						     : NULL;
		if (!dst)
			return sbx_err_set(err, SBX_E_INVALID,
					   PFX "unknown key 'timeouts.%s' (create_ms, ready_ms, "
					       "stop_ms)",
					   k);
		if (!json_is_integer(t) || json_integer_value(t) < 100 ||
		    json_integer_value(t) > 600000)
			return sbx_err_set(err, SBX_E_INVALID,
					   PFX "'timeouts.%s' must be an integer in 100..600000",
					   k);
		*dst = (long)json_integer_value(t);
	}
	return 0;
}

static int parse_template_runtimes(struct dk *dk, const json_t *v, sbx_err *err)
{
	const char *k;
	json_t *t;

	if (!json_is_object(v))
		return sbx_err_set(err, SBX_E_INVALID,
				   PFX "'template_runtimes' must be a group of template id = "
				       "\"runtime\"");
	json_object_foreach ((json_t *)v, k, t) {
		if (!json_is_string(t) || !runtime_name_ok(json_string_value(t)))
			return sbx_err_set(err, SBX_E_INVALID,
					   PFX "template_runtimes.%s must be an OCI runtime name "
					       "known to dockerd (e.g. \"runsc\")",
					   k);
		json_object_set(dk->template_runtimes, k, t);
	}
	return 0;
}

/* "sbxd": the sandbox policy shared with the linux runtime; "default": the engine's. */
static int parse_seccomp(struct dk *dk, const json_t *v, sbx_err *err)
{
	const char *m = json_string_value(v);

	if (m && (!strcmp(m, "sbxd") || !strcmp(m, "default"))) {
		dk->seccomp_sbxd = !strcmp(m, "sbxd");
		return 0;
	}
	return sbx_err_set(err, SBX_E_INVALID,
			   PFX "'seccomp' must be \"sbxd\" (the sandbox policy, as the linux "
			       "runtime's; the default) or \"default\" (the engine's default "
			       "profile)");
}

static int parse_user(struct dk *dk, sbx_err *err)
{
	unsigned long u, g;
	char *end;

	u = strtoul(dk->user, &end, 10);
	if (end == dk->user || *end != ':')
		goto bad;
	g = strtoul(end + 1, &end, 10);
	if (*end || end[-1] == ':' || u == 0 || g == 0 || u > 0xFFFFFFFEul || g > 0xFFFFFFFEul)
		goto bad;
	dk->uid = (unsigned)u;
	dk->gid = (unsigned)g;
	return 0;
bad:
	return sbx_err_set(err, SBX_E_INVALID,
			   PFX "'user' must be a numeric, non-root \"uid:gid\" (e.g. "
			       "\"65534:65534\"), got \"%s\"",
			   dk->user);
}

static int parse_host(struct dk *dk, sbx_err *err)
{
	const char *h = dk->host;

	if (!strncmp(h, "unix://", 7)) {
		if (h[7] != '/' || strlen(h + 7) >= 108)
			return sbx_err_set(err, SBX_E_INVALID,
					   PFX "'host' unix:// needs an absolute socket path "
					       "shorter than 108 bytes");
		if (dk->tls_ca || dk->tls_cert || dk->tls_key)
			return sbx_err_set(err, SBX_E_INVALID,
					   PFX
					   "tls_ca/tls_cert/tls_key apply to tcp:// hosts only");
		dk->sock_path = strdup(h + 7);
		dk->base_url = strdup("http://docker");
	} else if (!strncmp(h, "tcp://", 6)) {
		const char *hp = h + 6;
		size_t n = strcspn(hp, "/?#");
		char *url;

		if (!n || hp[n])
			return sbx_err_set(err, SBX_E_INVALID,
					   PFX "'host' tcp:// must be tcp://HOST:PORT, got \"%s\"",
					   h);
		if (!!dk->tls_cert != !!dk->tls_key)
			return sbx_err_set(err, SBX_E_INVALID,
					   PFX "tls_cert and tls_key go together");
		url = malloc(n + 9);
		if (url)
			snprintf(url, n + 9, "%s://%.*s",
				 dk->tls_ca || dk->tls_cert ? "https" : "http", (int)n, hp);
		dk->base_url = url;
		if (!dk->tls_ca && !dk->tls_cert)
			dk->core->log(dk->name, SBX_LOG_WARN,
				      "event=docker_plaintext host=%s: the Engine API is reached "
				      "without TLS; anyone on the network path controls the host",
				      h);
	} else {
		return sbx_err_set(err, SBX_E_INVALID,
				   PFX "'host' must start with unix:// or tcp://, got \"%s\"", h);
	}
	return dk->base_url && (dk->sock_path || strncmp(h, "unix://", 7))
		   ? 0
		   : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

int dk_config_parse(struct dk *dk, const json_t *config, sbx_err *err)
{
	struct rlimit rl;
	const char *key;
	json_t *v;
	int rc;

	dk->tls_verify = 1;
	dk->max_sessions = 256;
	dk->readonly_rootfs = 1;
	dk->tmp_size_mb = 256;
	dk->init = 0;
	dk->seccomp_sbxd = 1;
	dk->pull = 0;
	dk->nofile = DK_NOFILE_MAX;
	dk->log_max_kb = 4096;
	dk->create_timeout_ms = 60000;
	dk->ready_timeout_ms = 15000;
	dk->stop_timeout_ms = 10000;
	if (!(dk->template_runtimes = json_object()))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (config && !json_is_object(config))
		return sbx_err_set(err, SBX_E_INVALID, PFX "config must be a group");
	json_object_foreach ((json_t *)config, key, v) {
		if (!strcmp(key, "host"))
			rc = get_str(v, key, &dk->host, err);
		else if (!strcmp(key, "tls_ca"))
			rc = get_str(v, key, &dk->tls_ca, err);
		else if (!strcmp(key, "tls_cert"))
			rc = get_str(v, key, &dk->tls_cert, err);
		else if (!strcmp(key, "tls_key"))
			rc = get_str(v, key, &dk->tls_key, err);
		else if (!strcmp(key, "tls_verify"))
			rc = get_bool(v, key, &dk->tls_verify, err);
		else if (!strcmp(key, "node"))
			rc = get_str(v, key, &dk->node, err);
		else if (!strcmp(key, "max_sessions"))
			rc = get_uint(v, key, 1, 65536, &dk->max_sessions, err);
		else if (!strcmp(key, "executor_dir"))
			rc = get_str(v, key, &dk->executor_dir, err);
		else if (!strcmp(key, "sockets_dir"))
			rc = get_str(v, key, &dk->sockets_dir, err);
		else if (!strcmp(key, "user"))
			rc = get_str(v, key, &dk->user, err);
		else if (!strcmp(key, "oci_runtime")) {
			rc = get_str(v, key, &dk->oci_runtime, err);
			if (rc == 0 && !runtime_name_ok(dk->oci_runtime))
				rc = sbx_err_set(err, SBX_E_INVALID,
						 PFX "'oci_runtime' must be a runtime name "
						     "known to dockerd (e.g. \"runc\", \"runsc\")");
		} else if (!strcmp(key, "template_runtimes"))
			rc = parse_template_runtimes(dk, v, err);
		else if (!strcmp(key, "readonly_rootfs"))
			rc = get_bool(v, key, &dk->readonly_rootfs, err);
		else if (!strcmp(key, "tmp_size_mb"))
			rc = get_uint(v, key, 1, 1u << 20, &dk->tmp_size_mb, err);
		else if (!strcmp(key, "init"))
			rc = get_bool(v, key, &dk->init, err);
		else if (!strcmp(key, "seccomp"))
			rc = parse_seccomp(dk, v, err);
		else if (!strcmp(key, "pull"))
			rc = get_bool(v, key, &dk->pull, err);
		else if (!strcmp(key, "nofile"))
			rc = get_uint(v, key, 64, 1u << 20, &dk->nofile, err);
		else if (!strcmp(key, "log_max_kb"))
			rc = get_uint(v, key, 64, 1u << 20, &dk->log_max_kb, err);
		else if (!strcmp(key, "timeouts"))
			rc = parse_timeouts(dk, v, err);
		else
			rc = sbx_err_set(err, SBX_E_INVALID, PFX "unknown config key '%s'", key);
		if (rc < 0)
			return rc;
	}
	if (!dk->host && !(dk->host = strdup("unix:///var/run/docker.sock")))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (!dk->user && !(dk->user = strdup("65534:65534")))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if ((rc = parse_user(dk, err)) < 0 || (rc = parse_host(dk, err)) < 0)
		return rc;
	if (dk->executor_dir && dk->executor_dir[0] != '/')
		return sbx_err_set(err, SBX_E_INVALID, PFX "'executor_dir' must be absolute");
	if (dk->sockets_dir && dk->sockets_dir[0] != '/')
		return sbx_err_set(err, SBX_E_INVALID, PFX "'sockets_dir' must be absolute");
	/* A container cannot get a hard limit above the engine's: with a local engine (this
	 * host's limits) a higher value would make every container fail to start. */
	if (dk->sock_path && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
	    dk->nofile > rl.rlim_max)
		return sbx_err_set(err, SBX_E_INVALID,
				   PFX "'nofile' %u is above this host's hard limit %llu",
				   dk->nofile, (unsigned long long)rl.rlim_max);
	return 0;
}
