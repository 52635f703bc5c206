"""Sessions: create, validate, get, list, terminate, delete, activity, env, idle timeout."""

import re
import time

import pytest

from sbxclient import (SESSION_TERMINAL, assert_error, parse_size, parse_ts, uid,
                       wait_until)

SESSION_FIELDS = ("id", "template_id", "status", "resource_limit", "workspace_path",
                  "runtime_type", "runtime_node", "container_id", "pod_name", "env_vars",
                  "timeout", "created_at", "updated_at", "completed_at", "last_activity_at")


# ---- create -----------------------------------------------------------------------------

def test_create_from_python_basic_with_defaults_is_running_with_template_limits(api, make_session):
    s = make_session("python-basic")
    for k in SESSION_FIELDS:
        assert k in s, "Session lacks %r: %r" % (k, s)
    assert s["template_id"] == "python-basic"
    assert s["status"] == "running", s
    assert s["timeout"] == 300, s
    rl = s["resource_limit"]
    for k in ("cpu", "memory", "disk", "max_processes"):
        assert rl.get(k) not in (None, "", 0), "resource_limit.%s not filled: %r" % (k, rl)
    tpl = api.get("/templates/python-basic").body
    assert float(rl["cpu"]) == float(tpl["default_cpu_cores"]), (rl, tpl)
    assert parse_size(rl["memory"]) == tpl["default_memory_mb"] * 1024 ** 2, (rl, tpl)
    assert parse_size(rl["disk"]) == tpl["default_disk_mb"] * 1024 ** 2, (rl, tpl)
    parse_ts(s["created_at"])


def test_create_with_flat_resource_fields_sets_resource_limit(make_session):
    s = make_session("python-basic", cpu="1", memory="512Mi", disk="1Gi")
    rl = s["resource_limit"]
    assert float(rl["cpu"]) == 1.0, rl
    assert parse_size(rl["memory"]) == 512 * 1024 ** 2, rl
    assert parse_size(rl["disk"]) == 1024 ** 3, rl


def test_create_with_nested_resources_sets_resource_limit(make_session):
    s = make_session("python-basic",
                     resources={"cpu": "2", "memory": "768Mi", "disk": "2Gi", "max_processes": 64})
    rl = s["resource_limit"]
    assert float(rl["cpu"]) == 2.0, rl
    assert parse_size(rl["memory"]) == 768 * 1024 ** 2, rl
    assert parse_size(rl["disk"]) == 2 * 1024 ** 3, rl
    assert int(rl["max_processes"]) == 64, rl


def test_create_with_custom_id_uses_it(api, make_session):
    sid = uid("sess")
    s = make_session("python-basic", id=sid)
    assert s["id"] == sid
    assert api.get("/sessions/%s" % sid).status == 200


def test_create_with_duplicate_id_is_409(make_session):
    sid = uid("sess")
    make_session("python-basic", id=sid)
    r = make_session("python-basic", id=sid, expect=None)
    assert_error(r, 409, "Sandbox.Conflict")


def test_create_with_unknown_template_is_400(make_session):
    r = make_session("no-such-template-" + uid(), expect=None)
    assert_error(r, 400)


@pytest.mark.parametrize("fields", [
    {"memory": "lots"},
    {"disk": "huge"},
    {"cpu": -1},
    {"cpu": "-1"},
    {"timeout": 0},
    {"timeout": -5},
    {"timeout": "abc"},
    {"env_vars": "not-an-object"},
    {"env_vars": {"K": 1}},
    {"resources": "not-an-object"},
    {"resources": {"max_processes": -3}},
    {"dependencies": "numpy"},
], ids=lambda f: "-".join("%s=%s" % kv for kv in f.items()))
def test_create_with_invalid_values_is_422(make_session, fields):
    r = make_session("python-basic", expect=None, **fields)
    assert_error(r, 422, "Sandbox.InvalidParameter")


def test_create_with_non_string_template_id_is_422(api):
    r = api.post("/sessions", json={"template_id": 5})
    assert_error(r, 422)


def test_create_without_template_id_is_422(api):
    r = api.post("/sessions", json={"timeout": 60})
    assert_error(r, 422)


