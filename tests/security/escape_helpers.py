"""Helpers of the sandbox escape battery (test_escape.py): running probe handlers, and
looking at a session's sandbox from the host side (its directory under the linux runtime's
state_dir, its cgroup; under the docker runtime its container, through the engine).
Host-side lookups need the daemon the harness started (not SBXD_URL): they return None
otherwise and the tests skip those assertions."""

import glob
import json
import os
import shutil

from docker_engine import container_of as docker_container_of, engine_from_env, runtime

CGROUP = "/sys/fs/cgroup"

# Shared by the syscall probes: a raw syscall returning "ok" or the errno name.
SYSCALL_PRELUDE = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def _arg(a):
    if isinstance(a, int):
        return ctypes.c_long(a)
    if isinstance(a, str):
        return ctypes.c_char_p(a.encode())
    return a
def sc(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[_arg(a) for a in args])
    if r == 0 and nr in (56,):      # clone: a child that got through leaves at once
        os._exit(0)
    if r >= 0:
        return 'ok'
    e = ctypes.get_errno()
    return errno.errorcode.get(e, str(e))
def err(ex):
    return errno.errorcode.get(ex.errno, str(ex.errno)) if isinstance(ex, OSError) else repr(ex)
"""


def brief(ex):
    return {k: ex.get(k) for k in ("status", "exit_code", "error_message", "stdout",
                                   "stderr", "return_value")}


def run(api, sid, code, **kw):
    kw.setdefault("timeout", 60)
    return api.execute_sync(sid, code, **kw)


def ok(api, sid, code, **kw):
    ex = run(api, sid, code, **kw)
    assert ex["status"] == "completed", brief(ex)
    return ex["return_value"]


def probe(api, sid, body, **kw):
    """Run `def handler(e):` + body (indented by the caller) after SYSCALL_PRELUDE and
    return its value (JSON-decoded when it is a JSON string: keeps NULs and tuples out
    of the result channel)."""
    rv = ok(api, sid, SYSCALL_PRELUDE + body, **kw)
    if isinstance(rv, str):
        try:
            rv = json.loads(rv)
        except ValueError:
            pass
    record(rv)
    return rv


def record(observation):
    """With SBX_ESCAPE_RECORD=FILE, append what a probe saw (one JSON line per probe,
    named by the running test) -- the source of the observed column of docs/security.md."""
    path = os.environ.get("SBX_ESCAPE_RECORD")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, "observed": observation}) + "\n")


def assert_session_works(api, sid):
    assert ok(api, sid, "def handler(e):\n    return 6 * 7\n") == 42


def data_dir(sbxd):
    return None if sbxd.proc is None else sbxd.proc.data_dir


def sandboxes_dir(sbxd):
    d = data_dir(sbxd)
    return None if d is None else os.path.join(d, "linux", "sandboxes")


def api_sandbox_id(sbxd, session_id):
    """The session's sandbox_id as the API shows it (None if unknown)."""
    r = sbxd.client.get("/sessions/%s" % session_id)
    return r.body.get("sandbox_id") if r.status == 200 and isinstance(r.body, dict) else None


def sandbox_of(sbxd, session_id):
    """(sandbox id, host directory, handle) of a session's sandbox, or None. Matched by the
    sandbox_id the API shows for the session (a sandbox from a warm pool was built before
    its session, so its own record names no session)."""
    base = sandboxes_dir(sbxd)
    if base is None:
        return None
    want = api_sandbox_id(sbxd, session_id)
    for path in glob.glob(os.path.join(base, "lx-*", "sandbox.json")):
        try:
            with open(path) as f:
                h = json.load(f)
        except (OSError, ValueError):
            continue
        if h.get("sandbox_id") == want or (want is None and h.get("session_id") == session_id):
            return h["sandbox_id"], os.path.dirname(path), h
    return None


def executor_socket_of(sbxd, session_id):
    """(host path of the session's executor socket, host pid of its sandbox's first
    process) under the linux or the docker runtime (found through the engine of
    SBXD_DOCKER_HOST), or None."""
    if runtime() == "docker":
        engine = engine_from_env()
        info = (docker_container_of(engine, session_id, api_sandbox_id(sbxd, session_id))
                if engine else None)
        if not info:
            return None
        run = [m["Source"] for m in info.get("Mounts") or [] if m.get("Destination") == "/run/sbx"]
        return (os.path.join(run[0], "executor.sock"), info["State"]["Pid"]) if run else None
    sb = sandbox_of(sbxd, session_id)
    return None if sb is None else (os.path.join(sb[1], "run", "executor.sock"), sb[2]["pid"])


def docker_cgroup_file(sbxd, session_id, controller, name):
    """Path of a cgroup file of the session's container (docker runtime; cgroupfs or systemd
    driver, v1 or v2), or None."""
    engine = engine_from_env()
    info = (docker_container_of(engine, session_id, api_sandbox_id(sbxd, session_id))
            if engine else None)
    if not info:
        return None
    cid = info["Id"]
    for p in (os.path.join(CGROUP, controller, "docker", cid, name),
              os.path.join(CGROUP, "docker", cid, name),
              os.path.join(CGROUP, controller, "system.slice", "docker-%s.scope" % cid, name),
              os.path.join(CGROUP, "system.slice", "docker-%s.scope" % cid, name)):
        if os.path.exists(p):
            return p
    return None


def cgroup_file(sandbox_id, controller, name):
    """Path of a cgroup file of the sandbox, v2 or v1, or None."""
    for p in (os.path.join(CGROUP, "sbxd", sandbox_id, name),
              os.path.join(CGROUP, controller, "sbxd", sandbox_id, name)):
        if os.path.exists(p):
            return p
    return None


def read_kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                out[parts[0]] = int(parts[1])
    return out


def disk_used(path):
    return shutil.disk_usage(path).used


def tree_size(path):
    total = 0
    for dp, dn, fn in os.walk(path):
        for n in fn:
            try:
                total += os.lstat(os.path.join(dp, n)).st_size
            except OSError:
                pass
    return total
