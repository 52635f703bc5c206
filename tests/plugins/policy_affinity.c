/*
 * Tests of the policy module `affinity` (policy.h) through the built module file, with
 * scripted node inventories: template affinity wins when capacity allows, full and
 * unhealthy nodes are never chosen, fallback to the best non-affine node, cached image
 * versus warm pool, configured weights and overcommit, the deterministic tie-break,
 * malformed inventories and requests, the refusal message and strict config. TAP.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/plugins/policy_inv.h"
#include "tests/tap.h"

static const struct sbx_policy_plugin *pp;

static const char *const PY_IMAGE = "sandbox-template-python-basic:latest";

/* An instance or a bail-out. */
static void *must_make(const char *config)
{
	sbx_err err;
	void *inst = make(pp, config, &err);

	if (!inst) {
		printf("Bail out! create(%s): %s\n", config ? config : "NULL", err.message);
		exit(1);
	}
	return inst;
}

static int chose(const struct pick *k, const char *node)
{
	return k->rc == 0 && !strcmp(k->node, node);
}

static void test_affinity_wins(void *inst)
{
	struct pick k;

	/* b is busier than a on every load measure but has python-basic warm */
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", idle_node("a"),
			  with_warm(node("b", 64, 8, 16384, 40, 20, 12000), "python-basic")));
	ok(chose(&k, "b"), "a warm node wins over an idle one when it has capacity");
	ok(!strcmp(k.runtime, "rt"), "the choice names the node's runtime instance");
	ok(strstr(k.reason, "warm pool of python-basic on b (score ") != NULL,
	   "the reason says warm pool of python-basic on b with a score: '%s'", k.reason);

	/* the object form {"template_id", "ready"} counts when ready > 0 */
	k = run(
	    pp, inst, py_request(),
	    json_pack("[o, o]", idle_node("a"),
		      with(node("b", 64, 8, 16384, 40, 20, 12000), "templates_warm",
			   json_pack("[{s:s, s:i}]", "template_id", "python-basic", "ready", 2))));
	ok(chose(&k, "b"), "templates_warm as [{template_id, ready: 2}] counts as warm");
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", idle_node("a"),
			  with(node("b", 64, 8, 16384, 40, 20, 12000), "templates_warm",
			       json_pack("[{s:s, s:i}, s]", "template_id", "python-basic", "ready",
					 0, "nodejs-basic"))));
	ok(chose(&k, "a"), "ready: 0 and another template's warm pool are not affinity");
}

static void test_full_never_chosen(void *inst)
{
	struct pick k;

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 16384, 50, 30, 14000),
			  with_warm(node("b", 64, 8, 16384, 64, 0, 0), "python-basic")));
	ok(chose(&k, "a"), "a warm node with 64/64 sessions is never chosen");
	ok(strstr(k.reason, "python-basic is warm on b but it is full (64/64 sessions)") != NULL,
	   "the reason says why the warm node lost: '%s'", k.reason);

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 16384, 50, 30, 14000),
			  with_warm(node("b", 64, 8, 4096, 3, 1, 3800), "python-basic")));
	ok(chose(&k, "a"), "a warm node with 296 MiB free for a 512 MiB session is not chosen");
	ok(strstr(k.reason, "memory exhausted") != NULL, "the reason says memory exhausted: '%s'",
	   k.reason);

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 16384, 50, 30, 14000),
			  with_warm(node("b", 64, 8, 16384, 70, 0, 0), "python-basic")));
	ok(chose(&k, "a"), "a node reporting more sessions than slots (70/64) is not chosen");
}

static void test_unhealthy_never_chosen(void *inst)
{
	struct pick k;
	json_t *b;

	b = with_warm(with_cached(idle_node("b"), PY_IMAGE), "python-basic");
	json_object_set_new(b, "healthy", json_false());
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 16384, 60, 30, 15000), b));
	ok(chose(&k, "a"), "an unhealthy warm, cached, idle node is never chosen");

	b = with_warm(idle_node("b"), "python-basic");
	json_object_del(b, "healthy");
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 16384, 60, 30, 15000), b));
	ok(chose(&k, "a"), "a node that does not report \"healthy\" is not chosen");

	b = with_warm(idle_node("b"), "python-basic");
	json_object_set_new(b, "healthy", json_string("true"));
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 16384, 60, 30, 15000), b));
	ok(chose(&k, "a"), "\"healthy\": \"true\" (a string) is not healthy");
}

