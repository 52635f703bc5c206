"""The health probe (issue 6 item 5; docs/configuration.md sessions.probe_interval_ms and
the template field on_sandbox_failure), against a private daemon probing every 300 ms.
Sandboxes are killed or frozen behind sbxd's back (sandbox_access.py) and no API call is
made until the daemon's log says it acted, so what ends the session is the probe:

- a killed sandbox: the session is `failed` with an error_message naming the cause;
- an execution running in a sandbox that dies ends `crashed`, never pending/running;
- on_sandbox_failure = "recreate": the session stays `running` with a fresh, empty sandbox
  (`recoveries` counts them), at most 3 times, then it fails;
- a frozen executor (SIGSTOP; a paused container on docker): failed after two probes.
"""

import re
import time

import pytest

from sandbox_access import RUNTIME, freeze_sandbox, kill_sandbox
from sbxclient import EXEC_TERMINAL, uid, wait_until
from sbxd_fixtures import start_private

pytestmark = [
    pytest.mark.own_daemon,
    pytest.mark.skipif(RUNTIME not in ("linux", "docker"),
                       reason="sandboxes are killed behind sbxd's back on the linux and "
                              "docker runtimes only"),
]

PROBE_MS = 300
SETTINGS = {"sessions": {"probe_interval_ms": PROBE_MS, "sync_interval_ms": 3600000}}
ACT_S = 15  # bound for the probe to act on a killed sandbox (50 probe intervals)
FROZEN_S = 30  # two /health probes of 3 s each, plus the intervals, with a wide margin
SLEEPER = "import time\ndef handler(e):\n    time.sleep(30)\n    return 'slept'\n"
HANDLER = "def handler(e):\n    return e['n'] + 1\n"


@pytest.fixture(scope="module")
def probed():
    d = start_private(SETTINGS)
    try:
        yield d
        d.stop_and_check()
    finally:
        d.cleanup()


def wait_log(proc, pattern, deadline_s, what):
    """Poll the daemon's log (not the API) until a line matches; return the match."""
    rx = re.compile(pattern)

    def found():
        with open(proc.log_path, errors="replace") as f:
            for line in f:
                m = rx.search(line)
                if m:
                    return m
        return None
    return wait_until(found, deadline_s, interval=0.1, what=what)


def session(proc, sid):
    r = proc.client.get("/sessions/%s" % sid)
    assert r.status == 200, r
    return r.body


def run_ok(proc, sid, n=1):
    ex = proc.client.execute_sync(sid, HANDLER, event={"n": n}, sync_timeout=60)
    assert ex["status"] == "completed" and ex["return_value"] == n + 1, ex
    return ex


def start_sleeper(proc, sid):
    r = proc.client.post("/sessions/%s/execute" % sid,
                         json={"code": SLEEPER, "language": "python", "timeout": 60})
    assert r.status == 201, r
    eid = r.body["execution_id"]
    wait_until(lambda: proc.client.get("/executions/%s" % eid).body["status"] == "running",
               20, interval=0.05, what="execution %s running" % eid)
    return eid


def recreating_template(proc):
    tid = uid("recreate")
    r = proc.client.post("/templates", json={
        "id": tid, "name": "recreated on failure",
        "image_url": "sandbox-template-python-basic:latest", "runtime_type": "python3.11",
        "default_cpu_cores": 0.5, "default_memory_mb": 128, "default_disk_mb": 64,
        "on_sandbox_failure": "recreate"})
    assert r.status == 201, r
    assert r.body["on_sandbox_failure"] == "recreate", r
    return tid


def failed_line(sid):
    return r"session=%s status=failed reason=(.*)$" % re.escape(sid)


def test_a_killed_sandbox_fails_its_session_with_the_reason(probed):
    s = probed.client.post("/sessions", json={"template_id": "python-basic"}).body
    sid = s["id"]
    try:
        run_ok(probed, sid)
        how = kill_sandbox(probed, sid)
        m = wait_log(probed, failed_line(sid), ACT_S, "the probe failing session %s (%s)"
                     % (sid, how))
        got = session(probed, sid)
        assert got["status"] == "failed", got
        msg = got["error_message"] or ""
        assert msg == m.group(1).strip(), (msg, m.group(0))
        assert "probe" in msg and ("exited" in msg or "gone" in msg or "stopped" in msg), msg
        # Nothing runs in it any more: a new execution is refused, not left pending.
        r = probed.client.post("/sessions/%s/execute" % sid,
                               json={"code": HANDLER, "language": "python"})
        assert r.status in (409, 410, 422), r
    finally:
        probed.client.delete("/sessions/%s" % sid)