def test_create_with_malformed_json_is_400(api):
    r = api.request("POST", "/sessions", data=b'{"template_id": "python-basic",',
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_create_with_non_object_json_is_422_or_400(api):
    r = api.post("/sessions", json=["python-basic"])
    assert r.status in (400, 422), r
    assert_error(r, r.status)


# ---- get / list -------------------------------------------------------------------------

def test_get_returns_the_session(api, py_session):
    r = api.get("/sessions/%s" % py_session["id"])
    assert r.status == 200, r
    assert r.body["id"] == py_session["id"]
    assert r.body["template_id"] == "python-basic"
    assert r.body["status"] == "running"


def test_get_unknown_session_is_404_session_not_found(api):
    r = api.get("/sessions/%s" % uid("missing"))
    assert_error(r, 404, "Sandbox.SessionNotFound")


def test_list_filters_by_template_and_status_and_pages(api, make_session, make_template):
    tpl = make_template()
    ids = [make_session(tpl["id"])["id"] for _ in range(3)]
    assert api.post("/sessions/%s/terminate" % ids[0]).status == 200

    r = api.get("/sessions", params={"template_id": tpl["id"], "limit": 2, "offset": 0})
    assert r.status == 200, r
    assert r.body["total"] == 3 and r.body["limit"] == 2 and r.body["offset"] == 0, r
    assert len(r.body["items"]) == 2 and r.body["has_more"] is True, r
    r2 = api.get("/sessions", params={"template_id": tpl["id"], "limit": 2, "offset": 2})
    assert len(r2.body["items"]) == 1 and r2.body["has_more"] is False, r2
    seen = {s["id"] for s in r.body["items"] + r2.body["items"]}
    assert seen == set(ids)

    run = api.get("/sessions", params={"template_id": tpl["id"], "status": "running"}).body
    assert run["total"] == 2 and {s["id"] for s in run["items"]} == set(ids[1:]), run
    term = api.get("/sessions", params={"template_id": tpl["id"], "status": "terminated"}).body
    assert term["total"] == 1 and term["items"][0]["id"] == ids[0], term


def test_list_defaults_to_limit_50_offset_0(api, py_session):
    r = api.get("/sessions")
    assert r.status == 200, r
    assert r.body["limit"] == 50 and r.body["offset"] == 0, r
    assert r.body["total"] >= 1
    assert len(r.body["items"]) <= 50


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"limit": "x"},
                                    {"offset": -1}, {"status": "bogus"}])
def test_list_with_invalid_query_is_422(api, params):
    assert_error(api.get("/sessions", params=params), 422)


def test_list_limit_200_is_accepted(api):
    assert api.get("/sessions", params={"limit": 200}).status == 200


# ---- terminate / delete -----------------------------------------------------------------

def test_terminate_is_200_terminated_and_idempotent(api, py_session):
    sid = py_session["id"]
    r = api.post("/sessions/%s/terminate" % sid)
    assert r.status == 200, r
    assert r.body["status"] == "terminated", r
    assert r.body["completed_at"] is not None, r
    r2 = api.post("/sessions/%s/terminate" % sid)
    assert r2.status == 200 and r2.body["status"] == "terminated", r2
    assert api.get("/sessions/%s" % sid).body["status"] == "terminated"


def test_terminate_unknown_session_is_404(api):
    assert_error(api.post("/sessions/%s/terminate" % uid("missing")), 404,
                 "Sandbox.SessionNotFound")


def test_execute_on_terminated_session_is_409(api, py_session):
    sid = py_session["id"]
    assert api.post("/sessions/%s/terminate" % sid).status == 200
    r = api.post("/sessions/%s/execute" % sid,
                 json={"code": "def handler(event):\n    return 1\n", "language": "python"})
    assert_error(r, 409, "Sandbox.Conflict")


def test_delete_is_204_then_404_and_removes_executions(api, py_session):
    sid = py_session["id"]
    ex = api.execute_sync(sid, "def handler(event):\n    return 1\n")
    assert api.get("/executions/%s" % ex["id"]).status == 200
    r = api.delete("/sessions/%s" % sid)
    assert r.status == 204, r
    assert r.raw == b""
    assert_error(api.get("/sessions/%s" % sid), 404, "Sandbox.SessionNotFound")
    assert_error(api.get("/executions/%s" % ex["id"]), 404, "Sandbox.ExecutionNotFound")


