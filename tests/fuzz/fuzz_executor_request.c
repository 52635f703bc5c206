/*
 * libFuzzer target: the executor's validation of a POST /execute body
 * (request_parse_execute in executor/request.c), on the input parsed as JSON the way
 * executor/http.c does it.
 *
 * Invariants: either a refusal with a non-empty message, or an execution the runner can
 * take as it is: code a NUL-free string of at most 1 MiB, a known language, timeout and
 * output cap in range, an event, an id that is empty or 1..128 safe characters, and env an
 * object of at most 256 well-named NUL-free strings. Everything set is freed (LeakSanitizer),
 * also after a refusal.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int name_ok(const char *k)
{
	if (!*k || strlen(k) > EXEC_ENV_NAME_MAX || !(isalpha((unsigned char)*k) || *k == '_'))
		return 0;
	for (k++; *k; k++)
		if (!(isalnum((unsigned char)*k) || *k == '_'))
			return 0;
	return 1;
}

static void check_job(const struct execution *e)
{
	const char *k;
	json_t *v;

	if (!e->code || strlen(e->code) > EXEC_CODE_MAX)
		abort();
	if (e->lang != LANG_PYTHON && e->lang != LANG_JAVASCRIPT && e->lang != LANG_SHELL)
		abort();
	if (e->timeout_ms < 1 || e->timeout_ms > 3600000 || e->max_output > (1u << 30))
		abort();
	if (!e->event || (e->session_id && !json_is_string(e->session_id)))
		abort();
	if (strlen(e->id) > EXEC_ID_MAX)
		abort();
	for (const char *p = e->id; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._:-", *p))
			abort();
	if (!json_is_object(e->env) || json_object_size(e->env) > EXEC_ENV_MAX)
		abort();
	json_object_foreach ((json_t *)e->env, k, v) {
		if (!name_ok(k) || !json_is_string(v) ||
		    json_string_length(v) > EXEC_ENV_VALUE_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c;
	struct execution e;
	char why[256];
	const char *msg;
	json_t *b = json_loadb((const char *)data, size, 0, NULL);

	if (!b)
		return 0;
	memset(&c, 0, sizeof c);
	c.max_output = 1 << 20;
	memset(&e, 0, sizeof e);
	why[0] = '\0';
	msg = request_parse_execute(&c, b, &e, why, sizeof why);
	if (msg && !*msg)
		abort();
	if (!msg)
		check_job(&e);
	/* as registry.c frees a record */
	free(e.code);
	json_decref(e.event);
	json_decref(e.env);
	json_decref(e.session_id);
	json_decref(b);
	return 0;
}
