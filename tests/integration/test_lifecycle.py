"""Daemon lifecycle with a private sbxd each: graceful SIGTERM during execute-sync, and
recovery of sessions and templates after a restart on the same data directory."""

import os
import shutil
import signal
import tempfile
import threading

import pytest

import sbxd_harness
from sbxclient import SESSION_TERMINAL, uid, wait_until

pytestmark = [pytest.mark.own_daemon, pytest.mark.slow]


@pytest.fixture
def own_sbxd():
    """Factory for private daemons (not the shared one).  Each is killed at teardown if
    the test did not stop it.  They share one DerivedConfig (a restart keeps the database)."""
    if os.environ.get("SBXD_URL"):
        pytest.skip("SBXD_URL set: cannot start a private sbxd")
    try:
        config = sbxd_harness.DerivedConfig()
    except sbxd_harness.NotAvailable as e:
        pytest.skip(str(e))
    procs = []

    def start(data_dir=None):
        try:
            p = sbxd_harness.SbxdProcess(data_dir=data_dir, config=config)
        except sbxd_harness.NotAvailable as e:
            pytest.skip(str(e))
        procs.append(p)
        return p.start()

    try:
        yield start
    finally:
        for p in procs:
            p.cleanup()
        config.cleanup()


def test_sigterm_lets_an_in_flight_execute_sync_finish_then_exits_0(own_sbxd):
    d = own_sbxd()
    api = d.client
    r = api.post("/sessions", json={"template_id": "python-basic"})
    assert r.status == 201, r
    sid = r.body["id"]
    code = "import time\ndef handler(event):\n    time.sleep(3)\n    return 'finished'\n"
    out = {}

    def call():
        try:
            out["resp"] = api.post("/executions/sessions/%s/execute-sync" % sid,
                                   json={"code": code, "language": "python"},
                                   params={"sync_timeout": 60}, timeout=60)
        except Exception as e:  # reported below
            out["error"] = e
    t = threading.Thread(target=call)
    t.start()

    def running():
        items = api.get("/sessions/%s/executions" % sid).body["items"]
        return items and items[0]["status"] == "running"
    wait_until(running, 20, interval=0.05, what="execution running")
    d.proc.send_signal(signal.SIGTERM)
    t.join(60)
    assert not t.is_alive(), "execute-sync still blocked 60 s after SIGTERM"
    assert "error" not in out, "execute-sync failed during shutdown: %r\n%s" % (
        out.get("error"), d.log_tail())
    resp = out["resp"]
    assert resp.status == 200, (resp, d.log_tail())
    assert resp.body["status"] == "completed" and resp.body["return_value"] == "finished", resp
    try:
        rc = d.proc.wait(timeout=30)
    except Exception:
        rc = None
    assert rc == 0, "sbxd exit status %r after SIGTERM\n%s" % (rc, d.log_tail())


def test_sigterm_on_idle_daemon_exits_0_and_closes_the_port(own_sbxd):
    d = own_sbxd()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0, d.log_tail()
    with pytest.raises(OSError):
        d.client.get("/health", timeout=2)


def test_restart_on_same_data_dir_keeps_sessions_and_templates(own_sbxd):
    data_dir = tempfile.mkdtemp(prefix="sbxd-it-restart-")
    try:
        first = own_sbxd(data_dir)
        api = first.client
        tid = uid("tpl")
        r = api.post("/templates", json={
            "id": tid, "name": "survives restart",
            "image_url": "sandbox-template-python-basic:latest", "runtime_type": "python3.11",
            "default_cpu_cores": 1, "default_memory_mb": 256, "default_disk_mb": 512,
            "default_timeout_sec": 300})
        assert r.status == 201, r
        r = api.post("/sessions", json={"template_id": "python-basic"})
        assert r.status == 201, r
        sid = r.body["id"]
        ex = api.execute_sync(sid, "def handler(e):\n    return 'before'\n")
        assert ex["status"] == "completed", ex
        first.stop_and_check()

        second = own_sbxd(data_dir)
        api = second.client
        assert api.get("/templates/%s" % tid).status == 200
        assert {"python-basic", "nodejs-basic", "shell-basic"} <= {
            t["id"] for t in api.get("/templates").body}
        old = api.get("/executions/%s" % ex["id"])
        assert old.status == 200 and old.body["return_value"] == "before", old

        # State sync must settle the session: running (re-adopted) or failed (vanished).
        def settled():
            s = api.get("/sessions/%s" % sid)
            assert s.status == 200, s
            return s.body if s.body["status"] != "creating" else None
        s = wait_until(settled, 30, interval=0.2, what="session settled after restart")
        assert s["status"] in {"running"} | SESSION_TERMINAL, s
        if s["status"] == "running":
            ex2 = api.execute_sync(sid, "def handler(e):\n    return 'after'\n")
            assert ex2["status"] == "completed" and ex2["return_value"] == "after", ex2
        else:
            assert s["status"] == "failed", s
        second.stop_and_check()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_restart_settles_an_execution_that_was_running_at_shutdown(own_sbxd):
    data_dir = tempfile.mkdtemp(prefix="sbxd-it-restart-")
    try:
        first = own_sbxd(data_dir)
        api = first.client
        sid = api.post("/sessions", json={"template_id": "python-basic"}).body["id"]
        r = api.post("/sessions/%s/execute" % sid, json={
            "code": "import time\ndef handler(e):\n    time.sleep(2)\n    return 'x'\n",
            "language": "python"})
        assert r.status == 201, r
        eid = r.body["execution_id"]
        first.stop_and_check()
        second = own_sbxd(data_dir)
        api = second.client

        def terminal():
            e = api.get("/executions/%s" % eid)
            assert e.status == 200, e
            return e.body if e.body["status"] not in ("pending", "running") else None
        e = wait_until(terminal, 30, interval=0.2, what="execution settled after restart")
        assert e["status"] in ("completed", "failed", "crashed", "timeout"), e
        second.stop_and_check()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