def test_delete_unknown_session_is_404(api):
    assert_error(api.delete("/sessions/%s" % uid("missing")), 404, "Sandbox.SessionNotFound")


# ---- activity and environment ----------------------------------------------------------

def _activity(api, sid):
    return parse_ts(api.get("/sessions/%s" % sid).body["last_activity_at"])


def test_last_activity_moves_after_an_execution(api, py_session):
    sid = py_session["id"]
    before = _activity(api, sid)

    def executed_and_moved():
        api.execute_sync(sid, "def handler(event):\n    return 1\n")
        return _activity(api, sid) > before
    # Timestamps may have one-second resolution: keep using the session until it moves.
    wait_until(executed_and_moved, 10, interval=0.2, what="last_activity_at moving")


def test_last_activity_moves_after_a_file_upload(api, py_session):
    sid = py_session["id"]
    before = _activity(api, sid)

    def uploaded_and_moved():
        assert api.upload(sid, "touch.txt", b"x").status in (200, 201)
        return _activity(api, sid) > before
    wait_until(uploaded_and_moved, 10, interval=0.2, what="last_activity_at moving")


def test_session_env_vars_reach_handlers_and_execution_env_overrides(api, make_session):
    s = make_session("python-basic", env_vars={"SESS_VAR": "from-session", "OVR": "session"})
    assert s["env_vars"].get("SESS_VAR") == "from-session", s
    code = ("import os\n"
            "def handler(event):\n"
            "    return {k: os.environ.get(k) for k in ('SESS_VAR', 'OVR', 'EXEC_ONLY')}\n")
    ex = api.execute_sync(s["id"], code, env_vars={"OVR": "execution", "EXEC_ONLY": "yes"})
    assert ex["status"] == "completed", ex
    assert ex["return_value"] == {"SESS_VAR": "from-session", "OVR": "execution",
                                  "EXEC_ONLY": "yes"}, ex
    ex2 = api.execute_sync(s["id"], code)
    assert ex2["return_value"] == {"SESS_VAR": "from-session", "OVR": "session",
                                   "EXEC_ONLY": None}, ex2


# ---- idle timeout -----------------------------------------------------------------------

MAX_IDLE_WAIT_S = 120


def _create_with_smallest_timeout(api, make_session, wanted=10):
    """Ask for timeout=wanted; if the server's minimum is higher, read it from the 422
    message and use it (skipping when it would make the test wait too long)."""
    r = make_session("python-basic", timeout=wanted, expect=None)
    if r.status == 201:
        return r.body, wanted
    assert_error(r, 422)
    text = " ".join(str(r.body.get(k) or "") for k in ("description", "detail", "error_detail"))
    nums = sorted(int(n) for n in re.findall(r"\d+", text) if int(n) > wanted)
    assert nums, "422 for timeout=%d does not say the minimum: %r" % (wanted, r.body)
    minimum = nums[0]
    if minimum > MAX_IDLE_WAIT_S:
        pytest.skip("server minimum session timeout %ds is too long to wait for" % minimum)
    return make_session("python-basic", timeout=minimum), minimum


@pytest.mark.slow
def test_idle_session_moves_to_timeout_status_after_its_timeout(api, make_session):
    s, timeout = _create_with_smallest_timeout(api, make_session)
    sid = s["id"]
    t0 = time.monotonic()

    # Poll the *list* (not GET /sessions/{id}) so the polling itself is not session use.
    def timed_out():
        r = api.get("/sessions", params={"status": "timeout", "limit": 200})
        assert r.status == 200, r
        return any(x["id"] == sid for x in r.body["items"])
    wait_until(timed_out, timeout + 15, interval=0.5, what="session status timeout")
    assert time.monotonic() - t0 >= timeout - 1, "session timed out before its timeout"
    s2 = api.get("/sessions/%s" % sid).body
    assert s2["status"] == "timeout", s2
    assert s2["status"] in SESSION_TERMINAL
    r = api.post("/sessions/%s/execute" % sid,
                 json={"code": "def handler(e):\n    return 1\n", "language": "python"})
    assert_error(r, 409)
