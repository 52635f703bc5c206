"""Warm pools (issue 6 item 3; docs/configuration.md `warm_pools`), against private daemons
with pools configured:

- the `warm_pools` group fills a pool for every global template, and a template's own
  warm_pool_size overrides it; GET /api/v1/nodes (templates_warm, warm_pools) and /metrics
  (sbxd_warm_pool_{hits,misses}_total, sbxd_warm_pool_ready) report them;
- a create whose resources are the template's defaults claims a pooled sandbox
  ("warm": true) that works, with the create's env vars applied to its executions and a
  restore_from workspace restored; other resources are built cold ("warm": false);
- a pooled sandbox has never run code, and two warm sessions never share a sandbox;
- the pool refills after claims (below `min`, up to `size`), is rebuilt after any PUT of
  its template and when older than warm_pool_max_idle_s, and is destroyed on SIGTERM;
- state sync (sessions.sync_interval_ms) leaves the live replica's pooled sandboxes alone.
"""

import re
import time

import pytest

from sandbox_access import RUNTIME, engine, linux_sandboxes, pid_alive
from sbxclient import uid, wait_until
from sbxd_fixtures import start_private

pytestmark = [pytest.mark.own_daemon]

POOL_SIZE = 2
FILL_S = 20  # bound for a pool to reach its size (the filler runs every second)
# No periodic state sync during this module's tests except where a test asks for it
# (test_state_sync_leaves_the_live_replicas_pool_alone): see that test.
SETTINGS = {"warm_pools": {"size": POOL_SIZE, "min": 1, "max_idle_s": 3600},
            "sessions": {"sync_interval_ms": 3600000}}
SEEDED = ("python-basic", "nodejs-basic", "shell-basic")

# Inside a sandbox: what a pooled sandbox must not have, and who it is.
INSPECT = r'''
import os, time
def handler(event):
    procs = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    procs.append(f.read().replace(b"\0", b" ").decode(errors="replace").strip())
            except OSError:
                pass
    with open("/proc/1/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return {"tmp": sorted(os.listdir("/tmp")), "workspace": sorted(os.listdir("/workspace")),
            "procs": procs, "pidns": os.readlink("/proc/self/ns/pid"),
            "init_age_s": uptime - start_ticks / os.sysconf("SC_CLK_TCK"),
            "env": {k: os.environ.get(k) for k in event.get("env", [])}}
'''
# Leaves traces: files in /tmp and /workspace and a background process.
DIRTY = r'''
import subprocess
def handler(event):
    for d in ("/tmp", "/workspace"):
        with open("%s/%s" % (d, event["tag"]), "w") as f:
            f.write("x")
    subprocess.Popen(["sleep", "%d" % event["secs"]], start_new_session=True)
    return "dirty"
'''


def inspect(api, sid, env=()):
    ex = api.execute_sync(sid, INSPECT, event={"env": list(env)}, sync_timeout=60)
    assert ex["status"] == "completed", ex
    return ex["return_value"]


def nodes(proc):
    r = proc.client.get("/nodes", timeout=10)
    assert r.status == 200, r
    return r.body


def ready(proc, tid, body=None):
    """Ready pooled sandboxes of template tid, summed over runtimes and nodes; checked
    against the nodes' templates_warm."""
    body = body or nodes(proc)
    n = sum(p["ready"] for p in body["warm_pools"]["ready"] if p["template_id"] == tid)
    per_node = sum(t["ready"] for it in body["items"] for t in it["templates_warm"]
                   if t["template_id"] == tid)
    assert n == per_node, ("warm_pools.ready and items[].templates_warm disagree", tid, body)
    return n


def oldest_s(proc, tid):
    ages = [p["oldest_s"] for p in nodes(proc)["warm_pools"]["ready"]
            if p["template_id"] == tid]
    return max(ages) if ages else None


def metric(proc, name, template):
    r = proc.client.get("/metrics", timeout=10)
    assert r.status == 200, r
    m = re.search(r'(?m)^%s\{[^}]*template="%s"[^}]*\} ([0-9.e+]+)$'
                  % (re.escape(name), re.escape(template)), r.raw.decode())
    return float(m.group(1)) if m else None


