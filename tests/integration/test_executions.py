"""Executions: both path styles, the three languages, async/sync, validation, timeouts,
metrics."""

import threading
import time

import pytest

from sbxclient import EXEC_TERMINAL, assert_error, parse_ts, uid, wait_until

STYLES = ("sessions", "executions")  # /sessions/{id}/... and /executions/sessions/{id}/...
EXEC_FIELDS = ("id", "session_id", "status", "code", "language", "timeout", "exit_code",
               "error_message", "execution_time", "stdout", "stderr", "return_value",
               "artifacts", "metrics", "created_at", "started_at", "completed_at")

HELLO = 'def handler(event):\n    return {"result": "hello world"}\n'


def prefix(style, sid):
    return ("/sessions/%s" if style == "sessions" else "/executions/sessions/%s") % sid


@pytest.fixture(scope="module")
def module_sessions(api):
    """One long-lived session per default template for the read-only execution tests."""
    made = {}
    for tpl in ("python-basic", "nodejs-basic", "shell-basic"):
        r = api.post("/sessions", json={"template_id": tpl})
        assert r.status == 201, r
        made[tpl] = r.body["id"]
    yield made
    for sid in made.values():
        try:
            api.delete("/sessions/%s" % sid, timeout=30)
        except OSError:
            pass


@pytest.fixture
def py_sid(module_sessions):
    return module_sessions["python-basic"]


@pytest.fixture
def js_sid(module_sessions):
    return module_sessions["nodejs-basic"]


@pytest.fixture
def sh_sid(module_sessions):
    return module_sessions["shell-basic"]


# ---- python -----------------------------------------------------------------------------

@pytest.mark.parametrize("style", STYLES)
def test_python_handler_return_value_via_execute_sync(api, py_sid, style):
    ex = api.execute_sync(py_sid, HELLO, style=style)
    for k in EXEC_FIELDS:
        assert k in ex, "Execution lacks %r: %r" % (k, ex)
    assert ex["status"] == "completed", ex
    assert ex["return_value"] == {"result": "hello world"}, ex
    assert ex["exit_code"] == 0, ex
    assert ex["error_message"] in (None, ""), ex
    assert ex["session_id"] == py_sid and ex["language"] == "python"
    assert ex["code"] == HELLO


def test_python_handler_with_context_gets_execution_id(api, py_sid):
    code = ("def handler(event, context):\n"
            "    c = context if isinstance(context, dict) else vars(context)\n"
            "    return {'eid': c.get('execution_id'), 'ev': event}\n")
    ex = api.execute_sync(py_sid, code, event={"a": [1, 2, {"b": None}], "s": "é"})
    assert ex["status"] == "completed", ex
    assert ex["return_value"]["eid"] == ex["id"], ex
    assert ex["return_value"]["ev"] == {"a": [1, 2, {"b": None}], "s": "é"}, ex


def test_python_event_defaults_to_empty_object(api, py_sid):
    ex = api.execute_sync(py_sid, "def handler(event):\n    return event\n")
    assert ex["status"] == "completed" and ex["return_value"] == {}, ex


def test_a_return_value_holding_nul_characters_round_trips(api, py_sid):
    # JSON carries U+0000 as \\u0000; the value must come back whole, and from the store.
    ex = api.execute_sync(py_sid, 'def handler(event):\n    return {"s": "a\\x00b", "k": [0]}\n')
    assert ex["status"] == "completed", ex
    assert ex["return_value"] == {"s": "a\x00b", "k": [0]}, ex
    again = api.get("/executions/%s" % ex["id"])
    assert again.status == 200 and again.body["return_value"]["s"] == "a\x00b", again


def test_python_print_goes_to_stdout_and_sys_stderr_to_stderr(api, py_sid):
    code = ("import sys\n"
            "def handler(event):\n"
            "    print('to-out-123')\n"
            "    print('to-err-456', file=sys.stderr)\n"
            "    return None\n")
    ex = api.execute_sync(py_sid, code)
    assert ex["status"] == "completed", ex
    assert "to-out-123" in ex["stdout"] and "to-err-456" not in ex["stdout"], ex
    assert "to-err-456" in ex["stderr"] and "to-out-123" not in ex["stderr"], ex


def test_python_exception_is_failed_with_type_message_and_traceback(api, py_sid):
    code = ("def inner():\n    raise ValueError('boom')\n"
            "def handler(event):\n    inner()\n")
    ex = api.execute_sync(py_sid, code)
    assert ex["status"] == "failed", ex
    assert ex["error_message"] == "ValueError: boom", ex
    assert "Traceback" in ex["stderr"] and "inner" in ex["stderr"], ex
    assert ex["exit_code"] not in (None, 0), ex