static void test_fallback(void *inst)
{
	struct pick k;

	k = run(pp, inst, py_request(),
		json_pack("[o, o, o]", node("a", 64, 8, 16384, 30, 10, 8000),
			  with_warm(node("b", 64, 8, 16384, 64, 0, 0), "python-basic"),
			  node("c", 64, 8, 16384, 5, 2, 1000)));
	ok(chose(&k, "c"), "no affine node passes: the least loaded non-affine node is chosen");
	ok(strstr(k.reason, "most free capacity on c") != NULL, "reason: '%s'", k.reason);

	k = run(pp, inst, request("no-such-template", "no-such-image", 1, 512),
		json_pack("[o, o]", node("a", 64, 8, 16384, 30, 10, 8000),
			  node("c", 64, 8, 16384, 5, 2, 1000)));
	ok(chose(&k, "c"), "no affinity anywhere: the least loaded node");

	k = run(pp, inst, request("python-basic", PY_IMAGE, 1, 512),
		json_pack("[o]", node("only", 64, 8, 16384, 63, 31, 15000)));
	ok(chose(&k, "only"), "one nearly full node that still passes is chosen, never a failure");
}

static void test_cached_vs_warm(void *inst)
{
	struct pick k;

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 16384, 10, 2, 2000),
			  with_cached(node("b", 64, 8, 16384, 10, 2, 2000), PY_IMAGE)));
	ok(chose(&k, "b"), "a cached image beats nothing under equal load");
	ok(strstr(k.reason, "cached on b") != NULL, "reason: '%s'", k.reason);

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", with_cached(node("a", 64, 8, 16384, 10, 2, 2000), PY_IMAGE),
			  with_warm(node("b", 64, 8, 16384, 10, 2, 2000), "python-basic")));
	ok(chose(&k, "b"), "a warm pool beats a cached image under equal load");

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", with_cached(idle_node("a"), PY_IMAGE),
			  with_warm(node("b", 64, 8, 16384, 50, 6, 12000), "python-basic")));
	ok(chose(&k, "b"), "with the default weights a warm pool beats an idle cached node");

	/* the linux runtime reports images_cached as an object keyed by image name */
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 16384, 10, 2, 2000),
			  with(node("b", 64, 8, 16384, 10, 2, 2000), "images_cached",
			       json_pack("{s:{}}", PY_IMAGE))));
	ok(chose(&k, "b"), "images_cached as an object keyed by image name counts");
}

static void test_weights(void)
{
	void *no_aff = must_make("{\"weight_warm\": 0, \"weight_cached\": 0}");
	void *mem_only = must_make("{\"weight_cpu\": 0, \"weight_slots\": 0, \"weight_warm\": 0, "
				   "\"weight_cached\": 0, \"weight_memory\": 1}");
	void *slots_only = must_make("{\"weight_cpu\": 0, \"weight_memory\": 0, \"weight_warm\": "
				     "0, \"weight_cached\": 0, \"weight_slots\": 2.5}");
	void *cached_heavy = must_make("{\"weight_cached\": 10}");
	void *dflt = must_make(NULL);
	struct pick k;

	k = run(pp, no_aff, py_request(),
		json_pack("[o, o]", idle_node("a"),
			  with_warm(node("b", 64, 8, 16384, 40, 20, 12000), "python-basic")));
	ok(chose(&k, "a"), "weight_warm = 0: the idle node beats the busy warm one");
	ok(strstr(k.reason, "most free capacity") != NULL, "reason: '%s'", k.reason);

	/* x: many free slots, little free memory; y: the opposite */
	k = run(pp, mem_only, py_request(),
		json_pack("[o, o]", node("x", 64, 8, 16384, 2, 1, 14000),
			  node("y", 64, 8, 16384, 50, 1, 1000)));
	ok(chose(&k, "y"), "only weight_memory: the node with the most free memory");
	k = run(pp, slots_only, py_request(),
		json_pack("[o, o]", node("x", 64, 8, 16384, 2, 1, 14000),
			  node("y", 64, 8, 16384, 50, 1, 1000)));
	ok(chose(&k, "x"), "only weight_slots: the node with the most free session slots");

	k = run(pp, cached_heavy, py_request(),
		json_pack("[o, o]", with_cached(idle_node("a"), PY_IMAGE),
			  with_warm(node("b", 64, 8, 16384, 10, 2, 2000), "python-basic")));
	ok(chose(&k, "a"), "weight_cached 10 > weight_warm 6: the cached node wins");

	/* instances do not share state: a default one beside them still prefers warm */
	k = run(pp, dflt, py_request(),
		json_pack("[o, o]", with_cached(idle_node("a"), PY_IMAGE),
			  with_warm(node("b", 64, 8, 16384, 10, 2, 2000), "python-basic")));
	ok(chose(&k, "b"), "a default instance alongside picks warm on the same inventory");
	pp->life.destroy(dflt);
	pp->life.destroy(no_aff);
	pp->life.destroy(mem_only);
	pp->life.destroy(slots_only);
	pp->life.destroy(cached_heavy);
}

