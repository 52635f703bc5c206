"""Session lifecycle limits (issue 6 item 4; docs/configuration.md `sessions`):

- sessions.max_lifetime_s ends a session (`timeout`, reason naming max_lifetime_s) however
  active it is -- against a private daemon with a 5 s lifetime and a 200 ms reaper;
- a session's own `timeout` is an idle limit (same daemon);
- `last_activity_at` moves forward with every execution and every file list, upload,
  download and delete, and not with reads of the session (the suite's daemon).
"""

import time

import pytest

from sbxclient import SESSION_TERMINAL, parse_ts, wait_until
from sbxd_fixtures import start_private

LIFETIME_S = 5
REAP_MS = 200
HANDLER = "def handler(e):\n    return e['n']\n"


@pytest.fixture(scope="module")
def limited():
    d = start_private({"sessions": {"max_lifetime_s": LIFETIME_S, "reap_interval_ms": REAP_MS,
                                    "sync_interval_ms": 3600000}})
    try:
        yield d
        d.stop_and_check()
    finally:
        d.cleanup()


def get(api, sid):
    r = api.get("/sessions/%s" % sid)
    assert r.status == 200, r
    return r.body


@pytest.mark.own_daemon
def test_an_active_session_ends_at_max_lifetime(limited):
    api = limited.client
    s = api.post("/sessions", json={"template_id": "python-basic", "timeout": 3600}).body
    sid = s["id"]
    try:
        created = parse_ts(s["created_at"])
        n, end = 0, time.monotonic() + LIFETIME_S + 10
        while time.monotonic() < end:
            r = api.execute_sync(sid, HANDLER, event={"n": n}, sync_timeout=30, expect=None)
            if r.status != 200 or r.body.get("status") != "completed":
                break  # the session ended under us
            n += 1
            time.sleep(0.2)
        got = wait_until(lambda: (lambda b: b if b["status"] in SESSION_TERMINAL else None)(
            get(api, sid)), 5, what="session %s ended" % sid)
        assert got["status"] == "timeout", got
        assert "max_lifetime_s" in (got["error_message"] or ""), got
        assert n >= 10, ("the session was not kept busy", n)
        lived = (parse_ts(got["completed_at"]) - created).total_seconds()
        assert LIFETIME_S <= lived <= LIFETIME_S + 3, (lived, got)
        # It was active to the end: its last activity is well within its idle timeout.
        idle = (parse_ts(got["completed_at"]) - parse_ts(got["last_activity_at"])).total_seconds()
        assert idle < 2, got
        r = api.post("/sessions/%s/execute" % sid, json={"code": HANDLER, "language": "python"})
        assert r.status in (409, 410, 422), r
    finally:
        api.delete("/sessions/%s" % sid)


@pytest.mark.own_daemon
def test_a_session_idle_for_its_timeout_ends_before_its_lifetime(limited):
    api = limited.client
    s = api.post("/sessions", json={"template_id": "python-basic", "timeout": 1}).body
    sid = s["id"]
    try:
        ex = api.execute_sync(sid, HANDLER, event={"n": 1})
        assert ex["status"] == "completed", ex
        got = wait_until(lambda: (lambda b: b if b["status"] in SESSION_TERMINAL else None)(
            get(api, sid)), LIFETIME_S + 5, interval=0.1, what="session %s ended" % sid)
        assert got["status"] == "timeout", got
        assert "idle" in (got["error_message"] or ""), got
        idle = (parse_ts(got["completed_at"]) - parse_ts(got["last_activity_at"])).total_seconds()
        assert 1 <= idle <= 1 + 2, got
    finally:
        api.delete("/sessions/%s" % sid)


def test_last_activity_moves_with_executions_and_file_operations(api, make_session):
    sid = make_session("python-basic")["id"]
    last = [parse_ts(get(api, sid)["last_activity_at"])]

    def moved(what):
        now = parse_ts(get(api, sid)["last_activity_at"])
        assert now > last[0], "%s did not move last_activity_at (%s -> %s)" % (
            what, last[0], now)
        last[0] = now
        time.sleep(0.01)  # timestamps have millisecond resolution

    time.sleep(0.01)
    ex = api.execute_sync(sid, HANDLER, event={"n": 3})
    assert ex["status"] == "completed", ex
    moved("an execution")
    r = api.upload(sid, "act.txt", b"activity\n")
    assert r.status in (200, 201), r
    moved("an upload")
    r = api.get("/sessions/%s/files" % sid)
    assert r.status == 200, r
    moved("a file list")
    r = api.download(sid, "act.txt")
    assert r.status == 200 and r.raw == b"activity\n", r
    moved("a download")
    r = api.delete("/sessions/%s/files/act.txt" % sid)
    assert r.status in (200, 204), r
    moved("a file delete")
    # Reading the session is not activity.
    time.sleep(0.05)
    for _ in range(3):
        get(api, sid)
    assert parse_ts(get(api, sid)["last_activity_at"]) == last[0]
