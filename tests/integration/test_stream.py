"""Live output as Server-Sent Events: GET /api/v1/executions/{id}/stream relays an
execution's stdout/stderr while it runs and ends with the result; a finished execution is
replayed from its record."""
import http.client
import json
import time

from sbxclient import assert_error

TICKS = ("import time\n"
         "def handler(event):\n"
         "    for i in range(4):\n"
         "        print('tick', i, flush=True)\n"
         "        time.sleep(0.4)\n"
         "    return {'n': 4}\n")


def read_events(api, execution_id, deadline_s=30):
    """(arrival seconds, event, data) for each SSE event until the server ends the stream."""
    conn = http.client.HTTPConnection(api.host, api.port, timeout=deadline_s)
    conn.request("GET", "/api/v1/executions/%s/stream" % execution_id)
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    t0 = time.monotonic()
    events, kind, data = [], None, []
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and kind:
            events.append((time.monotonic() - t0, kind, json.loads("\n".join(data))))
            kind, data = None, []
    conn.close()
    return events


def test_stream_relays_stdout_live_then_the_result(api, py_session):
    r = api.post("/api/v1/sessions/%s/execute" % py_session["id"],
                 json={"language": "python", "code": TICKS})
    assert r.status == 201, r
    events = read_events(api, r.body["execution_id"])
    kinds = [k for _, k, _ in events]
    assert kinds[-1] == "result", kinds
    assert events[-1][2]["status"] == "completed"
    assert events[-1][2]["return_value"] == {"n": 4}
    out = [(t, d["data"]) for t, k, d in events if k == "stdout"]
    assert "".join(d for _, d in out) == "".join("tick %d\n" % i for i in range(4))
    # live, not buffered: the first tick arrives well before the result
    assert out[0][0] < events[-1][0] - 0.8, events


def test_stream_of_a_finished_execution_replays_output_and_result(api, py_session):
    ex = api.execute_sync(py_session["id"], "def handler(event):\n    print('hi')\n    return 7")
    events = read_events(api, ex["id"])
    assert [k for _, k, _ in events] == ["stdout", "result"], events
    assert events[0][2]["data"] == "hi\n"
    assert events[1][2]["return_value"] == 7


def test_stream_of_an_unknown_execution_is_404(api):
    assert_error(api.get("/api/v1/executions/exec-doesnotexist/stream"), 404,
                 "Sandbox.ExecutionNotFound")