def test_python_missing_handler_is_failed(api, py_sid):
    ex = api.execute_sync(py_sid, "x = 1\n")
    assert ex["status"] == "failed", ex
    assert ex["error_message"], ex


def test_python_non_json_return_value_is_failed(api, py_sid):
    ex = api.execute_sync(py_sid, "def handler(event):\n    return object()\n")
    assert ex["status"] == "failed", ex


def test_python_executions_are_isolated_but_tmp_persists(api, py_sid):
    code1 = ("import builtins\n"
             "def handler(event):\n"
             "    builtins.LEAK = 1\n"
             "    open('/tmp/persist-probe', 'w').write('kept')\n")
    code2 = ("import builtins\n"
             "def handler(event):\n"
             "    return {'leak': hasattr(builtins, 'LEAK'),"
             " 'tmp': open('/tmp/persist-probe').read()}\n")
    assert api.execute_sync(py_sid, code1)["status"] == "completed"
    ex = api.execute_sync(py_sid, code2)
    assert ex["return_value"] == {"leak": False, "tmp": "kept"}, ex


# ---- javascript -------------------------------------------------------------------------

JS_CASES = {
    "top_level_sync": "function handler(event, context) { return {n: event.n + 1}; }\n",
    "module_exports": "module.exports = { handler: (event) => ({n: event.n + 1}) };\n",
    "exports_handler": "exports.handler = function (event) { return {n: event.n + 1}; };\n",
    "async": ("async function handler(event) {\n"
              "  await new Promise(r => setTimeout(r, 20));\n"
              "  return {n: event.n + 1};\n}\n"),
    "exported_async": ("exports.handler = async (event, context) => {\n"
                       "  await null; return {n: event.n + 1};\n};\n"),
}


@pytest.mark.parametrize("case", sorted(JS_CASES))
def test_javascript_handler_forms_return_value(api, js_sid, case):
    ex = api.execute_sync(js_sid, JS_CASES[case], language="javascript", event={"n": 41})
    assert ex["status"] == "completed", ex
    assert ex["return_value"] == {"n": 42}, ex


def test_javascript_console_and_thrown_error(api, js_sid):
    code = ("function handler(e) { console.log('js-out'); console.error('js-err');\n"
            "  throw new Error('kaput'); }\n")
    ex = api.execute_sync(js_sid, code, language="javascript")
    assert ex["status"] == "failed", ex
    assert "js-out" in ex["stdout"] and "js-err" in ex["stderr"], ex
    assert ex["error_message"] == "Error: kaput", ex


def test_javascript_rejected_promise_is_failed(api, js_sid):
    code = "async function handler(e) { throw new TypeError('nope'); }\n"
    ex = api.execute_sync(js_sid, code, language="javascript")
    assert ex["status"] == "failed", ex
    assert "nope" in (ex["error_message"] or ""), ex


# ---- shell ------------------------------------------------------------------------------

def test_shell_reads_event_from_stdin_and_sandbox_event(api, sh_sid):
    code = ('IN=$(cat)\n'
            'echo "stdin:$IN"\n'
            'echo "env:$SANDBOX_EVENT"\n'
            'echo "on-stderr" >&2\n')
    ex = api.execute_sync(sh_sid, code, language="shell", event={"marker": "zq7"})
    assert ex["status"] == "completed", ex
    lines = ex["stdout"].splitlines()
    stdin_line = [x for x in lines if x.startswith("stdin:")]
    env_line = [x for x in lines if x.startswith("env:")]
    assert stdin_line and '"marker"' in stdin_line[0] and "zq7" in stdin_line[0], ex
    assert env_line and '"marker"' in env_line[0] and "zq7" in env_line[0], ex
    assert "on-stderr" in ex["stderr"], ex
    assert ex["exit_code"] == 0


def test_shell_nonzero_exit_is_failed_with_exit_code(api, sh_sid):
    ex = api.execute_sync(sh_sid, "echo partial\nexit 3\n", language="shell")
    assert ex["status"] == "failed", ex
    assert ex["exit_code"] == 3, ex
    assert "partial" in ex["stdout"]
    assert ex["error_message"], ex


# ---- async execute and polling ----------------------------------------------------------

