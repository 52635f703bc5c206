"""Several sbxd replicas (production tier only): two daemons on the same MariaDB server (a
database of their own, so that the suite's shared daemon is not a third replica), the same
S3 server and the same `linux` runtime state dir, with different ports and replica ids.

- a session made through one replica is listed, executed, and its files read through the
  other; terminate through the other works; both list the same sessions;
- each background loop's lease (reaper, probe, state_sync) is held by exactly one replica
  at a time (GET /health/detailed `replica.leases` and the `sbxd_lease_held` gauge);
- SIGKILL of the replica holding the leases: within lease_ttl_ms + a margin the survivor
  holds them, and the sessions made through the dead replica keep working through the
  survivor (their sandboxes are not destroyed as orphans); the killed replica, restarted,
  does not destroy the survivor's live sandboxes."""
import json
import os
import re
import tempfile
import time
import uuid

import pytest

import sbxd_harness
from sbxclient import wait_until

PROD = os.environ.get("SBXD_PROD_DIR")
LEASES = ("reaper", "probe", "state_sync")
LEASE_TTL_MS = 3000  # the smallest the config allows with reap_interval_ms = 1000
PROBE_INTERVAL_MS = 1000
TAKEOVER_MARGIN_S = 6

pytestmark = [
    pytest.mark.own_daemon,
    pytest.mark.skipif(not PROD, reason="several replicas need a shared database: "
                                        "production tier only (SBXD_PROD_DIR, MariaDB + S3)"),
    pytest.mark.skipif(bool(os.environ.get("SBXD_URL")),
                       reason="starts its own replicas (SBXD_URL is set)"),
    pytest.mark.skipif(os.environ.get("SBXD_RUNTIME", "linux") != "linux",
                       reason="shares the linux runtime's state dir between replicas"),
]

HANDLER = "def handler(e):\n    return {'twice': e['n'] * 2}\n"


class Cluster:
    """The replicas' configs: the tier's config with a MariaDB database of their own (the
    harness's DerivedConfig: the suite's shared daemon is not a third replica), short
    leases, the shared linux state dir and each replica's replica_id."""

    def __init__(self):
        self.conf = sbxd_harness.DerivedConfig(settings={"sessions": {
            "lease_ttl_ms": LEASE_TTL_MS, "probe_interval_ms": PROBE_INTERVAL_MS}})
        self.tmp = self.conf.dir
        os.chmod(self.tmp, 0o711)
        self.state_dir = os.path.join(self.tmp, "linux")
        os.mkdir(self.state_dir, 0o711)
        self.procs = []
        with open(self.conf.path) as f:
            text = f.read()
        self.base, n = re.subn(
            r'(kind = "runtime"; module = "linux";[^\n]*config = \{)[^}\n]*\}',
            r'\1 state_dir = "%s"; }' % self.state_dir, text)
        assert n == 1, "the tier's config has no one-line linux runtime entry"

    def config(self, replica_id):
        path = os.path.join(self.tmp, "%s.conf" % replica_id)
        with open(path, "w") as f:
            f.write(sbxd_harness.apply_settings(self.base,
                                                {"server": {"replica_id": replica_id}}))
        return path

    def start(self, replica_id, data_dir=None, port=None):
        p = sbxd_harness.SbxdProcess(data_dir=data_dir or tempfile.mkdtemp(
            prefix="data-%s-" % replica_id, dir=self.tmp), port=port, config=self.conf)
        p.config = self.config(replica_id)
        p.replica_id = replica_id
        self.procs.append(p)
        p.start()
        return p

    def cleanup(self):
        for p in self.procs:
            p.cleanup()
        self.conf.cleanup()  # the database and the temp dir


@pytest.fixture
def cluster():
    c = Cluster()
    try:
        yield c
    finally:
        c.cleanup()


def leases_of(proc):
    """{lease: held?} of one replica from /health/detailed, checked against /metrics."""
    r = proc.client.get("/health/detailed", timeout=10)
    assert r.status == 200, r
    rep = r.body.get("replica") if isinstance(r.body, dict) else None
    assert isinstance(rep, dict) and isinstance(rep.get("leases"), dict), (
        "/health/detailed has no replica.leases: %r" % r)
    assert rep.get("id") == proc.replica_id, ("replica.id is not the configured replica_id",
                                              rep)
    held = {n: rep["leases"].get(n) for n in LEASES}
    assert all(isinstance(v, bool) for v in held.values()), rep
    m = proc.client.get("/metrics", timeout=10)
    assert m.status == 200, m
    text = m.raw.decode()
    for n in LEASES:
        g = re.search(r'(?m)^sbxd_lease_held\{[^}]*name="%s"[^}]*\} ([0-9.]+)' % n, text)
        assert g, "/metrics has no sbxd_lease_held{name=\"%s\"}" % n
        assert float(g.group(1)) == (1.0 if held[n] else 0.0), (n, held, g.group(0))
    return held


def holders(procs):
    """{lease: [replica ids holding it]} sampled now."""
    out = {n: [] for n in LEASES}
    for p in procs:
        for n, v in leases_of(p).items():
            if v:
                out[n].append(p.replica_id)
    return out


def each_held_by_one(procs):
    h = holders(procs)
    return h if all(len(v) == 1 for v in h.values()) else None


def run(proc, sid, n):
    ex = proc.client.execute_sync(sid, HANDLER, event={"n": n}, sync_timeout=60)
    assert ex["status"] == "completed" and ex["return_value"] == {"twice": 2 * n}, ex
    return ex


def sandbox_handles(cluster):
    """{session id: the linux runtime's sandbox.json} of the shared state dir."""
    root = os.path.join(cluster.state_dir, "sandboxes")
    out = {}
    for name in os.listdir(root) if os.path.isdir(root) else []:
        try:
            with open(os.path.join(root, name, "sandbox.json")) as f:
                h = json.load(f)
            out[h.get("session_id")] = h
        except (OSError, ValueError):
            pass
    return out


