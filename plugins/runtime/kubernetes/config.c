/*
 * The instance's configuration, unpacked strictly (an unknown key is an error naming it),
 * the in-cluster defaults (service-account token, CA, namespace, KUBERNETES_SERVICE_*) and
 * the bearer token cache, re-read periodically because projected tokens rotate.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s.h"

#define E(...) sbx_err_set(err, SBX_E_INVALID, "kubernetes runtime: " __VA_ARGS__)

static int get_str(const json_t *v, const char *key, char **out, sbx_err *err)
{
	if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 4096)
		return E("'%s' must be a non-empty string (at most 4096 bytes)", key);
	free(*out);
	*out = strdup(json_string_value(v));
	return *out ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static int get_uint(const json_t *v, const char *key, unsigned min, unsigned max, unsigned *out,
		    sbx_err *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return E("'%s' must be an integer in %u..%u", key, min, max);
	*out = (unsigned)json_integer_value(v);
	return 0;
}

static int get_bool(const json_t *v, const char *key, int *out, sbx_err *err)
{
	if (!json_is_boolean(v))
		return E("'%s' must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

/* RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most `max` characters. */
static int dns_label(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (!n || n > max || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return 0;
	for (i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return 0;
	return 1;
}

/* RFC 1123 subdomain: dot-separated labels, at most 253 characters. */
static int dns_subdomain(const char *s)
{
	char buf[254], *tok, *save = NULL;

	if (strlen(s) > 253 || !s[0] || s[0] == '.' || s[strlen(s) - 1] == '.' || strstr(s, ".."))
		return 0;
	snprintf(buf, sizeof buf, "%s", s);
	for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
		if (!dns_label(tok, 63))
			return 0;
	return 1;
}

static int has_space(const char *s)
{
	for (; *s; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
			return 1;
	return 0;
}

/* The contents of a small file, trimmed; NULL when unreadable, empty or cap bytes or more. */
static char *read_small(const char *path, size_t cap)
{
	FILE *f = fopen(path, "re");
	char *buf, *s, *e;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(cap + 1);
	n = buf ? fread(buf, 1, cap, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = '\0';
	for (s = buf; *s && isspace((unsigned char)*s); s++)
		;
	for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
		;
	*e = '\0';
	if (!*s || n == cap) {
		free(buf);
		return NULL;
	}
	memmove(buf, s, strlen(s) + 1);
	return buf;
}

static int in_cluster(struct k8s *k, int ns_set, sbx_err *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char url[512];

	if (!host || !host[0])
		return E("'server' is not set and KUBERNETES_SERVICE_HOST is not in the "
			 "environment (sbxd is not running in a pod): set server = "
			 "\"https://HOST:PORT\" and token_file");
	if (!port || !port[0])
		port = "443";
	if (has_space(host) || has_space(port) || strlen(host) > 255 ||
	    strspn(port, "0123456789") != strlen(port))
		return E("KUBERNETES_SERVICE_HOST/PORT are malformed");
	snprintf(url, sizeof url, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		 port);
	k->server = strdup(url);
	if (!k->token_file)
		k->token_file = strdup(K8S_SA_DIR "/token");
	if (!k->ca_file)
		k->ca_file = strdup(K8S_SA_DIR "/ca.crt");
	if (!ns_set)
		k->namespace = read_small(K8S_SA_DIR "/namespace", 256);
	return 0;
}

int config_parse(struct k8s *k, const json_t *config, sbx_err *err)
{
	const char *key;
	json_t *v;
	int rc = 0;
	size_t n;

	k->executor_port = 9000;
	k->max_sessions = 100;
	k->capacity_cpu = 64;
	k->capacity_memory_mb = 262144;
	k->tmp_size_mb = 64;
	k->create_timeout_ms = 120000;
	k->request_timeout_ms = 10000;
	k->delete_grace_s = 5;
	k->token_reload_s = 60;
	if (config && !json_is_object(config))
		return E("config must be a group");
	json_object_foreach ((json_t *)config, key, v) {
		if (!strcmp(key, "server"))
			rc = get_str(v, key, &k->server, err);
		else if (!strcmp(key, "token_file"))
			rc = get_str(v, key, &k->token_file, err);
		else if (!strcmp(key, "ca_file"))
			rc = get_str(v, key, &k->ca_file, err);
		else if (!strcmp(key, "namespace"))
			rc = get_str(v, key, &k->namespace, err);
		else if (!strcmp(key, "insecure_skip_tls_verify"))
			rc = get_bool(v, key, &k->insecure_skip_tls_verify, err);
		else if (!strcmp(key, "allow_insecure_http"))
			rc = get_bool(v, key, &k->allow_insecure_http, err);
		else if (!strcmp(key, "executor_image"))
			rc = get_str(v, key, &k->executor_image, err);
		else if (!strcmp(key, "executor_image_dir"))
			rc = get_str(v, key, &k->executor_image_dir, err);
		else if (!strcmp(key, "executor_port"))
			rc = get_uint(v, key, 1, 65535, &k->executor_port, err);
		else if (!strcmp(key, "node"))
			rc = get_str(v, key, &k->node, err);
		else if (!strcmp(key, "max_sessions"))
			rc = get_uint(v, key, 1, 100000, &k->max_sessions, err);
		else if (!strcmp(key, "capacity_cpu")) {
			if (!json_is_number(v) || json_number_value(v) <= 0 ||
			    json_number_value(v) > 1e6)
				rc = E("'capacity_cpu' must be a number of cores > 0");
			else
				k->capacity_cpu = json_number_value(v);
		} else if (!strcmp(key, "capacity_memory_mb"))
			rc = get_uint(v, key, 16, 0x7fffffff, &k->capacity_memory_mb, err);
		else if (!strcmp(key, "tmp_size_mb"))
			rc = get_uint(v, key, 1, 1u << 20, &k->tmp_size_mb, err);
		else if (!strcmp(key, "image_pull_policy"))
			rc = get_str(v, key, &k->image_pull_policy, err);
		else if (!strcmp(key, "runtime_class_name"))
			rc = get_str(v, key, &k->runtime_class_name, err);
		else if (!strcmp(key, "service_account_name"))
			rc = get_str(v, key, &k->service_account_name, err);
		else if (!strcmp(key, "pod_name_prefix"))
			rc = get_str(v, key, &k->pod_name_prefix, err);
		else if (!strcmp(key, "create_timeout_ms"))
			rc = get_uint(v, key, 1000, 3600000, &k->create_timeout_ms, err);
		else if (!strcmp(key, "request_timeout_ms"))
			rc = get_uint(v, key, 100, 600000, &k->request_timeout_ms, err);
		else if (!strcmp(key, "delete_grace_seconds"))
			rc = get_uint(v, key, 0, 3600, &k->delete_grace_s, err);
		else if (!strcmp(key, "token_reload_seconds"))
			rc = get_uint(v, key, 1, 86400, &k->token_reload_s, err);
		else
			rc = E("unknown config key '%s'", key);
		if (rc < 0)
			return rc;
	}

	if (!k->server) {
		if ((rc = in_cluster(k, k->namespace != NULL, err)) < 0)
			return rc;
	} else {
		n = strlen(k->server);
		while (n > 0 && k->server[n - 1] == '/')
			k->server[--n] = '\0';
		const char *host = !strncmp(k->server, "https://", 8)  ? k->server + 8
				   : !strncmp(k->server, "http://", 7) ? k->server + 7
								       : NULL;
		if (!host || !host[0] || has_space(k->server) || strchr(host, '/') ||
		    strchr(host, '?') || strchr(host, '@'))
			return E("'server' must be a URL like https://HOST:PORT (no path, no "
				 "credentials)");
		if (!strncmp(k->server, "http://", 7)) {
			if (!k->allow_insecure_http)
				return E("'server' %s is plain http: the token would travel in "
					 "clear; use https, or set allow_insecure_http = true "
					 "(tests only)",
					 k->server);
		} else if (strncmp(k->server, "https://", 8))
			return E("'server' must start with https://");
	}
	if (!k->namespace)
		k->namespace = strdup("default");
	if (!k->node)
		k->node = strdup("kubernetes");
	if (!k->pod_name_prefix)
		k->pod_name_prefix = strdup("sbx");
	if (!k->executor_image_dir)
		k->executor_image_dir = strdup("/sbx");
	if (!k->server || !k->namespace || !k->node || !k->pod_name_prefix ||
	    !k->executor_image_dir)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (!dns_label(k->namespace, 63))
		return E("'namespace' '%s' is not a valid namespace name (RFC 1123 label)",
			 k->namespace);
	if (!dns_label(k->pod_name_prefix, 20) || !islower((unsigned char)k->pod_name_prefix[0]))
		return E("'pod_name_prefix' must be 1..20 of [a-z0-9-], starting with a letter "
			 "and ending with a letter or digit");
	if (!k->executor_image)
		return E("'executor_image' is required: the image holding the sbx-executor "
			 "bundle (see etc/kubernetes/README.md)");
	if (has_space(k->executor_image))
		return E("'executor_image' must not contain whitespace");
	if (k->executor_image_dir[0] != '/' || has_space(k->executor_image_dir))
		return E("'executor_image_dir' must be an absolute path");
	if (k->image_pull_policy && strcmp(k->image_pull_policy, "Always") &&
	    strcmp(k->image_pull_policy, "IfNotPresent") && strcmp(k->image_pull_policy, "Never"))
		return E("'image_pull_policy' must be \"Always\", \"IfNotPresent\" or \"Never\"");
	if (k->runtime_class_name && !dns_subdomain(k->runtime_class_name))
		return E("'runtime_class_name' is not a valid object name (RFC 1123 subdomain)");
	if (k->service_account_name && !dns_subdomain(k->service_account_name))
		return E("'service_account_name' is not a valid object name (RFC 1123 subdomain)");
	if (k->ca_file && k->ca_file[0] != '/')
		return E("'ca_file' must be an absolute path");
	if (k->token_file && k->token_file[0] != '/')
		return E("'token_file' must be an absolute path");
	if (k->executor_port == 0)
		return E("'executor_port' must be 1..65535");
	return 0;
}

void config_free(struct k8s *k)
{
	free(k->name);
	free(k->inst_label);
	free(k->server);
	free(k->token_file);
	free(k->ca_file);
	free(k->namespace);
	free(k->executor_image);
	free(k->executor_image_dir);
	free(k->image_pull_policy);
	free(k->runtime_class_name);
	free(k->service_account_name);
	free(k->pod_name_prefix);
	free(k->node);
	if (k->token) {
		explicit_bzero(k->token, strlen(k->token));
		free(k->token);
	}
}

int token_get(struct k8s *k, int force, char *buf, size_t cap, sbx_err *err)
{
	int64_t now = k->core->monotonic_ms();
	int rc = 0;

	buf[0] = '\0';
	if (!k->token_file)
		return 0;
	pthread_mutex_lock(&k->lock);
	if (force || !k->token || now - k->token_read_ms > (int64_t)k->token_reload_s * 1000) {
		char *t;
		errno = 0;
		t = read_small(k->token_file, K8S_TOKEN_MAX);
		if (t && (has_space(t) || strlen(t) >= cap)) {
			explicit_bzero(t, strlen(t));
			free(t);
			t = NULL;
			errno = EINVAL;
		}
		if (t) {
			if (k->token) {
				explicit_bzero(k->token, strlen(k->token));
				free(k->token);
			}
			k->token = t;
			k->token_read_ms = now;
		} else if (!k->token) {
			rc = sbx_err_set(err, SBX_E_UNAVAILABLE,
					 "kubernetes runtime: cannot read the API token from %s "
					 "(%s): check token_file (in a pod: the service account "
					 "token must be mounted)",
					 k->token_file, errno ? strerror(errno) : "empty");
		}
		/* else: keep the last good token; the file may be mid-rotation */
	}
	if (rc == 0)
		snprintf(buf, cap, "%s", k->token);
	pthread_mutex_unlock(&k->lock);
	return rc;
}