static void test_overcommit(void *inst)
{
	void *strict_cpu = must_make("{\"cpu_overcommit\": 1}");
	void *mem_x2 = must_make("{\"memory_overcommit\": 2.0}");
	struct pick k;

	/* 2 cores with 6 allocated: 8 effective at 4x, 2 free */
	k = run(pp, inst, py_request(), json_pack("[o]", node("a", 64, 2, 16384, 6, 6, 3000)));
	ok(chose(&k, "a"), "CPU is overcommitted 4x by default (6 of 2 cores allocated, 1 asked)");
	k = run(pp, strict_cpu, py_request(),
		json_pack("[o]", node("a", 64, 2, 16384, 6, 6, 3000)));
	ok(k.rc == -SBX_E_LIMIT && strstr(k.err.message, "a CPU exhausted") != NULL,
	   "cpu_overcommit = 1: the same node is CPU exhausted: '%s'", k.err.message);

	k = run(pp, inst, py_request(), json_pack("[o]", node("a", 64, 8, 1024, 1, 1, 1000)));
	ok(k.rc == -SBX_E_LIMIT && strstr(k.err.message, "memory exhausted") != NULL,
	   "memory is not overcommitted by default: '%s'", k.err.message);
	k = run(pp, mem_x2, py_request(), json_pack("[o]", node("a", 64, 8, 1024, 1, 1, 1000)));
	ok(chose(&k, "a"), "memory_overcommit = 2: 1048 of 2048 MiB free takes 512");
	pp->life.destroy(strict_cpu);
	pp->life.destroy(mem_x2);
}

static void test_tiebreak(void *inst)
{
	void *no_slots = must_make("{\"weight_slots\": 0}");
	static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
					{1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
	const char *ids[3] = {"n2", "n1", "n3"};
	int same = 1;
	struct pick k;

	for (int p = 0; p < 6; p++) {
		json_t *nodes = json_array();

		for (int i = 0; i < 3; i++)
			json_array_append_new(nodes, idle_node(ids[perms[p][i]]));
		k = run(pp, inst, py_request(), nodes);
		same = same && chose(&k, "n1");
	}
	ok(same, "three identical nodes in all 6 orders: always n1 (lexical id)");

	/* equal scores without the slot weight: more free slots first, whatever the name */
	k = run(pp, no_slots, py_request(),
		json_pack("[o, o]", node("a-small", 32, 8, 16384, 0, 0, 0),
			  node("b-big", 64, 8, 16384, 0, 0, 0)));
	ok(chose(&k, "b-big"), "equal score: the node with more free slots wins");

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", with(idle_node("n"), "runtime", json_string("rt-b")),
			  with(idle_node("n"), "runtime", json_string("rt-a"))));
	ok(chose(&k, "n") && !strcmp(k.runtime, "rt-a"),
	   "the same id on two runtimes: the lexically first runtime (%s)", k.runtime);
	pp->life.destroy(no_slots);
}

static void test_refusal(void *inst)
{
	struct pick k;
	json_t *b = idle_node("node-b"), *many = json_array();

	json_object_set_new(b, "healthy", json_false());
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("node-a", 64, 8, 16384, 64, 10, 3000), b));
	ok(k.rc == -SBX_E_LIMIT, "no node passes: SBX_E_LIMIT (rc %d)", k.rc);
	ok(strstr(k.err.message, "no node can take the session") != NULL &&
	       strstr(k.err.message, "node-a full (64/64 sessions)") != NULL &&
	       strstr(k.err.message, "node-b unhealthy") != NULL,
	   "the message names each node and why: '%s'", k.err.message);

	for (int i = 0; i < 1000; i++) {
		char id[64];

		snprintf(id, sizeof id, "node-%04d-with-a-long-name-for-the-message", i);
		json_array_append_new(many, node(id, 8, 8, 16384, 8, 0, 0));
	}
	k = run(pp, inst, py_request(), many);
	ok(k.rc == -SBX_E_LIMIT && strstr(k.err.message, "more") != NULL &&
	       strlen(k.err.message) < SBX_ERR_MSG_MAX - 1,
	   "1000 full nodes: a bounded message ending 'and N more' (%zu bytes)",
	   strlen(k.err.message));

	/* warm candidates are named first */
	k = run(pp, inst, py_request(),
		json_pack("[o, o, o, o, o, o, o]", node("a1", 1, 8, 16384, 1, 0, 0),
			  node("a2", 1, 8, 16384, 1, 0, 0), node("a3", 1, 8, 16384, 1, 0, 0),
			  node("a4", 1, 8, 16384, 1, 0, 0), node("a5", 1, 8, 16384, 1, 0, 0),
			  node("a6", 1, 8, 16384, 1, 0, 0),
			  with_warm(node("z-warm", 1, 8, 16384, 1, 0, 0), "python-basic")));
	ok(k.rc == -SBX_E_LIMIT && strstr(k.err.message, "): z-warm full") != NULL,
	   "the warm node is named first: '%s'", k.err.message);

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", with(idle_node("n"), "runtime", json_string("rt-b")),
			  with(node("m", 4, 8, 16384, 4, 0, 0), "runtime", json_string("rt-a"))));
	ok(chose(&k, "n") && strstr(k.reason, "rt-b/n") != NULL,
	   "with several runtimes nodes are named runtime/id: '%s'", k.reason);
}

