/*
 * Record views and value parsing shared by the handlers.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "model.h"
#include "services.h"

static json_t *get_or_null(const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return v ? json_incref(v) : json_null();
}

json_t *model_mib_string(int64_t mib)
{
	char b[32];
	if (mib > 0 && mib % 1024 == 0)
		snprintf(b, sizeof b, "%lldGi", (long long)(mib / 1024));
	else
		snprintf(b, sizeof b, "%lldMi", (long long)mib);
	return json_string(b);
}

int64_t model_parse_mib(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
	if (json_is_real(v))
		return json_real_value(v) >= 0 ? (int64_t)json_real_value(v) : -1;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		int64_t b;
		errno = 0;
		double d = strtod(s, &end);
		if (end != s && *end == '\0' && !errno && d >= 0)
			return (int64_t)d; /* bare number: MiB */
		b = conf_parse_size(s);
		return b < 0 ? -1 : b / (1024 * 1024);
	}
	return -1;
}

double model_parse_cpu(const json_t *v)
{
	if (json_is_number(v))
		return json_number_value(v);
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		double d = strtod(s, &end);
		if (end == s || errno || !isfinite(d))
			return -1;
		if (strcmp(end, "m") == 0)
			return d / 1000.0;
		return *end ? -1 : d;
	}
	return -1;
}

json_t *model_merge_env(const json_t *base, const json_t *overlay, const char *field, char *msg,
			size_t len)
{
	json_t *env;

	if (overlay && !json_is_null(overlay) && model_check_env(overlay, field, msg, len) < 0)
		return NULL;
	env = json_is_object(base) ? json_deep_copy(base) : json_object();
	if (env && overlay && !json_is_null(overlay))
		json_object_update(env, (json_t *)overlay);
	return env;
}

const char *const model_template_fields[] = {"id",
					     "name",
					     "description",
					     "image_url",
					     "runtime_type",
					     "default_cpu_cores",
					     "default_memory_mb",
					     "default_disk_mb",
					     "default_timeout_sec",
					     "default_env_vars",
					     "on_sandbox_failure",
					     "warm_pool_size",
					     "warm_pool_max_idle_s",
					     NULL};

int model_valid_id(const char *s)
{
	size_t n;
	if (!s)
		return 0;
	for (n = 0; s[n]; n++)
		if (n >= 64 ||
		    !(isalnum((unsigned char)s[n]) || s[n] == '-' || s[n] == '_' || s[n] == '.'))
			return 0;
	return n > 0;
}

int model_check_env(const json_t *env, const char *field, char *msg, size_t len)
{
	const char *k;
	json_t *v;

	if (!json_is_object(env)) {
		snprintf(msg, len, "%s must be an object of string values", field);
		return -1;
	}
	if (json_object_size(env) > 256) {
		snprintf(msg, len, "%s has %zu entries; at most 256 are allowed", field,
			 json_object_size(env));
		return -1;
	}
	json_object_foreach ((json_t *)env, k, v) {
		size_t i;
		if (!json_is_string(v)) {
			snprintf(msg, len, "%s.%.64s must be a string", field, k);
			return -1;
		}
		if (!*k || strlen(k) > 128 || isdigit((unsigned char)k[0])) {
			snprintf(msg, len, "%s: '%.64s' is not a valid variable name", field, k);
			return -1;
		}
		for (i = 0; k[i]; i++)
			if (!isalnum((unsigned char)k[i]) && k[i] != '_') {
				snprintf(msg, len,
					 "%s: '%.64s' is not a valid variable name "
					 "([A-Za-z_][A-Za-z0-9_]*)",
					 field, k);
				return -1;
			}
		if (json_string_length(v) > 32768) {
			snprintf(msg, len, "%s.%.64s is longer than 32768 bytes", field, k);
			return -1;
		}
		if (memchr(json_string_value(v), '\0', json_string_length(v))) {
			snprintf(msg, len, "%s.%.64s contains a NUL byte", field, k);
			return -1;
		}
	}
	return 0;
}