@pytest.mark.parametrize("style", STYLES)
def test_async_execute_returns_201_pending_then_result_is_pollable(api, py_sid, style):
    code = "import time\ndef handler(event):\n    time.sleep(0.5)\n    return event\n"
    r = api.post(prefix(style, py_sid) + "/execute",
                 json={"code": code, "language": "python", "event": {"k": 1}})
    assert r.status == 201, r
    assert set(r.body) >= {"execution_id", "session_id", "status", "created_at"}, r
    assert r.body["status"] == "pending", r
    assert r.body["session_id"] == py_sid
    parse_ts(r.body["created_at"])
    eid = r.body["execution_id"]
    for suffix in ("", "/status", "/result"):
        ex = api.wait_execution(eid, 60, path_suffix=suffix)
        assert ex["id"] == eid and ex["status"] == "completed", (suffix, ex)
        assert ex["return_value"] == {"k": 1}, (suffix, ex)
    ex = api.get("/executions/%s" % eid).body
    assert parse_ts(ex["started_at"]) <= parse_ts(ex["completed_at"]), ex
    assert parse_ts(ex["created_at"]) <= parse_ts(ex["completed_at"]), ex


def test_get_unknown_execution_is_404(api):
    for suffix in ("", "/status", "/result"):
        assert_error(api.get("/executions/%s%s" % (uid("missing"), suffix)), 404,
                     "Sandbox.ExecutionNotFound")


def test_execute_on_unknown_session_is_404(api):
    r = api.post("/sessions/%s/execute" % uid("missing"),
                 json={"code": HELLO, "language": "python"})
    assert_error(r, 404, "Sandbox.SessionNotFound")


@pytest.mark.parametrize("style", STYLES)
def test_list_executions_counts_all_and_pages(api, make_session, style):
    sid = make_session("python-basic")["id"]
    ids = [api.execute_sync(sid, HELLO)["id"] for _ in range(3)]
    r = api.get(prefix(style, sid) + "/executions", params={"limit": 2, "offset": 0})
    assert r.status == 200, r
    b = r.body
    assert b["total"] == 3 and b["limit"] == 2 and b["offset"] == 0, b
    assert len(b["items"]) == 2 and b["has_more"] is True, b
    b2 = api.get(prefix(style, sid) + "/executions", params={"limit": 2, "offset": 2}).body
    assert b2["total"] == 3 and len(b2["items"]) == 1 and b2["has_more"] is False, b2
    assert {x["id"] for x in b["items"] + b2["items"]} == set(ids)
    assert all(x["session_id"] == sid for x in b["items"] + b2["items"])


# ---- execute-sync validation and timeouts -----------------------------------------------

@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("params", [{"poll_interval": 0.05}, {"poll_interval": 11},
                                    {"sync_timeout": 5}, {"sync_timeout": 4000},
                                    {"poll_interval": "x"}])
def test_execute_sync_query_out_of_range_is_422(api, py_sid, style, params):
    r = api.post(prefix(style, py_sid) + "/execute-sync",
                 json={"code": HELLO, "language": "python"}, params=params)
    assert_error(r, 422, "Sandbox.InvalidParameter")


def test_execute_sync_accepts_boundary_query_values(api, py_sid):
    r = api.post("/executions/sessions/%s/execute-sync" % py_sid,
                 json={"code": HELLO, "language": "python"},
                 params={"poll_interval": 10, "sync_timeout": 10})
    assert r.status == 200 and r.body["status"] == "completed", r


def test_execute_sync_does_not_sleep_on_poll_interval(api, py_sid):
    t0 = time.monotonic()
    r = api.post("/executions/sessions/%s/execute-sync" % py_sid,
                 json={"code": HELLO, "language": "python"},
                 params={"poll_interval": 10, "sync_timeout": 60})
    assert r.status == 200, r
    assert time.monotonic() - t0 < 5, "execute-sync waited on poll_interval"


@pytest.mark.slow
def test_execute_sync_past_sync_timeout_is_408_and_execution_finishes(api, make_session):
    sid = make_session("python-basic")["id"]
    code = "import time\ndef handler(event):\n    time.sleep(14)\n    return 'late'\n"
    t0 = time.monotonic()
    r = api.post("/executions/sessions/%s/execute-sync" % sid,
                 json={"code": code, "language": "python", "timeout": 60},
                 params={"sync_timeout": 10}, timeout=40)
    elapsed = time.monotonic() - t0
    assert_error(r, 408, "Sandbox.ExecTimeout")
    assert 9 <= elapsed < 14, elapsed

    def finished():
        items = api.get("/sessions/%s/executions" % sid).body["items"]
        assert len(items) == 1, items
        return items[0] if items[0]["status"] in EXEC_TERMINAL else None
    ex = wait_until(finished, 30, interval=0.3, what="the 408'd execution finishing")
    assert ex["status"] == "completed" and ex["return_value"] == "late", ex