static void test_malformed(void *inst)
{
	struct pick k;
	json_t *nocap = idle_node("nocap"), *strcpu = idle_node("strcpu");
	json_t *badalloc = idle_node("badalloc"), *neg = idle_node("neg"), *partial;

	k = run(pp, inst, py_request(), json_array());
	ok(k.rc == -SBX_E_LIMIT && strstr(k.err.message, "report no nodes") != NULL,
	   "an empty inventory: SBX_E_LIMIT saying no nodes are reported: '%s'", k.err.message);
	k = run(pp, inst, py_request(), json_object());
	ok(k.rc < 0 && k.rc != -SBX_E_LIMIT, "an inventory that is not an array: an error");
	k = run(pp, inst, py_request(), json_null());
	ok(k.rc < 0, "a null inventory: an error");

	json_object_del(nocap, "capacity");
	json_object_set_new(json_object_get(strcpu, "capacity"), "cpu", json_string("8"));
	json_object_set_new(badalloc, "allocated", json_string("lots"));
	json_object_set_new(json_object_get(neg, "allocated"), "sessions", json_integer(-3));
	k = run(pp, inst, py_request(),
		json_pack("[s, i, n, {}, {s:s}, o, o, o, o]", "garbage", 42, "runtime", "rt",
			  with_warm(nocap, "python-basic"), with_warm(strcpu, "python-basic"),
			  with_warm(badalloc, "python-basic"), with_warm(neg, "python-basic")));
	ok(k.rc == -SBX_E_LIMIT, "only malformed entries: SBX_E_LIMIT, no crash (rc %d)", k.rc);
	ok(strstr(k.err.message, "nocap reports no capacity") != NULL &&
	       strstr(k.err.message, "strcpu malformed (capacity.cpu") != NULL &&
	       strstr(k.err.message, "badalloc malformed (allocated is not an object)") != NULL &&
	       strstr(k.err.message, "neg malformed (allocated.sessions") != NULL,
	   "each malformed node is named with its defect: '%s'", k.err.message);

	nocap = idle_node("nocap");
	json_object_del(nocap, "capacity");
	k = run(pp, inst, py_request(),
		json_pack("[s, n, {s:i}, o, o]", "garbage", "id", 7,
			  with_warm(nocap, "python-basic"),
			  node("good", 64, 8, 16384, 60, 7, 15000)));
	ok(chose(&k, "good"), "malformed entries are skipped, the well-formed node is chosen");

	/* members a runtime may not report: unknown, not a limit, no score */
	partial = idle_node("partial");
	json_object_del(json_object_get(partial, "capacity"), "max_sessions");
	json_object_del(json_object_get(partial, "capacity"), "cpu");
	json_object_del(partial, "allocated");
	json_object_del(partial, "templates_warm");
	json_object_set_new(partial, "images_cached", json_integer(3));
	k = run(pp, inst, py_request(), json_pack("[o]", partial));
	ok(chose(&k, "partial"), "a node without max_sessions, cpu or allocated can be chosen");
	partial = idle_node("partial");
	json_object_del(json_object_get(partial, "capacity"), "max_sessions");
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", partial, node("full-report", 64, 8, 16384, 0, 0, 0)));
	ok(chose(&k, "full-report"), "a node reporting free slots beats one reporting none");

	/* integer capacities (as the linux runtime reports them) */
	k = run(
	    pp, inst, py_request(),
	    json_loads("[{\"id\": \"int\", \"runtime\": \"local\", \"healthy\": true, "
		       "\"capacity\": {\"cpu\": 2, \"memory_mb\": 7937, \"max_sessions\": 256}, "
		       "\"allocated\": {\"cpu\": 0.5, \"memory_mb\": 512, \"sessions\": 1}, "
		       "\"templates_warm\": [], \"images_cached\": {\"python:3.11\": {}}}]",
		       0, NULL));
	ok(chose(&k, "int") && !strcmp(k.runtime, "local"), "an inventory with integer capacities");

	k = run(pp, inst, json_pack("{s:s, s:{s:s}}", "template_id", "t", "resources", "cpu", "1"),
		json_pack("[o]", idle_node("a")));
	ok(k.rc == -SBX_E_INVALID && strstr(k.err.message, "resources.cpu") != NULL,
	   "a request with resources.cpu a string: SBX_E_INVALID naming it: '%s'", k.err.message);
	k = run(pp, inst, json_pack("{s:{s:f}}", "resources", "memory_mb", -5.0),
		json_pack("[o]", idle_node("a")));
	ok(k.rc == -SBX_E_INVALID, "a negative memory request: SBX_E_INVALID");
	k = run(pp, inst, json_string("req"), json_pack("[o]", idle_node("a")));
	ok(k.rc == -SBX_E_INVALID, "a request that is not an object: SBX_E_INVALID");
	k = run(pp, inst, json_object(), json_pack("[o]", idle_node("a")));
	ok(chose(&k, "a"), "a request without template, image or resources still places");
}

