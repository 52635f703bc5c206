"""Isolation probes for the default `linux` runtime (DESIGN.md sections 5 and 8): what a
handler must not be able to read, write, see, reach or keep running."""

import os
import socket
import threading
import time
import uuid

import pytest

from sbxclient import assert_error

pytestmark = pytest.mark.linux_runtime


def run(api, sid, code, **kw):
    kw.setdefault("timeout", 60)
    return api.execute_sync(sid, code, **kw)


def ok(api, sid, code, **kw):
    ex = run(api, sid, code, **kw)
    assert ex["status"] == "completed", {k: ex.get(k) for k in
                                          ("status", "error_message", "stderr", "stdout")}
    return ex["return_value"]


def assert_session_still_works(api, sid):
    assert ok(api, sid, "def handler(e):\n    return 6 * 7\n") == 42


# ---- filesystem -------------------------------------------------------------------------

def test_cannot_read_etc_shadow(api, py_session):
    code = ("def handler(e):\n"
            "    try:\n"
            "        return {'read': True, 'data': open('/etc/shadow').read()[:200]}\n"
            "    except OSError as ex:\n"
            "        return {'read': False, 'error': type(ex).__name__}\n")
    rv = ok(api, py_session["id"], code)
    assert rv["read"] is False, rv


def test_cannot_write_under_usr_or_root_fs(api, py_session):
    name = "sbx-probe-%s" % uuid.uuid4().hex
    code = ("def handler(e):\n"
            "    wrote = []\n"
            "    for d in ('/usr', '/usr/bin', '/usr/lib', '/etc', '/', '/bin'):\n"
            "        try:\n"
            "            open(d.rstrip('/') + '/' + e['n'], 'w').write('x')\n"
            "            wrote.append(d)\n"
            "        except OSError:\n"
            "            pass\n"
            "    return wrote\n")
    assert ok(api, py_session["id"], code, event={"n": name}) == []
    for d in ("/usr", "/usr/bin", "/usr/lib", "/etc", "/", "/bin"):
        assert not os.path.exists(os.path.join(d, name)), d


def test_sees_only_its_own_processes(api, py_session):
    code = ("import os\n"
            "def handler(e):\n"
            "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "    comms = []\n"
            "    for p in pids:\n"
            "        try:\n"
            "            comms.append(open('/proc/%s/comm' % p).read().strip())\n"
            "        except OSError:\n"
            "            pass\n"
            "    return {'n': len(pids), 'comms': comms, 'me': os.getpid()}\n")
    rv = ok(api, py_session["id"], code)
    assert rv["n"] <= 10, "sandbox sees %d processes: %r" % (rv["n"], rv["comms"])
    assert "sbxd" not in rv["comms"], rv
    assert not {"systemd", "init", "sshd", "dockerd"} & set(rv["comms"]), rv


def test_another_sessions_workspace_is_invisible(api, make_session):
    a = make_session("python-basic")
    b = make_session("python-basic")
    name = "secret-%s" % uuid.uuid4().hex
    ok(api, a["id"], "def handler(e):\n    open('/workspace/' + e['n'], 'w').write('A')\n",
       event={"n": name})
    assert api.download(a["id"], name).raw == b"A"  # control: A's file exists
    # Walk the writable places of B's filesystem and A's host-side workspace path.
    code = ("import os\n"
            "def handler(e):\n"
            "    hits = []\n"
            "    roots = ['/workspace', '/tmp', '/run', '/var', '/mnt', '/home', '/srv',\n"
            "             '/opt', '/media', '/dev/shm']\n"
            "    for root in roots:\n"
            "        for dp, dn, fn in os.walk(root):\n"
            "            if e['n'] in fn:\n"
            "                hits.append(dp)\n"
            "            if dp.count('/') > 8:\n"
            "                dn[:] = []\n"
            "    if e['ws'] and os.path.exists(os.path.join(e['ws'], e['n'])):\n"
            "        hits.append(e['ws'])\n"
            "    return hits\n")
    hits = ok(api, b["id"], code, event={"n": name, "ws": a.get("workspace_path") or ""})
    assert hits == [], hits
    if a.get("workspace_path") and b.get("workspace_path"):
        assert a["workspace_path"] != b["workspace_path"] or a["workspace_path"] == "/workspace"


# ---- network ----------------------------------------------------------------------------

