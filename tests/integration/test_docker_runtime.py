"""The `docker` runtime against the real Docker Engine the docker tier starts
(tests/docker/services.sh): what happens to sessions when containers change behind sbxd's
back, and state sync on restart (its containers re-adopted, foreign ones untouched, its
orphans removed).  Run only with SBXD_RUNTIME=docker and SBXD_DOCKER_HOST=unix:///path of
the engine socket; the engine is reached directly through its API, like sbxd does."""

import os
import uuid

import pytest

import sbxd_harness
from docker_engine import Engine, labelled
from sbxclient import uid, wait_until

pytestmark = [
    pytest.mark.skipif(os.environ.get("SBXD_RUNTIME") != "docker",
                       reason="docker runtime only (SBXD_RUNTIME=docker)"),
]

FAIL_WAIT_S = 60  # bound for a killed container's session to turn failed


@pytest.fixture(scope="module")
def engine():
    host = os.environ.get("SBXD_DOCKER_HOST")
    if not host:
        pytest.fail("SBXD_RUNTIME=docker needs SBXD_DOCKER_HOST=unix:///path/docker.sock "
                    "(tests/docker/services.sh starts the engine)")
    e = Engine(host)
    st, body = e.call("GET", "/version")
    assert st == 200, body
    return e


def container_of(engine, session_id, api):
    """The (only) container of the session: the one labelled with the sandbox_id the API
    shows (a warm-pool container was built before its session and names none)."""
    r = api.get("/sessions/%s" % session_id)
    assert r.status == 200, r
    found = [c for c in engine.containers() if labelled(c, r.body.get("sandbox_id"))]
    assert len(found) == 1, "containers labelled with session %s: %r" % (
        session_id, [(c["Id"][:12], c.get("Labels")) for c in found])
    return found[0]


def label_key(labels, word):
    keys = [k for k in labels if word in k]
    assert len(keys) == 1, "expected one label containing %r in %r" % (word, labels)
    return keys[0]


def session_status(api, sid):
    r = api.get("/sessions/%s" % sid)
    assert r.status == 200, r
    return r.body


def test_session_container_carries_the_ownership_labels_and_security_settings(
        api, engine, py_session):
    c = container_of(engine, py_session["id"], api)
    labels = c["Labels"]
    for word in ("managed", "instance", "session", "template"):
        label_key(labels, word)
    assert labels[label_key(labels, "template")] == "python-basic", labels
    st, info = engine.call("GET", "/containers/%s/json" % c["Id"])
    assert st == 200, info
    hc = info["HostConfig"]
    assert info["Config"]["Image"] == "sandbox-template-python-basic:latest", info["Config"]
    assert hc["NetworkMode"] == "none", hc["NetworkMode"]
    assert hc["ReadonlyRootfs"] is True, hc
    assert hc.get("CapDrop") and "ALL" in [x.upper() for x in hc["CapDrop"]], hc["CapDrop"]
    assert not hc.get("CapAdd"), hc["CapAdd"]
    assert hc.get("Privileged") is False, hc
    assert any(o.startswith("no-new-privileges") for o in hc.get("SecurityOpt") or []), \
        hc.get("SecurityOpt")
    assert not any("seccomp=unconfined" in o for o in hc.get("SecurityOpt") or []), hc
    assert hc.get("PidsLimit") and hc["PidsLimit"] > 0, hc.get("PidsLimit")
    assert hc.get("Memory") and hc["Memory"] == hc.get("MemorySwap"), hc
    assert hc.get("NanoCpus"), hc
    user = info["Config"].get("User") or ""
    assert user and user.split(":")[0] not in ("0", "root"), info["Config"]