def sandbox_dirs(cluster):
    return {s: h.get("sandbox_id") for s, h in sandbox_handles(cluster).items()}


def listed(proc, tid):
    r = proc.client.get("/sessions", params={"template_id": tid, "limit": 100})
    assert r.status == 200, r
    return {(s["id"], s["status"]) for s in r.body["items"]}


def make_template(proc):
    tid = "rep-" + uuid.uuid4().hex[:8]
    r = proc.client.post("/templates", json={
        "id": tid, "name": "replicas", "image_url": "sandbox-template-python-basic:latest",
        "runtime_type": "python3.11"})
    assert r.status == 201, r
    return tid


def test_a_session_made_on_one_replica_is_served_by_the_other(cluster):
    r1 = cluster.start("r1")
    r2 = cluster.start("r2")
    tid = make_template(r1)
    sid = r1.client.post("/sessions", json={"template_id": tid}).body["id"]
    assert r2.client.get("/sessions/%s" % sid).body["status"] == "running"
    run(r2, sid, 21)
    assert r1.client.upload(sid, "from-r1.txt", b"written via r1\n").status == 200
    f = r2.client.download(sid, "from-r1.txt")
    assert f.status == 200 and f.raw == b"written via r1\n", f
    assert r2.client.upload(sid, "from-r2.txt", b"written via r2\n").status == 200
    ex = r1.client.execute_sync(sid, "cat /workspace/from-r2.txt", language="shell")
    assert ex["stdout"] == "written via r2\n", ex
    other = r2.client.post("/sessions", json={"template_id": tid}).body["id"]
    assert listed(r1, tid) == listed(r2, tid) == {(sid, "running"), (other, "running")}
    hs = sandbox_handles(cluster)
    assert hs[sid]["slot"] != hs[other]["slot"], (
        "sandboxes made by two replicas share a uid range (slot %s)" % hs[sid]["slot"])

    # each loop runs on exactly one replica at a time
    samples = []
    for _ in range(6):
        samples.append(wait_until(lambda: each_held_by_one([r1, r2]), LEASE_TTL_MS / 1000 + 5,
                                  interval=0.2, what="each lease held by exactly one replica"))
        time.sleep(0.4)
    print("replicas: lease holders sampled %s" % samples)

    r = r2.client.post("/sessions/%s/terminate" % sid)
    assert r.status == 200, r
    assert r1.client.get("/sessions/%s" % sid).body["status"] == "terminated"
    assert sid not in sandbox_dirs(cluster), "the terminated session's sandbox is still there"
    assert listed(r1, tid) == listed(r2, tid) == {(sid, "terminated"), (other, "running")}
    assert r1.client.delete("/sessions/%s" % other).status in (200, 204)
    r1.stop_and_check()
    r2.stop_and_check()


def test_sigkill_of_the_lease_holder_hands_its_loops_over_and_keeps_its_sessions(cluster):
    r1 = cluster.start("r1")
    r2 = cluster.start("r2")
    h = wait_until(lambda: each_held_by_one([r1, r2]), LEASE_TTL_MS / 1000 + 5, interval=0.2,
                   what="each lease held by exactly one replica")
    counts = {p.replica_id: sum(1 for v in h.values() if p.replica_id in v) for p in (r1, r2)}
    victim, survivor = (r1, r2) if counts["r1"] >= counts["r2"] else (r2, r1)
    tid = make_template(victim)
    on_victim = victim.client.post("/sessions", json={"template_id": tid}).body["id"]
    on_survivor = survivor.client.post("/sessions", json={"template_id": tid}).body["id"]
    run(victim, on_victim, 1)
    sandbox = sandbox_dirs(cluster)[on_victim]

    victim.kill()  # SIGKILL
    t0 = time.monotonic()
    wait_until(lambda: all(leases_of(survivor).values()),
               LEASE_TTL_MS / 1000 + TAKEOVER_MARGIN_S, interval=0.2,
               what="the survivor holds every lease after the holder was killed")
    print("replicas: %s took over %s's leases in %.1f s (lease_ttl_ms %d)"
          % (survivor.replica_id, victim.replica_id, time.monotonic() - t0, LEASE_TTL_MS))
    # the dead replica's session works through the survivor, also after a few probe and
    # state-sync rounds: its sandbox is not an orphan
    run(survivor, on_victim, 2)
    time.sleep(3 * PROBE_INTERVAL_MS / 1000)
    assert survivor.client.get("/sessions/%s" % on_victim).body["status"] == "running"
    assert sandbox_dirs(cluster).get(on_victim) == sandbox
    run(survivor, on_victim, 3)

    # the killed replica comes back: it destroys none of the survivor's live sandboxes
    back = cluster.start(victim.replica_id, data_dir=victim.data_dir, port=victim.port)
    wait_until(lambda: each_held_by_one([back, survivor]), LEASE_TTL_MS / 1000 + 5,
               interval=0.2, what="each lease held by exactly one replica after the restart")
    time.sleep(3 * PROBE_INTERVAL_MS / 1000)
    dirs = sandbox_dirs(cluster)
    assert on_victim in dirs and on_survivor in dirs, dirs
    for p in (back, survivor):
        for n, s in enumerate((on_victim, on_survivor)):
            run(p, s, 10 + n)
    assert listed(back, tid) == listed(survivor, tid) == {(on_victim, "running"),
                                                          (on_survivor, "running")}
    for s in (on_victim, on_survivor):
        assert survivor.client.delete("/sessions/%s" % s).status in (200, 204)
    back.stop_and_check()
    survivor.stop_and_check()