def counters(proc):
    w = nodes(proc)["warm_pools"]
    return w["hits"], w["misses"]


def wait_ready(proc, tid, n, deadline_s=FILL_S):
    return wait_until(lambda: ready(proc, tid) == n or None, deadline_s, interval=0.2,
                      what="%d ready sandbox(es) of %s in the pool" % (n, tid))


def create(proc, tid, **fields):
    body = {"template_id": tid}
    body.update(fields)
    r = proc.client.post("/sessions", json=body, timeout=60)
    assert r.status == 201, r
    return r.body


def claim(proc, tid, **fields):
    """A create once the pool has a sandbox ready: it must be warm."""
    wait_until(lambda: ready(proc, tid) >= 1 or None, FILL_S, interval=0.1,
               what="a ready sandbox of %s" % tid)
    s = create(proc, tid, **fields)
    assert s["warm"] is True and s["status"] == "running", s
    return s


def make_template(proc, **fields):
    body = {"id": uid("warm"), "name": "warm pool test",
            "image_url": "sandbox-template-python-basic:latest", "runtime_type": "python3.11",
            "default_cpu_cores": 0.5, "default_memory_mb": 128, "default_disk_mb": 64}
    body.update(fields)
    r = proc.client.post("/templates", json=body)
    assert r.status == 201, r
    return body["id"]


def pooled_ids(proc, memory_mb=None):
    """Ids of the daemon's sandboxes built for a pool (still pooled, or claimed by a warm
    session), of memory_mb (a template's unique default) when given.  linux: sandbox dirs
    with no session in their sandbox.json; docker: containers whose pool-owner label names
    the daemon's boot."""
    if RUNTIME == "docker":
        boot = proc.client.get("/health/detailed").body["replica"]["boot"]
        out = set()
        for c in engine().containers():
            labels = c.get("Labels") or {}
            owner = [v for k, v in labels.items() if k.endswith("pool-owner")]
            mem = [v for k, v in labels.items() if k.endswith("memory-mb")]
            if (owner and owner[0].startswith(boot + "@") and c.get("State") == "running"
                    and (memory_mb is None or mem == [str(memory_mb)])):
                out.add(c["Id"])
        return out
    return {n for n, h in linux_sandboxes(proc.data_dir).items()
            if h and h.get("session_id") is None and pid_alive(h.get("pid")) and
            memory_mb in (None, (h.get("resources") or {}).get("memory_mb"))}


@pytest.fixture(scope="module")
def poold():
    d = start_private(SETTINGS)
    try:
        for tid in SEEDED:
            wait_ready(d, tid, POOL_SIZE)
        yield d
        d.stop_and_check()
    finally:
        d.cleanup()


def test_the_warm_pools_group_fills_a_pool_per_global_template_and_node(poold):
    body = nodes(poold)
    assert body["total"] == len(body["items"]) >= 1 and body["errors"] == [], body
    for it in body["items"]:
        if not it["healthy"]:
            continue
        warm = {t["template_id"]: t["ready"] for t in it["templates_warm"]}
        for tid in SEEDED:
            assert warm.get(tid) == POOL_SIZE, ("node %s" % it["id"], tid, it)
    for p in body["warm_pools"]["ready"]:
        assert set(p) >= {"template_id", "runtime", "node", "ready", "oldest_s"}, p
        assert 0 <= p["oldest_s"] < 3600, p
    for tid in SEEDED:
        assert metric(poold, "sbxd_warm_pool_ready", tid) == ready(poold, tid), tid
    hd = poold.client.get("/health/detailed").body
    assert hd["warm_pools"]["ready"] and {"hits", "misses"} <= set(hd["warm_pools"]), hd