static void test_config(void)
{
	static const struct {
		const char *config, *needle, *what;
	} bad[] = {
	    {"{\"weight_gpu\": 1}", "unknown config key 'weight_gpu'", "an unknown key"},
	    {"{\"weight_cpu\": -1}", "'weight_cpu' must be in 0..1000, got -1",
	     "a negative weight"},
	    {"{\"weight_warm\": \"high\"}", "'weight_warm' must be a number", "a string weight"},
	    {"{\"weight_cached\": true}", "'weight_cached' must be a number", "a boolean weight"},
	    {"{\"cpu_overcommit\": 0}", "'cpu_overcommit' must be in 0.1..100", "overcommit 0"},
	    {"{\"memory_overcommit\": 50}", "'memory_overcommit' must be in 0.1..10",
	     "memory overcommit 50"},
	    {"{\"weight_cpu\": 0, \"weight_memory\": 0, \"weight_slots\": 0, \"weight_warm\": 0, "
	     "\"weight_cached\": 0}",
	     "every weight is 0", "all weights 0"},
	    {"[1]", "config must be a group", "a config that is not a group"},
	};
	sbx_err err;
	void *inst;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		inst = make(pp, bad[i].config, &err);
		ok(!inst && err.code == SBX_E_INVALID && strstr(err.message, bad[i].needle) &&
		       strstr(err.message, "affinity policy 'pol-test'"),
		   "config with %s is refused: '%s'", bad[i].what, err.message);
		if (inst)
			pp->life.destroy(inst);
	}
	inst = make(pp,
		    "{\"weight_cpu\": 2, \"weight_memory\": 0.5, \"weight_slots\": 1, "
		    "\"weight_warm\": 8, \"weight_cached\": 3, \"cpu_overcommit\": 2, "
		    "\"memory_overcommit\": 1.5}",
		    &err);
	ok(inst != NULL, "every key with integer and real values is accepted (%s)", err.message);
	if (inst)
		pp->life.destroy(inst);
	inst = make(pp, "{}", &err);
	ok(inst != NULL, "an empty config group is accepted");
	if (inst)
		pp->life.destroy(inst);
}

int main(int argc, char **argv)
{
	struct fakecore_module mod;
	void *inst;

	pp = open_policy(argc, argv, "affinity", &mod);
	ok(!strcmp(pp->hdr.name, "affinity") && pp->select_node && pp->life.create &&
	       pp->life.destroy,
	   "the module is the affinity policy with select_node");
	inst = must_make(NULL);
	test_affinity_wins(inst);
	test_full_never_chosen(inst);
	test_unhealthy_never_chosen(inst);
	test_fallback(inst);
	test_cached_vs_warm(inst);
	test_weights();
	test_overcommit(inst);
	test_tiebreak(inst);
	test_refusal(inst);
	test_malformed(inst);
	test_config();
	pp->life.destroy(inst);
	fakecore_module_close(&mod);
	fakecore_cleanup();
	return tap_done();
}
