/*
 * The sandbox's seccomp policy (plugins/runtime/common/scpolicy.c, the one the linux
 * runtime compiles to BPF) as a profile in Docker's JSON format, sent with each container
 * as SecurityOpt "seccomp=<profile>" in place of the engine's default profile. Calls the
 * engine's libseccomp does not know on its architecture are skipped by the engine, as the
 * linux runtime skips them. No "architectures": the filter holds the native one only, and
 * a call made through another ABI (int 0x80) meets the filter's bad-architecture action.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "docker.h"
#include "plugins/runtime/common/scpolicy.h"

static const char *const op_name[] = {
    [SC_EQ] = "SCMP_CMP_EQ", [SC_MASKED_EQ] = "SCMP_CMP_MASKED_EQ"};

/* The entry without argument conditions that denies with `err`, made on first use. */
static json_t *plain_entry(json_t *syscalls, int err)
{
	json_t *e;
	size_t i;

	json_array_foreach (syscalls, i, e)
		if (!json_object_get(e, "args") &&
		    json_integer_value(json_object_get(e, "errnoRet")) == err)
			return e;
	e = json_pack("{s:[], s:s, s:i}", "names", "action", "SCMP_ACT_ERRNO", "errnoRet", err);
	if (e && json_array_append_new(syscalls, e) < 0)
		return NULL;
	return e;
}

int dk_seccomp_profile(char **out, sbx_err *err)
{
	json_t *prof, *syscalls, *e;
	size_t i;

	*out = NULL;
	prof = json_pack("{s:s, s:[]}", "defaultAction", "SCMP_ACT_ALLOW", "syscalls");
	syscalls = json_object_get(prof, "syscalls");
	if (!syscalls)
		goto oom;
	for (i = 0; i < sc_nrules; i++) {
		const struct sc_rule *r = &sc_rules[i];

		if (r->err <= 0 || r->arg > 5 || r->a > INT64_MAX || r->b > INT64_MAX ||
		    (r->op != SC_ANY && r->op != SC_EQ && r->op != SC_MASKED_EQ)) {
			json_decref(prof);
			return sbx_err_set(err, SBX_E_INTERNAL,
					   "docker runtime: seccomp rule %zu (%s) cannot be "
					   "expressed in a Docker profile",
					   i, r->name);
		}
		if (r->op == SC_ANY) {
			e = plain_entry(syscalls, r->err);
			if (!e || json_array_append_new(json_object_get(e, "names"),
							json_string(r->name)) < 0)
				goto oom;
			continue;
		}
		/* Docker's MASKED_EQ: "value" is the mask, "valueTwo" the expected bits, like
		 * libseccomp's datum_a and datum_b. */
		e = json_pack("{s:[s], s:s, s:i, s:[{s:i, s:I, s:I, s:s}]}", "names", r->name,
			      "action", "SCMP_ACT_ERRNO", "errnoRet", r->err, "args", "index",
			      (int)r->arg, "value", (json_int_t)r->a, "valueTwo", (json_int_t)r->b,
			      "op", op_name[r->op]);
		if (!e || json_array_append_new(syscalls, e) < 0)
			goto oom;
	}
	*out = json_dumps(prof, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(prof);
	return *out ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
oom:
	json_decref(prof);
	return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}