def test_a_create_with_the_template_defaults_claims_a_warm_sandbox_that_works(poold):
    hits, misses = counters(poold)
    before = metric(poold, "sbxd_warm_pool_hits_total", "python-basic") or 0
    s = claim(poold, "python-basic", env_vars={"FOO": "from-create", "BAR": "2"})
    assert s["env_vars"] == {"FOO": "from-create", "BAR": "2"}, s
    got = inspect(poold.client, s["id"], env=("FOO", "BAR"))
    assert got["env"] == {"FOO": "from-create", "BAR": "2"}, got
    ex = poold.client.execute_sync(s["id"], "def handler(e):\n    return e['n'] * 7\n",
                                   event={"n": 6})
    assert ex["status"] == "completed" and ex["return_value"] == 42, ex
    assert poold.client.get("/sessions/%s" % s["id"]).body["warm"] is True
    assert counters(poold) == (hits + 1, misses), nodes(poold)["warm_pools"]
    assert metric(poold, "sbxd_warm_pool_hits_total", "python-basic") == before + 1
    assert poold.client.delete("/sessions/%s" % s["id"]).status == 204


def test_other_resources_are_built_cold_and_keep_them(poold):
    hits, misses = counters(poold)
    before = metric(poold, "sbxd_warm_pool_misses_total", "python-basic") or 0
    pooled = ready(poold, "python-basic")
    s = create(poold, "python-basic", resources={"memory": "256Mi"})
    try:
        assert s["warm"] is False, s
        assert s["resource_limit"]["memory"] == "256Mi", s
        ex = poold.client.execute_sync(s["id"], "def handler(e):\n    return 'cold'\n")
        assert ex["status"] == "completed" and ex["return_value"] == "cold", ex
        assert counters(poold) == (hits, misses + 1), nodes(poold)["warm_pools"]
        assert metric(poold, "sbxd_warm_pool_misses_total", "python-basic") == before + 1
        # The pool of python-basic was not used.
        assert ready(poold, "python-basic") == pooled
    finally:
        poold.client.delete("/sessions/%s" % s["id"])


def test_a_pooled_sandbox_never_ran_code_and_warm_sessions_share_nothing(poold):
    api = poold.client
    a = claim(poold, "python-basic")
    b = c = None
    try:
        b = claim(poold, "python-basic")
        assert a["sandbox_id"] and a["sandbox_id"] != b["sandbox_id"], (a, b)
        ex = api.execute_sync(a["id"], DIRTY, event={"tag": "from-a", "secs": 300})
        assert ex["status"] == "completed", ex
        seen_a, seen_b = inspect(api, a["id"]), inspect(api, b["id"])
        assert seen_a["pidns"] != seen_b["pidns"], (seen_a, seen_b)
        assert seen_a["tmp"] == ["from-a"] and seen_a["workspace"] == ["from-a"], seen_a
        # (the executor may end what an execution left running: not asserted either way)
        assert seen_b["tmp"] == [] and seen_b["workspace"] == [], seen_b
        assert not any("sleep" in p for p in seen_b["procs"]), seen_b
        ex = api.execute_sync(b["id"], DIRTY, event={"tag": "from-b", "secs": 300})
        assert ex["status"] == "completed", ex
        assert inspect(api, a["id"])["workspace"] == ["from-a"]
        # A session ended is never handed out again: the next claims are fresh.
        assert api.delete("/sessions/%s" % a["id"]).status == 204
        c = claim(poold, "python-basic")
        assert c["sandbox_id"] not in (a["sandbox_id"], b["sandbox_id"]), (a, b, c)
        seen_c = inspect(api, c["id"])
        assert seen_c["tmp"] == [] and seen_c["workspace"] == [], seen_c
        assert not any("sleep" in p for p in seen_c["procs"]), seen_c
        assert seen_c["pidns"] != inspect(api, b["id"])["pidns"]
    finally:
        for s in (a, b, c):
            if s:
                api.delete("/sessions/%s" % s["id"])


def test_a_warm_session_gets_its_restore_from_workspace(poold):
    api = poold.client
    src = create(poold, "python-basic")
    ex = api.execute_sync(src["id"], "mkdir -p /workspace/d && echo kept > /workspace/d/f",
                          language="shell")
    assert ex["status"] == "completed", ex
    r = api.post("/sessions/%s/terminate" % src["id"])
    assert r.status == 200, r
    arch = r.body.get("workspace_archive")
    assert arch and not arch.get("error"), r.body
    s = claim(poold, "python-basic", restore_from=src["id"])
    try:
        assert s["restored_from"] == src["id"], s
        ex = api.execute_sync(s["id"], "cat /workspace/d/f", language="shell")
        assert ex["status"] == "completed" and ex["stdout"] == "kept\n", ex
    finally:
        api.delete("/sessions/%s" % s["id"])
        api.delete("/sessions/%s" % src["id"])