def test_execution_timeout_kills_the_handler(api, py_sid):
    code = "import time\ndef handler(event):\n    time.sleep(5)\n    return 'too late'\n"
    t0 = time.monotonic()
    ex = api.execute_sync(py_sid, code, timeout=1)
    assert ex["status"] == "timeout", ex
    assert ex["return_value"] != "too late"
    assert time.monotonic() - t0 < 4.5, "timeout=1 took as long as the sleep"
    # The session is usable afterwards.
    assert api.execute_sync(py_sid, HELLO)["status"] == "completed"


# ---- request validation -----------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"code": "", "language": "python"},
    {"language": "python"},
    {"code": HELLO, "language": "cobol"},
    {"code": HELLO},
    {"code": HELLO, "language": "python", "timeout": 0},
    {"code": HELLO, "language": "python", "timeout": 3601},
    {"code": HELLO, "language": "python", "timeout": "soon"},
    {"code": HELLO, "language": "python", "event": "not-an-object"},
    {"code": HELLO, "language": "python", "env_vars": ["A=1"]},
    {"code": 42, "language": "python"},
], ids=["empty-code", "no-code", "cobol", "no-language", "timeout-0", "timeout-3601",
        "timeout-str", "event-str", "env-list", "code-int"])
@pytest.mark.parametrize("style", STYLES)
def test_execute_with_invalid_body_is_422(api, py_sid, style, body):
    r = api.post(prefix(style, py_sid) + "/execute", json=body)
    assert_error(r, 422, "Sandbox.InvalidParameter")


def test_execute_with_malformed_json_is_400(api, py_sid):
    r = api.request("POST", "/sessions/%s/execute" % py_sid, data=b"{code:",
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_execute_accepts_timeout_bounds_1_and_3600(api, py_sid):
    for t in (1, 3600):
        ex = api.execute_sync(py_sid, HELLO, timeout=t)
        assert ex["status"] == "completed" and ex["timeout"] == t, ex


def test_code_of_exactly_1_mib_is_accepted(api, py_sid):
    head = HELLO + "#"
    code = head + "x" * (1024 * 1024 - len(head) - 1) + "\n"
    assert len(code.encode()) == 1024 * 1024
    ex = api.execute_sync(py_sid, code)
    assert ex["status"] == "completed", {k: ex[k] for k in ("status", "error_message")}


def test_code_over_1_mib_is_422(api, py_sid):
    code = HELLO + "#" + "x" * (1024 * 1024)
    r = api.post("/sessions/%s/execute" % py_sid, json={"code": code, "language": "python"})
    assert_error(r, 422, "Sandbox.InvalidParameter")


def test_body_over_server_limit_is_413(api, py_sid):
    code = HELLO + "#" + "x" * (64 * 1024 * 1024)
    r = api.post("/sessions/%s/execute" % py_sid, json={"code": code, "language": "python"})
    assert_error(r, 413, "Sandbox.PayloadTooLarge")
    assert api.get("/health").status == 200


# ---- metrics ----------------------------------------------------------------------------

def test_execution_has_numeric_metrics_and_execution_time(api, py_sid):
    code = ("def handler(event):\n"
            "    s = 0\n"
            "    for i in range(2_000_000):\n"
            "        s += i\n"
            "    b = b'x' * (32 * 1024 * 1024)\n"
            "    return s\n")
    ex = api.execute_sync(py_sid, code)
    assert ex["status"] == "completed", ex
    m = ex["metrics"]
    for k in ("duration_ms", "cpu_time_ms", "peak_memory_mb"):
        assert isinstance(m.get(k), (int, float)) and not isinstance(m.get(k), bool), m
        assert m[k] >= 0, m
    assert m["duration_ms"] > 0 and m["cpu_time_ms"] > 0, m
    assert m["peak_memory_mb"] >= 32, "32 MiB buffer not reflected in peak memory: %r" % m
    assert isinstance(ex["execution_time"], (int, float)) and ex["execution_time"] > 0, ex


def test_concurrent_executions_in_one_session_all_complete(api, make_session):
    sid = make_session("python-basic")["id"]
    results = []

    def run(i):
        results.append(api.execute_sync(sid, "def handler(e):\n    return e\n", event={"i": i}))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(r["return_value"]["i"] for r in results) == list(range(5)), results
