/*
 * Validation of a POST /execute body into an execution record: the executor's only parser of
 * a request body it runs code from, kept apart from the HTTP plumbing so that it can be
 * tested and fuzzed on its own (tests/fuzz/fuzz_executor_request.c).
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"

static int valid_id(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > EXEC_ID_MAX)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._:-", *s))
			return 0;
	return 1;
}

static int valid_env_name(const char *s)
{
	if (!(isalpha((unsigned char)*s) || *s == '_'))
		return 0;
	for (s++; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return 0;
	return 1;
}

const char *request_parse_execute(const struct ctx *c, const json_t *b, struct execution *e,
				  char *why, size_t wn)
{
	json_t *v;
	const char *k, *lang;
	char *tmp;
	size_t n;

	if (!json_is_object(b))
		return "body must be a JSON object";
	v = json_object_get(b, "id");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v) || !valid_id(json_string_value(v)))
			return "id must be 1..128 characters of [A-Za-z0-9._:-]";
		strcpy(e->id, json_string_value(v));
	}
	v = json_object_get(b, "code");
	if (!json_is_string(v))
		return "code is required and must be a string";
	n = json_string_length(v);
	if (n > EXEC_CODE_MAX)
		return "code is larger than 1 MiB";
	if (strlen(json_string_value(v)) != n)
		return "code must not contain NUL characters";
	e->code = strdup(json_string_value(v));
	lang = json_string_value(json_object_get(b, "language"));
	if (!lang)
		return "language is required: python, javascript or shell";
	if (strcmp(lang, "python") == 0)
		e->lang = LANG_PYTHON;
	else if (strcmp(lang, "javascript") == 0)
		e->lang = LANG_JAVASCRIPT;
	else if (strcmp(lang, "shell") == 0)
		e->lang = LANG_SHELL;
	else
		return "language must be python, javascript or shell";
	e->timeout_ms = 30000;
	v = json_object_get(b, "timeout_ms");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 3600000)
			return "timeout_ms must be an integer in 1..3600000";
		e->timeout_ms = (long)json_integer_value(v);
	}
	e->max_output = c->max_output;
	v = json_object_get(b, "max_output");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > (1 << 30))
			return "max_output must be an integer in 0..1073741824";
		e->max_output = (size_t)json_integer_value(v);
	}
	v = json_object_get(b, "event");
	e->event = v && !json_is_null(v) ? json_incref(v) : json_object();
	tmp = json_dumps(e->event, JSON_COMPACT | JSON_ENCODE_ANY);
	n = tmp ? strlen(tmp) : 0;
	free(tmp);
	if (n > EXEC_EVENT_MAX)
		return "event is larger than 1 MiB once serialised";
	v = json_object_get(b, "session_id");
	if (json_is_string(v))
		e->session_id = json_incref(v);
	v = json_object_get(b, "env");
	if (v && !json_is_null(v) && !json_is_object(v))
		return "env must be an object of strings";
	if (json_object_size(v) > EXEC_ENV_MAX)
		return "env has more than 256 entries";
	e->env = json_object();
	if (json_is_object(v)) {
		json_t *val;
		json_object_foreach (v, k, val) {
			if (strlen(k) > EXEC_ENV_NAME_MAX || !valid_env_name(k)) {
				snprintf(why, wn,
					 "env name '%.64s' must match [A-Za-z_][A-Za-z0-9_]* "
					 "(at most 128 characters)",
					 k);
				return why;
			}
			if (!json_is_string(val)) {
				snprintf(why, wn, "env value of '%.64s' must be a string", k);
				return why;
			}
			if (json_string_length(val) > EXEC_ENV_VALUE_MAX ||
			    strlen(json_string_value(val)) != json_string_length(val)) {
				snprintf(why, wn,
					 "env value of '%.64s' is longer than 32768 bytes "
					 "or contains NUL",
					 k);
				return why;
			}
			json_object_set(e->env, k, val);
		}
	}
	return NULL;
}
