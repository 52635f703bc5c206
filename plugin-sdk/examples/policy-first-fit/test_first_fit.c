/*
 * Unit test of the first-fit policy with a fake core table: no sbxd needed. The module's
 * source is linked in directly and driven through its descriptor, as the core would.
 * Prints TAP.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sandbox/core.h>
#include <sandbox/policy.h>

const struct sbx_plugin_header *sbx_plugin_entry(void);

static int failed, n;
static char last_error[SBX_ERR_MSG_MAX]; /* message of the last failed call */

static void check(int cond, const char *what)
{
	printf("%sok %d - %s\n", cond ? "" : "not ", ++n, what);
	if (!cond)
		failed = 1;
}

static void fake_log(const char *who, int level, const char *fmt, ...)
{
	va_list ap;

	printf("# [%s/%d] ", who, level);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static int64_t fake_ms(void)
{
	return 0;
}

/* Only the members a policy may use; the others stay NULL, which a real module must not
 * call on the scheduler thread anyway. */
static const struct sbx_core_api fake_core = {
    .size = sizeof(struct sbx_core_api),
    .abi_major = SBX_ABI_MAJOR,
    .abi_minor = SBX_ABI_MINOR,
    .log = fake_log,
    .now_ms = fake_ms,
    .monotonic_ms = fake_ms,
};

static const char *inventory =
    "[{\"id\": \"n1\", \"runtime\": \"linux\", \"healthy\": false,"
    "  \"capacity\": {\"cpu\": 8, \"memory_mb\": 8192, \"max_sessions\": 10},"
    "  \"allocated\": {\"cpu\": 0, \"memory_mb\": 0, \"sessions\": 0}},"
    " {\"id\": \"n2\", \"runtime\": \"linux\", \"healthy\": true,"
    "  \"capacity\": {\"cpu\": 2, \"memory_mb\": 2048, \"max_sessions\": 10},"
    "  \"allocated\": {\"cpu\": 1.5, \"memory_mb\": 512, \"sessions\": 3}},"
    " {\"id\": \"n3\", \"runtime\": \"docker\", \"healthy\": true,"
    "  \"capacity\": {\"cpu\": 4, \"memory_mb\": 4096, \"max_sessions\": 2},"
    "  \"allocated\": {\"cpu\": 0, \"memory_mb\": 0, \"sessions\": 2}},"
    " {\"id\": \"n4\", \"runtime\": \"docker\", \"healthy\": true,"
    "  \"capacity\": {\"cpu\": 4, \"memory_mb\": 4096, \"max_sessions\": 10},"
    "  \"allocated\": {\"cpu\": 1, \"memory_mb\": 1024, \"sessions\": 1},"
    "  \"templates_warm\": [\"python-basic\"]},"
    " {\"id\": \"n5\", \"runtime\": \"docker\", \"healthy\": true,"
    "  \"capacity\": {\"cpu\": 16, \"memory_mb\": 16384, \"max_sessions\": 10},"
    "  \"allocated\": {\"cpu\": 0, \"memory_mb\": 0, \"sessions\": 0},"
    "  \"templates_warm\": [\"node-basic\"]}]";

/* Runs select_node on a fresh instance made from config_text; returns the chosen node id
 * (static buffer) or the error code as text. */
static const char *pick(const struct sbx_policy_plugin *p, const char *config_text,
			const char *request_text)
{
	static char out[64];
	json_t *config = json_loads(config_text, 0, NULL);
	json_t *req = json_loads(request_text, 0, NULL);
	json_t *nodes = json_loads(inventory, 0, NULL);
	json_t *choice = NULL;
	void *inst = NULL;
	sbx_err err = {0};
	int rc;

	rc = p->life.create(&fake_core, "ff-test", config, &inst, &err);
	if (rc == 0) {
		rc = p->select_node(inst, req, nodes, &choice, &err);
		p->life.destroy(inst);
	}
	if (rc == 0)
		snprintf(out, sizeof out, "%s", json_string_value(json_object_get(choice, "node")));
	else
		snprintf(out, sizeof out, "error %d", -rc);
	snprintf(last_error, sizeof last_error, "%s", err.message);
	if (rc != 0)
		printf("# %s\n", err.message);
	json_decref(choice);
	json_decref(nodes);
	json_decref(req);
	json_decref(config);
	return out;
}

int main(void)
{
	const struct sbx_plugin_header *h = sbx_plugin_entry();
	const struct sbx_policy_plugin *p = (const struct sbx_policy_plugin *)h;
	char limit[32];

	snprintf(limit, sizeof limit, "error %d", SBX_E_LIMIT);
	check(h->magic == SBX_PLUGIN_MAGIC && h->kind == SBX_KIND_POLICY, "descriptor header");
	check(SBX_HAS_MEMBER(p, struct sbx_policy_plugin, select_node), "select_node present");

	check(strcmp(pick(p, "{}", "{\"resources\": {\"cpu\": 0.5, \"memory_mb\": 256}}"), "n2") ==
		  0,
	      "small session goes to the first healthy node that fits (n2)");
	check(strcmp(pick(p, "{}", "{\"resources\": {\"cpu\": 1, \"memory_mb\": 256}}"), "n4") == 0,
	      "skips a node short of CPU and a node without a free session slot (n4)");
	check(strcmp(pick(p, "{\"reserve_memory_mb\": 1400}",
			  "{\"resources\": {\"cpu\": 0.5, \"memory_mb\": 256}}"),
		     "n4") == 0,
	      "reserve_memory_mb is kept free (n2 skipped)");
	check(strcmp(pick(p, "{\"prefer_warm\": true}",
			  "{\"template_id\": \"node-basic\", \"resources\": {\"cpu\": 0.5}}"),
		     "n5") == 0,
	      "prefer_warm picks the first warm node that fits (n5)");
	check(strcmp(pick(p, "{}", "{\"resources\": {\"cpu\": 64}}"), limit) == 0,
	      "no node fits: SBX_E_LIMIT");

	{
		char invalid[32];

		snprintf(invalid, sizeof invalid, "error %d", SBX_E_INVALID);
		check(strcmp(pick(p, "{\"reserve_memroy_mb\": 1}", "{}"), invalid) == 0,
		      "unknown config key refused");
		check(strstr(last_error, "reserve_memroy_mb") != NULL,
		      "the refusal names the unknown key");
		check(strcmp(pick(p, "{\"reserve_memory_mb\": -1}", "{}"), invalid) == 0,
		      "negative reserve refused");
	}
	printf("1..%d\n", n);
	return failed;
}
