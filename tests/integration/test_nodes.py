"""The node registry (issue 6 item 1): GET /api/v1/nodes and what /health/detailed gained
(replica, nodes, warm_pools), on the suite's daemon; and, on a private daemon with the
apikey auth plugin and warm pools, who may read them and which templates are pooled (only
global ones: a tenant's template never reserves sandboxes)."""

import os
import time

import pytest

import sbxd_harness
from auth_helpers import AuthSbxd
from sbxclient import Client, assert_error, uid, wait_until

NODE_KEYS = {"id", "runtime", "healthy", "capacity", "allocated", "templates_warm",
             "images_cached"}


def check_node(n):
    assert NODE_KEYS <= set(n), n
    assert isinstance(n["id"], str) and isinstance(n["runtime"], str), n
    assert isinstance(n["healthy"], bool), n
    cap, alloc = n["capacity"], n["allocated"]
    assert {"cpu", "memory_mb", "max_sessions"} <= set(cap), n
    assert {"cpu", "memory_mb", "sessions"} <= set(alloc), n
    assert cap["cpu"] > 0 and cap["memory_mb"] > 0 and cap["max_sessions"] >= 1, n
    assert alloc["cpu"] >= 0 and alloc["memory_mb"] >= 0 and alloc["sessions"] >= 0, n
    assert isinstance(n["templates_warm"], list), n
    for t in n["templates_warm"]:
        assert set(t) >= {"template_id", "ready"} and t["ready"] >= 1, t


def test_nodes_lists_every_runtime_node_with_capacity_and_allocation(api, make_session):
    r = api.get("/nodes")
    assert r.status == 200, r
    body = r.body
    assert set(body) >= {"items", "total", "errors", "warm_pools"}, body
    assert body["total"] == len(body["items"]) >= 1, body
    assert body["errors"] == [], body
    for n in body["items"]:
        check_node(n)
    assert any(n["healthy"] for n in body["items"]), body
    assert set(body["warm_pools"]) >= {"hits", "misses", "ready"}, body
    # A live session shows in the allocation of its node.
    s = make_session("python-basic")
    node = s["runtime_node"]

    def allocated():
        return {(n["runtime"], n["id"]): n["allocated"] for n in api.get("/nodes").body["items"]}
    mine = [a for (rt, nid), a in allocated().items() if nid == node]
    assert mine and all(a["sessions"] >= 1 and a["memory_mb"] >= 512 for a in mine), (
        node, allocated())


def test_health_detailed_reports_replica_leases_nodes_and_pools(api):
    r = api.get("/health/detailed")
    assert r.status == 200, r
    rep = r.body["replica"]
    assert isinstance(rep["id"], str) and rep["id"], rep
    assert isinstance(rep["boot"], str) and rep["boot"], rep
    assert set(rep["leases"]) >= {"reaper", "probe", "state_sync"}, rep
    assert all(isinstance(v, bool) for v in rep["leases"].values()), rep
    assert isinstance(rep["lease_ttl_ms"], int) and rep["lease_ttl_ms"] >= 1000, rep
    assert isinstance(r.body["nodes"], list) and r.body["nodes"], r.body
    for n in r.body["nodes"]:
        check_node(n)
    assert set(r.body["warm_pools"]) >= {"hits", "misses", "ready"}, r.body


@pytest.fixture(scope="module")
def authd():
    if os.environ.get("SBXD_URL"):
        pytest.skip("SBXD_URL set: starts its own sbxd with the apikey plugin")
    try:
        d = AuthSbxd()
    except sbxd_harness.NotAvailable as e:
        pytest.skip(str(e))
    derived = None
    try:
        derived = sbxd_harness.DerivedConfig(
            {"warm_pools": {"size": 0}, "sessions": {"sync_interval_ms": 3600000}},
            own_database=False, base=d.config)  # d.config has d's own database
        d.config = derived.path
        for label, tenant, role in (("admin", "ops", "admin"), ("user", "tenant-a", "user"),
                                    ("reader", "tenant-a", "read-only")):
            d.create_key(label, tenant, role)
        d.start()
        yield d
        d.stop_and_check()
    finally:
        d.cleanup()
        if derived:
            derived.cleanup()


@pytest.mark.own_daemon
def test_nodes_needs_a_read_role(authd):
    assert_error(Client(authd.url).get("/nodes"), 401, "Sandbox.Unauthorized")
    assert_error(authd.kc(key="sbx_0000000000000000_" + "A" * 43).get("/nodes"), 401)
    for label in ("reader", "user", "admin"):
        r = authd.kc(label=label).get("/nodes")
        assert r.status == 200, (label, r)
        assert r.body["total"] >= 1, r
        r = authd.kc(label=label).get("/health/detailed")
        assert r.status == 200 and "replica" in r.body, (label, r)


@pytest.mark.own_daemon
def test_only_global_templates_are_pooled(authd):
    admin, user = authd.kc(label="admin"), authd.kc(label="user")
    body = {"image_url": "sandbox-template-python-basic:latest", "runtime_type": "python3.11",
            "default_cpu_cores": 0.5, "default_memory_mb": 128, "default_disk_mb": 64,
            "warm_pool_size": 2}
    glob = dict(body, id=uid("glob"), name="global pooled")
    by_admin = dict(body, id=uid("tadm"), name="tenant's, by admin", tenant="tenant-a")
    by_user = dict(body, id=uid("tusr"), name="tenant's, by user")
    assert admin.post("/templates", json=glob).status == 201
    assert admin.post("/templates", json=by_admin).status == 201
    r = user.post("/templates", json=by_user)
    assert r.status == 201, r
    made = []
    try:
        def pools():
            return {p["template_id"]: p["ready"]
                    for p in admin.get("/nodes").body["warm_pools"]["ready"]}
        wait_until(lambda: pools().get(glob["id"]) == 2 or None, 20, interval=0.2,
                   what="the global template's pool")
        time.sleep(2)  # two more filler passes: the tenants' templates stay unpooled
        p = pools()
        assert by_admin["id"] not in p and by_user["id"] not in p, p
        for tid in (by_admin["id"], by_user["id"]):
            r = user.post("/sessions", json={"template_id": tid})
            assert r.status == 201, r
            made.append(r.body["id"])
            assert r.body["warm"] is False, r.body
        r = user.post("/sessions", json={"template_id": glob["id"]})
        assert r.status == 201, r
        made.append(r.body["id"])
        assert r.body["warm"] is True, r.body
        # The reader sees the pools but cannot take from them.
        reader = authd.kc(label="reader")
        assert reader.get("/nodes").status == 200
        assert_error(reader.post("/sessions", json={"template_id": glob["id"]}), 403,
                     "Sandbox.Forbidden")
    finally:
        for sid in made:
            user.delete("/sessions/%s" % sid)
        for t in (glob, by_admin):
            admin.delete("/templates/%s" % t["id"])
        user.delete("/templates/%s" % by_user["id"])