def test_the_pool_refills_below_min_up_to_its_size(poold):
    # The template's warm_pool_size (3) overrides warm_pools.size; min (1) is global.
    tid = make_template(poold, warm_pool_size=3)
    made = []
    try:
        wait_ready(poold, tid, 3)
        for left in (2, 1):
            made.append(claim(poold, tid))
            # At or above min: no refill (the filler runs every second and on each claim).
            end = time.monotonic() + 2.5
            while time.monotonic() < end:
                assert ready(poold, tid) == left, nodes(poold)["warm_pools"]
                time.sleep(0.25)
        made.append(claim(poold, tid))  # the last one: below min, refilled to the size
        wait_ready(poold, tid, 3)
        assert metric(poold, "sbxd_warm_pool_hits_total", tid) == 3
        assert metric(poold, "sbxd_warm_pool_ready", tid) == 3
        made.append(claim(poold, tid))
        for s in made:
            ex = poold.client.execute_sync(s["id"], "def handler(e):\n    return 1\n")
            assert ex["status"] == "completed", ex
    finally:
        for s in made:
            poold.client.delete("/sessions/%s" % s["id"])
        poold.client.delete("/templates/%s" % tid)


def test_a_template_put_rebuilds_its_pool(poold):
    tid = make_template(poold, warm_pool_size=1, default_memory_mb=112,
                        default_env_vars={"V": "one"})
    try:
        wait_ready(poold, tid, 1)
        before = pooled_ids(poold, 112)
        assert len(before) == 1, before
        time.sleep(1.2)  # the pooled sandbox is older than the change
        r = poold.client.put("/templates/%s" % tid, json={"default_env_vars": {"V": "two"}})
        assert r.status == 200, r
        t_put = time.monotonic()
        # The sandbox built before the change is replaced, then the claim gets a new one.
        wait_until(lambda: not (before & pooled_ids(poold, 112)) or None, 10,
                   what="pooled sandboxes built before the PUT destroyed")
        s = claim(poold, tid)
        try:
            got = inspect(poold.client, s["id"], env=("V",))
            assert got["env"] == {"V": "two"}, got
            assert got["init_age_s"] < time.monotonic() - t_put + 0.5, (
                "the claimed sandbox was built before the PUT", got)
        finally:
            poold.client.delete("/sessions/%s" % s["id"])
        # A change of the name alone rebuilds too (any PUT).
        wait_ready(poold, tid, 1)
        time.sleep(1.2)
        old = pooled_ids(poold, 112)
        assert poold.client.put("/templates/%s" % tid, json={"name": "renamed"}).status == 200
        t_put = time.monotonic()
        wait_until(lambda: not (old & pooled_ids(poold, 112)) or None, 10,
                   what="pooled sandboxes built before the rename destroyed")
        s = claim(poold, tid)
        try:
            assert inspect(poold.client, s["id"])["init_age_s"] < time.monotonic() - t_put + 0.5
        finally:
            poold.client.delete("/sessions/%s" % s["id"])
        # warm_pool_size = 0: the pool goes away.
        r = poold.client.put("/templates/%s" % tid, json={"warm_pool_size": 0})
        assert r.status == 200, r
        wait_ready(poold, tid, 0)
        s = create(poold, tid)
        poold.client.delete("/sessions/%s" % s["id"])
        assert s["warm"] is False, s
    finally:
        poold.client.delete("/templates/%s" % tid)


