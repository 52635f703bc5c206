/*
 * Tests of the policy module `spread` (policy.h) through the built module file, with
 * scripted node inventories: the least loaded node by share of session slots, then share
 * of memory; template affinity ignored; the shared hard filters (unhealthy, full, memory,
 * CPU overcommit); the deterministic tie-break; malformed inventories; strict config. TAP.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/plugins/policy_inv.h"
#include "tests/tap.h"

static const struct sbx_policy_plugin *pp;

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

static void test_least_loaded(void *inst)
{
	struct pick k;

	k = run(pp, inst, py_request(),
		json_pack("[o, o, o]", node("a", 64, 8, 16384, 10, 1, 1000),
			  node("b", 64, 8, 16384, 2, 1, 9000), node("c", 64, 8, 16384, 5, 1, 100)));
	ok(chose(&k, "b"), "the node with the fewest sessions in use (2/64) is chosen");
	ok(strstr(k.reason, "least loaded: b (2/64 sessions, memory ") != NULL, "reason: '%s'",
	   k.reason);

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("small", 4, 8, 16384, 2, 1, 1000),
			  node("large", 64, 8, 16384, 10, 1, 1000)));
	ok(chose(&k, "large"), "load is a share of slots: 10/64 beats 2/4");

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 16384, 8, 1, 12000),
			  node("b", 64, 8, 16384, 8, 1, 4000)));
	ok(chose(&k, "b"), "equal slot shares: the lower share of memory allocated wins");
	ok(strstr(k.reason, "memory 24% allocated") != NULL, "reason: '%s'", k.reason);

	k = run(
	    pp, inst, py_request(),
	    json_pack("[o, o]", node("a", 64, 8, 16384, 1, 1, 1000),
		      with_cached(with_warm(node("b", 64, 8, 16384, 20, 1, 1000), "python-basic"),
				  "sandbox-template-python-basic:latest")));
	ok(chose(&k, "a"), "a warm pool does not draw spread onto a busier node");
}

static void test_filters(void *inst)
{
	struct pick k;
	json_t *sick = node("a", 64, 8, 16384, 0, 0, 0);

	json_object_set_new(sick, "healthy", json_false());
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", sick, node("b", 64, 8, 16384, 30, 1, 1000)));
	ok(chose(&k, "b"), "the least loaded node is unhealthy: the next one is chosen");

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 0, 8, 16384, 0, 0, 0),
			  node("b", 64, 8, 16384, 30, 1, 1000)));
	ok(chose(&k, "b"), "a node with 0/0 session slots is full");

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 64, 8, 2048, 1, 0, 1800),
			  node("b", 64, 8, 16384, 30, 1, 1000)));
	ok(chose(&k, "b"), "the least loaded by sessions has 248 MiB free for 512: skipped");

	k = run(pp, inst, request("t", "i", 4, 256),
		json_pack("[o, o]", node("a", 64, 2, 16384, 1, 6, 0),
			  node("b", 64, 8, 16384, 30, 1, 1000)));
	ok(chose(&k, "b"), "2 cores with 6 allocated (8 at 4x) cannot take 4 more");

	sick = node("b", 64, 8, 16384, 0, 0, 0);
	json_object_set_new(sick, "healthy", json_false());
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 16, 8, 16384, 16, 0, 0), sick));
	ok(k.rc == -SBX_E_LIMIT && strstr(k.err.message, "a full (16/16 sessions)") &&
	       strstr(k.err.message, "b unhealthy"),
	   "nothing passes: SBX_E_LIMIT naming each node's problem: '%s'", k.err.message);
}

static void test_overcommit_config(void)
{
	void *cpu1 = must_make("{\"cpu_overcommit\": 1}");
	void *mem2 = must_make("{\"memory_overcommit\": 2, \"cpu_overcommit\": 8.5}");
	struct pick k;

	k = run(pp, cpu1, py_request(), json_pack("[o]", node("a", 64, 2, 16384, 2, 2, 0)));
	ok(k.rc == -SBX_E_LIMIT && strstr(k.err.message, "CPU exhausted"),
	   "cpu_overcommit = 1: 2 of 2 cores allocated is CPU exhausted: '%s'", k.err.message);
	k = run(pp, mem2, py_request(), json_pack("[o]", node("a", 64, 2, 1024, 1, 2, 1000)));
	ok(chose(&k, "a"), "memory_overcommit = 2: 1048 of 2048 MiB free takes 512");
	pp->life.destroy(cpu1);
	pp->life.destroy(mem2);
}

static void test_tiebreak(void *inst)
{
	struct pick k;

	k = run(pp, inst, py_request(),
		json_pack("[o, o, o]", idle_node("n3"), idle_node("n1"), idle_node("n2")));
	ok(chose(&k, "n1"), "identical idle nodes: the lexically first id");
	k = run(pp, inst, py_request(),
		json_pack("[o, o, o]", idle_node("n2"), idle_node("n3"), idle_node("n1")));
	ok(chose(&k, "n1"), "and in another order too");

	/* both at 25% of slots and 0 memory: the one with more free slots */
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", node("a", 4, 8, 16384, 1, 0, 0),
			  node("b", 64, 8, 16384, 16, 0, 0)));
	ok(chose(&k, "b"), "equal shares: more free slots (48 vs 3) first");

	k = run(pp, inst, py_request(),
		json_pack("[o, o]", with(idle_node("x"), "runtime", json_string("zz")),
			  with(idle_node("x"), "runtime", json_string("aa"))));
	ok(chose(&k, "x") && !strcmp(k.runtime, "aa"), "then the lexically first runtime");
}