def test_an_execution_running_when_its_sandbox_dies_ends_crashed(probed):
    s = probed.client.post("/sessions", json={"template_id": "python-basic"}).body
    sid = s["id"]
    try:
        eid = start_sleeper(probed, sid)
        kill_sandbox(probed, sid)
        wait_log(probed, failed_line(sid), ACT_S, "session %s failed" % sid)
        ex = wait_until(lambda: (lambda b: b if b["status"] in EXEC_TERMINAL else None)(
            probed.client.get("/executions/%s" % eid).body), ACT_S, interval=0.2,
            what="execution %s terminal" % eid)
        assert ex["status"] == "crashed", ex
        assert ex["error_message"], ex
        got = session(probed, sid)
        assert got["status"] == "failed" and got["error_message"], got
        items = probed.client.get("/sessions/%s/executions" % sid).body["items"]
        assert [e["status"] for e in items] == ["crashed"], items
    finally:
        probed.client.delete("/sessions/%s" % sid)


def test_recreate_gives_the_session_a_fresh_sandbox_at_most_three_times(probed):
    api = probed.client
    tid = recreating_template(probed)
    s = api.post("/sessions", json={"template_id": tid}).body
    sid = s["id"]
    try:
        ex = api.execute_sync(sid, "echo before > /workspace/f", language="shell")
        assert ex["status"] == "completed", ex
        recreated = r"session=%s sandbox recreated \((.*)\)$" % re.escape(sid)
        seen = {session(probed, sid)["sandbox_id"]}
        for n in (1, 2, 3):
            eid = start_sleeper(probed, sid) if n == 1 else None
            kill_sandbox(probed, sid)

            def recoveries():
                with open(probed.log_path, errors="replace") as f:
                    k = sum(1 for line in f if re.search(recreated, line))
                return k >= n or None
            wait_until(recoveries, ACT_S, interval=0.1, what="recreate #%d of %s" % (n, sid))
            # One death, one recreate: the execution's failure path and the probe both see
            # it (finding F4: both used to rebuild it, leaking the first new sandbox).
            time.sleep(3 * PROBE_MS / 1000.0)
            with open(probed.log_path, errors="replace") as f:
                lines = [ln for ln in f if re.search(recreated, ln)]
            assert len(lines) == n, ("one death, one recreate", lines)
            got = session(probed, sid)
            assert got["status"] == "running", got
            assert got.get("recoveries") == n, got
            assert got.get("error_message") is None, got
            assert got["sandbox_id"] and got["sandbox_id"] not in seen, (seen, got)
            seen.add(got["sandbox_id"])
            if eid:
                ex = wait_until(lambda: (lambda b: b if b["status"] in EXEC_TERMINAL else None)(
                    api.get("/executions/%s" % eid).body), ACT_S, interval=0.2,
                    what="the execution in the dead sandbox terminal")
                assert ex["status"] == "crashed", ex
            # The new sandbox works, and its workspace starts empty.
            ex = api.execute_sync(sid, "ls -A /workspace; echo n=%d" % n, language="shell")
            assert ex["status"] == "completed" and ex["stdout"] == "n=%d\n" % n, ex
            run_ok(probed, sid, n)
        # The fourth death is one too many.
        kill_sandbox(probed, sid)
        wait_log(probed, failed_line(sid), ACT_S, "session %s failed after 3 recoveries" % sid)
        got = session(probed, sid)
        assert got["status"] == "failed" and got.get("recoveries") == 3, got
        assert got["error_message"], got
    finally:
        api.delete("/sessions/%s" % sid)
        api.delete("/templates/%s" % tid)


def test_a_frozen_executor_fails_its_session_after_two_probes(probed):
    s = probed.client.post("/sessions", json={"template_id": "python-basic"}).body
    sid = s["id"]
    thaw = None
    try:
        run_ok(probed, sid)
        eid = start_sleeper(probed, sid)
        t0 = time.monotonic()
        thaw = freeze_sandbox(probed, sid)
        m = wait_log(probed, failed_line(sid), FROZEN_S, "session %s of a frozen executor "
                     "failed" % sid)
        took = time.monotonic() - t0
        got = session(probed, sid)
        assert got["status"] == "failed", got
        if RUNTIME == "linux":
            # Two strikes: at least one probe timeout (3 s) before the verdict.
            assert "stopped answering" in m.group(1), m.group(0)
            assert took >= 3, ("failed before a second probe could time out", took)
        ex = wait_until(lambda: (lambda b: b if b["status"] in EXEC_TERMINAL else None)(
            probed.client.get("/executions/%s" % eid).body), ACT_S, interval=0.2,
            what="the execution in the frozen sandbox terminal")
        assert ex["status"] == "crashed", ex
    finally:
        if thaw:
            thaw()
        probed.client.delete("/sessions/%s" % sid)


def test_a_healthy_session_is_left_alone_by_the_probe(probed):
    s = probed.client.post("/sessions", json={"template_id": "python-basic"}).body
    sid = s["id"]
    try:
        time.sleep(10 * PROBE_MS / 1000.0)  # ten probe passes
        assert session(probed, sid)["status"] == "running"
        run_ok(probed, sid, 5)
        with open(probed.log_path, errors="replace") as f:
            assert not [ln for ln in f if sid in ln and "probe" in ln], "probe acted on it"
    finally:
        probed.client.delete("/sessions/%s" % sid)
