"""Reaching a session's sandbox behind sbxd's back, for the warm-pool, probe and lifecycle
tests: which sandboxes a private daemon's runtime holds, and killing or freezing the one
of a session without any API call.

- `linux` runtime (default): each sandbox is <data_dir>/linux/sandboxes/<id>/ with a
  sandbox.json naming its init (the executor, PID 1 inside) by host pid; a pooled sandbox
  has "session_id": null there, so a claimed one is found by a marker file the test wrote
  in its /workspace (seen from the host through /proc/<pid>/root).
- `docker` runtime (SBXD_RUNTIME=docker, SBXD_DOCKER_HOST=unix:///...): the container
  whose labels name the session, driven through the Engine API like sbxd does.
"""

import json
import os
import signal

RUNTIME = os.environ.get("SBXD_RUNTIME", "linux")
# The linux runtime's state dir, under the daemon's data dir (plugins/runtime/linux).
LINUX_STATE = "linux"


def engine():
    """The Docker Engine of the docker tier (test_docker_runtime.Engine)."""
    from test_docker_runtime import Engine  # the docker tier's client, reused
    host = os.environ.get("SBXD_DOCKER_HOST")
    if not host:
        raise AssertionError("SBXD_RUNTIME=docker needs SBXD_DOCKER_HOST=unix:///path "
                             "(tests/docker/services.sh starts the engine)")
    return Engine(host)


def linux_sandboxes(data_dir):
    """{sandbox id: its sandbox.json} of a daemon's linux runtime state dir."""
    root = os.path.join(data_dir, LINUX_STATE, "sandboxes")
    out = {}
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        try:
            with open(os.path.join(root, name, "sandbox.json")) as f:
                out[name] = json.load(f)
        except (OSError, ValueError):
            out[name] = None  # being made or removed
    return out


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % int(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, ValueError, TypeError, IndexError):
        return False


def linux_sandbox_of(data_dir, session_id, marker=None):
    """(sandbox id, sandbox.json) of a session: by the session id in sandbox.json, else
    (a claimed pooled sandbox) by /workspace/<marker> seen through its init's root."""
    found = []
    for name, h in linux_sandboxes(data_dir).items():
        if not h or not pid_alive(h.get("pid")):
            continue
        if h.get("session_id") == session_id:
            found.append((name, h))
        elif marker and os.path.exists("/proc/%d/root/workspace/%s" % (h["pid"], marker)):
            found.append((name, h))
    assert len(found) == 1, "sandboxes of session %s (marker %r): %r" % (
        session_id, marker, found)
    return found[0]


def docker_container_of(eng, session_id):
    found = [c for c in eng.containers() if session_id in (c.get("Labels") or {}).values()]
    assert len(found) == 1, "containers labelled with session %s: %r" % (
        session_id, [(c["Id"][:12], c.get("Labels")) for c in found])
    return found[0]["Id"]


def kill_sandbox(proc, session_id, marker=None):
    """SIGKILL the sandbox of a session behind sbxd's back; returns a description."""
    if RUNTIME == "docker":
        eng = engine()
        cid = docker_container_of(eng, session_id)
        st, body = eng.call("POST", "/containers/%s/kill" % cid, query={"signal": "KILL"})
        assert st == 204, (st, body)
        return "container %s killed" % cid[:12]
    if RUNTIME != "linux":
        raise NotImplementedError("no way to kill a %s sandbox here" % RUNTIME)
    name, h = linux_sandbox_of(proc.data_dir, session_id, marker)
    os.kill(int(h["pid"]), signal.SIGKILL)
    return "init pid %s of %s killed" % (h["pid"], name)


def freeze_sandbox(proc, session_id, marker=None):
    """Stop the sandbox's executor without ending it: SIGSTOP of its init (linux), a
    paused container (docker).  Returns a function that undoes it (best effort)."""
    if RUNTIME == "docker":
        eng = engine()
        cid = docker_container_of(eng, session_id)
        st, body = eng.call("POST", "/containers/%s/pause" % cid)
        assert st == 204, (st, body)
        return lambda: eng.call("POST", "/containers/%s/unpause" % cid)
    if RUNTIME != "linux":
        raise NotImplementedError("no way to freeze a %s sandbox here" % RUNTIME)
    _, h = linux_sandbox_of(proc.data_dir, session_id, marker)
    pid = int(h["pid"])
    os.kill(pid, signal.SIGSTOP)

    def thaw():
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    return thaw