def test_an_emptied_pool_reports_zero_ready_in_metrics(poold):
    tid = make_template(poold, warm_pool_size=1)
    try:
        wait_ready(poold, tid, 1)
        assert metric(poold, "sbxd_warm_pool_ready", tid) == 1
        assert poold.client.put("/templates/%s" % tid, json={"warm_pool_size": 0}).status == 200
        wait_ready(poold, tid, 0)
        time.sleep(1.5)  # a filler pass after the pool emptied
        assert metric(poold, "sbxd_warm_pool_ready", tid) in (None, 0.0), (
            "sbxd_warm_pool_ready still reports the destroyed sandboxes")
    finally:
        poold.client.delete("/templates/%s" % tid)


@pytest.mark.slow
def test_pooled_sandboxes_older_than_max_idle_are_replaced(poold):
    tid = make_template(poold, warm_pool_size=1, warm_pool_max_idle_s=10,
                        default_memory_mb=104)
    try:
        wait_ready(poold, tid, 1)
        first = pooled_ids(poold, 104)
        assert len(first) == 1, first
        end = time.monotonic() + 14
        while time.monotonic() < end:
            age = oldest_s(poold, tid)
            assert age is None or age <= 11, ("kept past warm_pool_max_idle_s", age)
            time.sleep(0.5)
        wait_ready(poold, tid, 1)
        assert not (first & pooled_ids(poold, 104)), "the 10 s old sandbox is still pooled"
    finally:
        poold.client.delete("/templates/%s" % tid)


def test_sigterm_destroys_the_pools_and_keeps_the_sessions(private_sbxd):
    if RUNTIME not in ("linux", "docker"):
        pytest.skip("sandboxes are looked at on the linux and docker runtimes only")
    d = private_sbxd({"warm_pools": {"size": 1}, "server": {"shutdown_sandboxes": "keep"},
                      "sessions": {"sync_interval_ms": 3600000}})
    for tid in SEEDED:
        wait_ready(d, tid, 1)
    warm = claim(d, "python-basic")
    cold = create(d, "shell-basic", resources={"memory": "128Mi"})
    assert warm["warm"] is True and cold["warm"] is False, (warm, cold)
    for tid in SEEDED:
        wait_ready(d, tid, 1)
    if RUNTIME == "linux":
        live = {n for n, h in linux_sandboxes(d.data_dir).items()
                if h and pid_alive(h.get("pid"))}
        kept = {warm["sandbox_id"], cold["sandbox_id"]}
        pooled = live - kept
        assert kept <= live and len(pooled) == len(SEEDED), (kept, live)
    else:
        # the warm session's container was built for the pool too (labels are for life)
        pooled = pooled_ids(d) - {warm["container_id"]}
        assert len(pooled) == len(SEEDED), (pooled, warm)
    d.stop_and_check()
    if RUNTIME == "linux":
        left = set(linux_sandboxes(d.data_dir))
        assert not (pooled & left), ("pooled sandboxes left after SIGTERM", pooled & left)
        assert kept <= left, ("shutdown_sandboxes = keep: the sessions' sandboxes stay",
                              kept, left)
    else:
        left = {c["Id"] for c in engine().containers()}
        assert not (pooled & left), ("pooled containers left after SIGTERM", pooled & left)
        assert {warm["container_id"], cold["container_id"]} <= left, (
            "shutdown_sandboxes = keep: the sessions' containers stay", warm, cold, left)


def test_state_sync_leaves_the_live_replicas_pool_alone(private_sbxd):
    # (found destroying the linux runtime's pools every sync_interval_ms, fixed in 54e7f87)
    d = private_sbxd({"warm_pools": {"size": 1}, "sessions": {"sync_interval_ms": 500}})
    for tid in SEEDED:
        wait_ready(d, tid, 1)
    before = pooled_ids(d)
    time.sleep(2.5)  # several state sync passes
    log = open(d.log_path, errors="replace").read()
    orphaned = [ln for ln in log.splitlines() if "orphan sandbox" in ln and "destroyed" in ln]
    assert not orphaned, orphaned
    after = pooled_ids(d)
    assert before == after, (before, after)
    s = claim(d, "python-basic")
    ex = d.client.execute_sync(s["id"], "def handler(e):\n    return 'alive'\n")
    assert ex["status"] == "completed" and ex["return_value"] == "alive", ex