def _host_address():
    """A non-loopback address of this host, if there is one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP connect
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


CONNECT_CODE = ("import socket\n"
                "def handler(e):\n"
                "    out = {}\n"
                "    for host, port in e['targets']:\n"
                "        s = socket.socket()\n"
                "        s.settimeout(2)\n"
                "        try:\n"
                "            s.connect((host, port))\n"
                "            out['%s:%d' % (host, port)] = 'connected'\n"
                "        except OSError as ex:\n"
                "            out['%s:%d' % (host, port)] = type(ex).__name__\n"
                "        finally:\n"
                "            s.close()\n"
                "    return out\n")


def test_cannot_connect_to_the_control_plane_port(api, sbxd, py_session):
    rv = ok(api, py_session["id"], CONNECT_CODE,
            event={"targets": [["127.0.0.1", sbxd.port]]})
    assert all(v != "connected" for v in rv.values()), rv


def test_cannot_connect_to_a_host_listener_on_loopback_or_external_address(api, py_session):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        listener.settimeout(0.2)
        end = time.monotonic() + 30
        while time.monotonic() < end and not stop.is_set():
            try:
                c, addr = listener.accept()
                accepted.append(addr)
                c.close()
            except socket.timeout:
                pass
            except OSError:
                return
    stop = threading.Event()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        # Positive control: the listener is reachable from the host itself.
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        wait_accept = time.monotonic() + 5
        while not accepted and time.monotonic() < wait_accept:
            time.sleep(0.05)
        assert accepted, "control connection to the test listener was not accepted"
        accepted.clear()
        targets = [["127.0.0.1", port]]
        ext = _host_address()
        if ext:
            targets.append([ext, port])
        targets.append(["1.1.1.1", 53])
        rv = ok(api, py_session["id"], CONNECT_CODE, event={"targets": targets})
        assert all(v != "connected" for v in rv.values()), rv
        assert accepted == [], "sandbox reached the host listener from %r" % accepted
    finally:
        stop.set()
        listener.close()
        t.join(5)


# ---- process control --------------------------------------------------------------------

FORK_WRITER = ("import os, time\n"
               "def handler(e):\n"
               "    pid = os.fork()\n"
               "    if pid == 0:\n"
               "        try:\n"
               "            os.setsid()\n"
               "        except OSError:\n"
               "            pass\n"
               "        n = 0\n"
               "        while True:\n"
               "            n += 1\n"
               "            with open('/workspace/marker.tmp', 'w') as f:\n"
               "                f.write(str(n))\n"
               "            os.replace('/workspace/marker.tmp', '/workspace/marker')\n"
               "            time.sleep(0.1)\n"
               "    time.sleep(e['parent_sleep'])\n"
               "    return pid\n")


def _marker(api, sid):
    r = api.download(sid, "marker")
    assert r.status == 200, r
    return int(r.raw)


def _assert_marker_frozen(api, sid):
    first = _marker(api, sid)
    assert first >= 3, "child never wrote its marker repeatedly (n=%d)" % first
    # Proving absence needs an interval: 2 s is 20 of the child's write periods.
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        assert _marker(api, sid) == first, "a child of a finished execution is still running"
        time.sleep(0.2)


def test_execution_timeout_kills_forked_children(api, make_session):
    sid = make_session("python-basic")["id"]
    ex = run(api, sid, FORK_WRITER, timeout=2, event={"parent_sleep": 60})
    assert ex["status"] == "timeout", ex
    _assert_marker_frozen(api, sid)
    assert_session_still_works(api, sid)


def test_processes_left_behind_by_a_returning_handler_are_killed(api, make_session):
    sid = make_session("python-basic")["id"]
    ex = run(api, sid, FORK_WRITER, timeout=30, event={"parent_sleep": 1})
    assert ex["status"] == "completed", ex
    _assert_marker_frozen(api, sid)


def test_memory_hog_is_killed_and_the_next_execution_works(api, make_session):
    sid = make_session("python-basic", memory="256Mi")["id"]
    code = ("def handler(e):\n"
            "    hog = []\n"
            "    for i in range(64):\n"            # 64 x 64 MiB = 4 GiB, touched
            "        hog.append(b'x' * (64 * 1024 * 1024))\n"
            "    return len(hog)\n")
    ex = run(api, sid, code, timeout=120)
    assert ex["status"] in ("crashed", "failed"), {k: ex.get(k) for k in
                                                   ("status", "error_message", "metrics")}
    assert ex["return_value"] != 64
    assert_session_still_works(api, sid)
    assert api.get("/health").status == 200


def test_fork_bomb_is_stopped_by_the_process_limit_and_the_next_execution_works(api, make_session):
    limit = 64
    sid = make_session("python-basic", resources={"max_processes": limit})["id"]
    # Bounded at 2000 children so that a missing limit fails the test without taking the
    # host down; every child sleeps and is killed with the execution.
    code = ("import os, time\n"
            "def handler(e):\n"
            "    n = 0\n"
            "    err = None\n"
            "    for i in range(2000):\n"
            "        try:\n"
            "            pid = os.fork()\n"
            "        except OSError as ex:\n"
            "            err = type(ex).__name__\n"
            "            break\n"
            "        if pid == 0:\n"
            "            time.sleep(30)\n"
            "            os._exit(0)\n"
            "        n += 1\n"
            "    return {'forked': n, 'error': err}\n")
    ex = run(api, sid, code, timeout=20)
    rv = ex.get("return_value")
    if ex["status"] == "completed":
        assert rv["error"] is not None and rv["forked"] <= limit, rv
    else:
        assert ex["status"] in ("failed", "crashed", "timeout"), ex
        assert not (isinstance(rv, dict) and rv.get("forked", 0) > limit), rv
    assert_session_still_works(api, sid)


def test_64_mib_of_stdout_is_truncated_and_the_server_stays_responsive(api, make_session):
    sid = make_session("python-basic")["id"]
    code = ("import sys\n"
            "def handler(e):\n"
            "    chunk = 'y' * (1024 * 1024 - 1) + '\\n'\n"
            "    for i in range(64):\n"
            "        sys.stdout.write(chunk)\n"
            "    sys.stdout.flush()\n"
            "    return 'done'\n")
    result = {}

    def call():
        result["ex"] = run(api, sid, code, timeout=120)
    t = threading.Thread(target=call)
    t0 = time.monotonic()
    t.start()
    # While the flood is being produced, the API answers quickly.
    while t.is_alive() and time.monotonic() - t0 < 120:
        h0 = time.monotonic()
        assert api.get("/health", timeout=5).status == 200
        assert time.monotonic() - h0 < 2, "health took > 2 s during an output flood"
        t.join(0.5)
    t.join(30)
    ex = result["ex"]
    assert ex["status"] in ("completed", "failed"), {k: ex.get(k) for k in ("status",
                                                                           "error_message")}
    assert len(ex["stdout"]) < 16 * 1024 * 1024, "stdout not capped: %d bytes" % len(ex["stdout"])
    if "stdout_truncated" in ex:
        assert ex["stdout_truncated"] is True, ex.get("stdout_truncated")
    assert_session_still_works(api, sid)


# ---- privileged syscalls ----------------------------------------------------------------

def test_mount_unshare_and_ptrace_fail(api, py_session):
    code = ("import ctypes, os\n"
            "def handler(e):\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,"
            " ctypes.c_void_p]\n"
            "    libc.ptrace.restype = ctypes.c_long\n"
            "    out = {}\n"
            "    out['mount_tmpfs'] = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\n"
            "    out['mount_bind'] = libc.mount(b'/workspace', b'/usr', None, 4096, None)\n"
            "    out['unshare_user'] = libc.unshare(0x10000000)\n"
            "    out['unshare_mnt'] = libc.unshare(0x00020000)\n"
            "    out['unshare_net'] = libc.unshare(0x40000000)\n"
            "    out['ptrace_attach_pid1'] = libc.ptrace(16, 1, None, None)\n"
            "    pid = os.getppid()\n"
            "    out['ptrace_attach_parent'] = libc.ptrace(16, pid, None, None) if pid > 1 else -1\n"
            "    return out\n")
    rv = ok(api, py_session["id"], code)
    assert all(v == -1 for v in rv.values()), rv


def test_no_capabilities_and_no_new_privs(api, py_session):
    code = ("def handler(e):\n"
            "    st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read()"
            ".splitlines() if ':\\t' in l)\n"
            "    return {k: st.get(k, '').strip() for k in ('CapEff', 'CapPrm', 'NoNewPrivs',"
            " 'Seccomp')}\n")
    rv = ok(api, py_session["id"], code)
    assert int(rv["CapEff"], 16) == 0 and int(rv["CapPrm"], 16) == 0, rv
    assert rv["NoNewPrivs"] == "1", rv
    assert rv["Seccomp"] == "2", rv


def test_sandbox_environment_holds_no_secrets(api, py_session):
    code = "import os\ndef handler(e):\n    return dict(os.environ)\n"
    env = ok(api, py_session["id"], code)
    for k in env:
        assert not any(w in k.upper() for w in ("SECRET", "PASSWORD", "TOKEN", "AWS_",
                                                  "API_KEY", "SBXD")), env


def test_unknown_session_execute_is_404_not_a_crash(api):
    r = api.post("/sessions/%s/execute" % ("x" * 300),
                 json={"code": "def handler(e):\n    return 1\n", "language": "python"})
    assert r.status in (404, 422), r
    assert_error(r, r.status)
