"""Reaching a session's sandbox behind sbxd's back, for the warm-pool, probe and lifecycle
tests: which sandboxes a private daemon's runtime holds, and killing or freezing the one
of a session without any API call after it.  The session's `sandbox_id` (API view) names it:

- `linux` runtime (default): <data_dir>/linux/sandboxes/<sandbox_id>/sandbox.json names
  the sandbox's init (the executor, PID 1 inside) by host pid;
- `docker` runtime (SBXD_RUNTIME=docker, SBXD_DOCKER_HOST=unix:///...): the container
  labelled with the sandbox id, driven through the Engine API like sbxd does.
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


def sandbox_id_of(proc, session_id):
    r = proc.client.get("/sessions/%s" % session_id)
    assert r.status == 200, r
    sid = r.body.get("sandbox_id")
    assert sid, "session %s shows no sandbox_id: %r" % (session_id, r.body)
    return sid


def linux_sandbox_of(proc, session_id):
    """(sandbox id, sandbox.json) of a session's live sandbox."""
    sid = sandbox_id_of(proc, session_id)
    h = linux_sandboxes(proc.data_dir).get(sid)
    assert h and pid_alive(h.get("pid")), "sandbox %s of session %s: %r" % (
        sid, session_id, h)
    return sid, h


def docker_container_of(proc, eng, session_id):
    sid = sandbox_id_of(proc, session_id)
    found = [c for c in eng.containers()
             if any(k.endswith(".sandbox") and v == sid
                    for k, v in (c.get("Labels") or {}).items())]
    assert len(found) == 1, "containers of sandbox %s (session %s): %r" % (
        sid, session_id, [(c["Id"][:12], c.get("Labels")) for c in found])
    return found[0]["Id"]


def kill_sandbox(proc, session_id):
    """SIGKILL the sandbox of a session behind sbxd's back; returns a description."""
    if RUNTIME == "docker":
        eng = engine()
        cid = docker_container_of(proc, eng, session_id)
        st, body = eng.call("POST", "/containers/%s/kill" % cid, query={"signal": "KILL"})
        assert st == 204, (st, body)
        return "container %s killed" % cid[:12]
    if RUNTIME != "linux":
        raise NotImplementedError("no way to kill a %s sandbox here" % RUNTIME)
    name, h = linux_sandbox_of(proc, session_id)
    os.kill(int(h["pid"]), signal.SIGKILL)
    return "init pid %s of %s killed" % (h["pid"], name)


def freeze_sandbox(proc, session_id):
    """Stop the sandbox's executor without ending it: SIGSTOP of its init (linux), a
    paused container (docker).  Returns a function that undoes it (best effort)."""
    if RUNTIME == "docker":
        eng = engine()
        cid = docker_container_of(proc, eng, session_id)
        st, body = eng.call("POST", "/containers/%s/pause" % cid)
        assert st == 204, (st, body)
        return lambda: eng.call("POST", "/containers/%s/unpause" % cid)
    if RUNTIME != "linux":
        raise NotImplementedError("no way to freeze a %s sandbox here" % RUNTIME)
    _, h = linux_sandbox_of(proc, session_id)
    pid = int(h["pid"])
    os.kill(pid, signal.SIGSTOP)

    def thaw():
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    return thaw