static void test_malformed(void *inst)
{
	struct pick k;
	json_t *nocap = idle_node("nocap"), *partial = idle_node("partial");

	k = run(pp, inst, py_request(), json_array());
	ok(k.rc == -SBX_E_LIMIT, "an empty inventory: SBX_E_LIMIT (%s)", k.err.message);
	k = run(pp, inst, py_request(), json_string("nodes"));
	ok(k.rc < 0, "an inventory that is not an array: an error");

	json_object_del(nocap, "capacity");
	k = run(pp, inst, py_request(),
		json_pack("[i, {s:s}, o, o]", 1, "id", "x", nocap,
			  node("busy", 64, 8, 16384, 63, 1, 1000)));
	ok(chose(&k, "busy"), "malformed entries are skipped");

	/* no max_sessions: its slot load is unknown and sorts after a reported one */
	json_object_del(json_object_get(partial, "capacity"), "max_sessions");
	k = run(pp, inst, py_request(),
		json_pack("[o, o]", partial, node("busy", 64, 8, 16384, 63, 1, 1000)));
	ok(chose(&k, "busy"), "a node reporting its load beats one that does not");
	partial = idle_node("partial");
	json_object_del(json_object_get(partial, "capacity"), "max_sessions");
	k = run(pp, inst, py_request(), json_pack("[o]", partial));
	ok(chose(&k, "partial") && strstr(k.reason, "no limit reported") != NULL,
	   "alone it is still chosen: '%s'", k.reason);
}

static void test_config(void)
{
	sbx_err err;
	void *inst;

	inst = make(pp, "{\"weight_warm\": 1}", &err);
	ok(!inst && err.code == SBX_E_INVALID &&
	       strstr(err.message, "spread policy 'pol-test': unknown config key 'weight_warm' "
				   "(expected cpu_overcommit, memory_overcommit)"),
	   "spread takes no weights: '%s'", err.message);
	inst = make(pp, "{\"cpu_overcommit\": -2}", &err);
	ok(!inst && strstr(err.message, "'cpu_overcommit' must be in 0.1..100, got -2"),
	   "a negative overcommit is refused: '%s'", err.message);
	inst = make(pp, "{\"memory_overcommit\": \"2\"}", &err);
	ok(!inst && strstr(err.message, "'memory_overcommit' must be a number"),
	   "a string overcommit is refused: '%s'", err.message);
}

int main(int argc, char **argv)
{
	struct fakecore_module mod;
	void *inst;

	pp = open_policy(argc, argv, "spread", &mod);
	ok(!strcmp(pp->hdr.name, "spread") && pp->select_node != NULL,
	   "the module is the spread policy with select_node");
	inst = must_make(NULL);
	test_least_loaded(inst);
	test_filters(inst);
	test_overcommit_config();
	test_tiebreak(inst);
	test_malformed(inst);
	test_config();
	pp->life.destroy(inst);
	fakecore_module_close(&mod);
	fakecore_cleanup();
	return tap_done();
}