json_t *model_session_view(struct server *srv, const json_t *rec)
{
	const json_t *res = json_object_get(rec, "resources");
	const json_t *h = json_object_get(rec, "handle");
	json_t *v;
	(void)srv;

	v = json_pack("{s:O?, s:O?, s:O?}", "id", json_object_get(rec, "id"), "template_id",
		      json_object_get(rec, "template_id"), "status",
		      json_object_get(rec, "status"));
	json_object_set_new(
	    v, "resource_limit",
	    json_pack("{s:O?, s:o, s:o, s:O?}", "cpu", json_object_get(res, "cpu"), "memory",
		      model_mib_string(json_integer_value(json_object_get(res, "memory_mb"))),
		      "disk", model_mib_string(json_integer_value(json_object_get(res, "disk_mb"))),
		      "max_processes", json_object_get(res, "max_processes")));
	json_object_set_new(v, "workspace_path", json_string("/workspace"));
	json_object_set_new(v, "runtime_type", get_or_null(rec, "runtime_type"));
	json_object_set_new(v, "runtime_node", get_or_null(rec, "runtime_node"));
	json_object_set_new(v, "sandbox_id", get_or_null(h, "sandbox_id"));
	json_object_set_new(v, "container_id", get_or_null(h, "container_id"));
	json_object_set_new(v, "pod_name", get_or_null(h, "pod_name"));
	json_object_set_new(v, "env_vars", get_or_null(rec, "env_vars"));
	json_object_set_new(v, "dependencies", get_or_null(rec, "dependencies"));
	json_object_set_new(v, "timeout", get_or_null(rec, "timeout"));
	json_object_set_new(v, "error_message", get_or_null(rec, "failure_reason"));
	/* warm: claimed from a warm pool; recoveries: sandboxes recreated by the probe */
	json_object_set_new(v, "warm", json_boolean(json_is_true(json_object_get(rec, "warm"))));
	if (json_object_get(rec, "recoveries"))
		json_object_set_new(v, "recoveries", get_or_null(rec, "recoveries"));
	{
		const json_t *a = json_object_get(rec, "workspace_archive");
		json_object_set_new(v, "workspace_archive",
				    json_is_object(a)
					? json_pack("{s:O?, s:o, s:O?}", "size",
						    json_object_get(a, "size"), "created_at",
						    services_iso(json_object_get(a, "created_at")),
						    "error", json_object_get(a, "error"))
					: json_null());
	}
	json_object_set_new(v, "restored_from", get_or_null(rec, "restored_from"));
	json_object_set_new(v, "created_at", services_iso(json_object_get(rec, "created_at")));
	json_object_set_new(v, "updated_at", services_iso(json_object_get(rec, "updated_at")));
	json_object_set_new(v, "completed_at", services_iso(json_object_get(rec, "completed_at")));
	json_object_set_new(v, "last_activity_at",
			    services_iso(json_object_get(rec, "last_activity_at")));
	return v;
}

json_t *model_execution_view(struct server *srv, const json_t *rec)
{
	static const char *const copy[] = {"session_id",
					   "status",
					   "code",
					   "language",
					   "timeout",
					   "exit_code",
					   "error_message",
					   "execution_time",
					   "stdout",
					   "stderr",
					   "return_value",
					   "stdout_truncated",
					   "stderr_truncated",
					   "return_value_truncated",
					   "artifacts",
					   "metrics"};
	json_t *v = json_object();
	(void)srv;

	json_object_set_new(v, "id", get_or_null(rec, "id"));
	json_object_set_new(v, "execution_id", get_or_null(rec, "id"));
	for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++)
		json_object_set_new(v, copy[i], get_or_null(rec, copy[i]));
	if (json_is_null(json_object_get(v, "artifacts")))
		json_object_set_new(v, "artifacts", json_array());
	json_object_set_new(v, "created_at", services_iso(json_object_get(rec, "created_at")));
	json_object_set_new(v, "started_at", services_iso(json_object_get(rec, "started_at")));
	json_object_set_new(v, "completed_at", services_iso(json_object_get(rec, "completed_at")));
	return v;
}

json_t *model_template_view(struct server *srv, const json_t *rec)
{
	json_t *v = json_object();
	(void)srv;

	for (size_t i = 0; model_template_fields[i]; i++)
		json_object_set_new(v, model_template_fields[i],
				    get_or_null(rec, model_template_fields[i]));
	json_object_set_new(v, "is_global",
			    json_boolean(json_is_null(json_object_get(rec, "tenant")) ||
					 !json_object_get(rec, "tenant")));
	json_object_set_new(v, "created_at", services_iso(json_object_get(rec, "created_at")));
	json_object_set_new(v, "updated_at", services_iso(json_object_get(rec, "updated_at")));
	return v;
}