@pytest.mark.parametrize("notice", ["execution", "probe"])
def test_container_killed_behind_sbxds_back_turns_the_session_failed_with_a_reason(
        api, engine, make_session, notice):
    """The core notices a dead sandbox when an execution on it fails, and on its periodic
    health probe alone ("probe": nothing is executed after the kill)."""
    sid = make_session("python-basic")["id"]
    assert api.execute_sync(sid, "def handler(e):\n    return 1\n")["status"] == "completed"
    c = container_of(engine, sid, api)
    st, body = engine.call("POST", "/containers/%s/kill" % c["Id"], query={"signal": "KILL"})
    assert st == 204, body

    def failed():
        if notice == "execution":
            api.execute_sync(sid, "def handler(e):\n    return 1\n", sync_timeout=10,
                             expect=None)
        return session_status(api, sid)["status"] == "failed"
    wait_until(failed, FAIL_WAIT_S, interval=0.5, what="session failed after docker kill")
    s = session_status(api, sid)
    # The reason names how the container ended (exit 137 = SIGKILL).
    assert s["error_message"] and ("137" in s["error_message"]
                                   or "SIGKILL" in s["error_message"]), s


@pytest.fixture
def own_sbxd(tmp_path):
    if os.environ.get("SBXD_URL"):
        pytest.skip("SBXD_URL set: cannot start a private sbxd")
    config = sbxd_harness.DerivedConfig()  # one docker instance name across the restart
    procs = []

    def start(data_dir):
        p = sbxd_harness.SbxdProcess(data_dir=str(data_dir), config=config)
        procs.append(p)
        return p.start()

    try:
        yield start
    finally:
        for p in procs:
            p.cleanup()
        config.cleanup()


def test_restart_readopts_its_containers_leaves_foreign_ones_and_removes_orphans(
        engine, own_sbxd, tmp_path):
    data = tmp_path / "data"
    first = own_sbxd(data)
    api = first.client
    r = api.post("/sessions", json={"template_id": "python-basic"})
    assert r.status == 201, r
    sid = r.body["id"]
    ex = api.execute_sync(sid, "def handler(e):\n    open('/workspace/kept', 'w').write('k')\n"
                          "    return 1\n")
    assert ex["status"] == "completed", ex
    mine = container_of(engine, sid, api)
    labels = dict(mine["Labels"])
    k_session = label_key(labels, "session")
    k_instance = label_key(labels, "instance")
    k_sandbox = label_key(labels, "sandbox")
    first.stop_and_check()
    assert engine.state(mine["Id"])["Running"], "shutdown_sandboxes=keep stopped the container"

    # While sbxd is down: a foreign container (no labels), one of another sbxd instance,
    # and an orphan of this instance (its labels, a session the database does not have).
    made = []
    try:
        foreign = engine.run(uid("foreign"), {"test": "foreign"})
        made.append(foreign)
        other = dict(labels)
        other[k_instance] = labels[k_instance] + "-other"
        other[k_session] = uid("othersess")
        other[k_sandbox] = "dk-" + uuid.uuid4().hex
        other_instance = engine.run(uid("otherinst"), other)
        made.append(other_instance)
        orphan_labels = dict(labels)
        orphan_labels[k_session] = uid("orphan")
        orphan_labels[k_sandbox] = "dk-" + uuid.uuid4().hex
        orphan = engine.run(uid("orphan"), orphan_labels)
        made.append(orphan)

        second = own_sbxd(data)
        api = second.client
        s = session_status(api, sid)
        assert s["status"] == "running", s
        assert container_of(engine, sid, api)["Id"] == mine["Id"], "the session got a new container"
        ex = api.execute_sync(sid, "def handler(e):\n    return open('/workspace/kept').read()\n")
        assert ex["status"] == "completed" and ex["return_value"] == "k", ex
        wait_until(lambda: not engine.exists(orphan), 30, interval=0.2,
                   what="orphan container removed by state sync")
        for cid in (foreign, other_instance):
            assert engine.exists(cid) and engine.state(cid)["Running"], \
                "a container sbxd does not own was touched: %s" % cid
        assert api.delete("/sessions/%s" % sid, timeout=60).status in (200, 204)
        wait_until(lambda: not engine.exists(mine["Id"]), 30, interval=0.2,
                   what="the deleted session's container removed")
        second.stop_and_check()
    finally:
        for cid in made:
            engine.remove(cid)
