"""The sandbox ESCAPE BATTERY for the default `linux` runtime (docs/security.md has the
threat model and the table of results).  One test per case, named after the expected
outcome; each asserts a concrete observation (errno name, exit status, a file absent on
the host) so that a regression fails it.  Every loop is bounded in count and time, and
all traffic stays on loopback."""

import errno
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from escape_helpers import (  # noqa: E402
    assert_session_works, brief, cgroup_file, data_dir, disk_used, docker_cgroup_file,
    executor_socket_of, ok, probe, read_kv, record, run, runtime, sandbox_of, sandboxes_dir)

pytestmark = pytest.mark.linux_runtime

# A value in the daemon's environment (collection happens before the shared daemon
# starts) that must never show up inside a sandbox.
CANARY = "sbx-escape-canary-%s" % uuid.uuid4().hex
os.environ.setdefault("SBX_ESCAPE_CANARY", CANARY)
CANARY = os.environ["SBX_ESCAPE_CANARY"]

MiB = 1024 * 1024


def need_host(sbxd):
    if sbxd.proc is None:
        pytest.skip("host-side checks need the daemon the harness starts (not SBXD_URL)")


# ---- resource exhaustion ----------------------------------------------------------------

FORK_BOMB = """
import os, time
def handler(e):
    # A doubling fork bomb, bounded: at most 10 generations (1024 processes) and 20 s.
    me = os.getpid()
    end = time.monotonic() + 20
    failed = 0
    for gen in range(10):
        try:
            os.fork()
        except OSError as ex:
            failed = ex.errno
            break
    if os.getpid() != me:
        while time.monotonic() < end:
            time.sleep(0.5)
        os._exit(0)
    time.sleep(2)
    n = len([p for p in os.listdir('/proc') if p.isdigit()])
    return {'errno': failed, 'procs_seen': n}
"""


@pytest.mark.slow
def test_fork_bomb_is_stopped_by_the_pids_limit_host_unaffected_next_execution_works(
        api, sbxd, make_session):
    limit = 32
    sid = make_session("python-basic", resources={"max_processes": limit})["id"]
    result = {}

    def bomb():
        result["ex"] = run(api, sid, FORK_BOMB, timeout=10)
    t = threading.Thread(target=bomb)
    t.start()
    # The host keeps forking quickly while the bomb runs.
    worst = 0.0
    for _ in range(10):
        t0 = time.monotonic()
        subprocess.run(["true"], check=True)
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.3)
    t.join(60)
    ex = result["ex"]
    record({"host_fork_worst_s": round(worst, 3), "bomb": brief(ex)})
    assert worst < 2.0, "host fork+exec took %.2f s during the bomb" % worst
    assert ex["status"] in ("completed", "timeout", "failed", "crashed"), brief(ex)
    if ex["status"] == "completed":
        rv = ex["return_value"]
        # Whichever process of the tree hits the limit first sees EAGAIN.
        assert rv["errno"] in (0, errno.EAGAIN), rv
        assert rv["procs_seen"] <= limit, rv
    sb = sandbox_of(sbxd, sid)
    if sb:
        ev = cgroup_file(sb[0], "pids", "pids.events")
        assert ev and read_kv(ev).get("max", 0) > 0, "pids limit never hit: %s" % ev
        cur = cgroup_file(sb[0], "pids", "pids.current")
        assert int(open(cur).read()) <= limit
    elif runtime() == "docker" and sbxd.proc is not None:
        ev = docker_cgroup_file(sbxd, sid, "pids", "pids.events")
        assert ev and read_kv(ev).get("max", 0) > 0, "pids limit never hit: %s" % ev
        assert int(open(docker_cgroup_file(sbxd, sid, "pids", "pids.max")).read()) <= limit
        assert int(open(docker_cgroup_file(sbxd, sid, "pids", "pids.current")).read()) <= limit
    assert_session_works(api, sid)


def test_memory_bomb_is_killed_status_crashed_next_execution_works(api, sbxd, make_session):
    sid = make_session("python-basic", memory="128Mi")["id"]
    code = ("def handler(e):\n"
            "    hog = []\n"
            "    for i in range(64):\n"        # 64 x 16 MiB = 1 GiB, touched; bounded
            "        hog.append(bytearray(16 * 1024 * 1024))\n"
            "    return len(hog)\n")
    ex = run(api, sid, code, timeout=60)
    record(brief(ex))
    assert ex["status"] in ("crashed", "failed"), brief(ex)
    assert ex["return_value"] != 64
    assert "SIGKILL" in (ex.get("error_message") or "") or ex["status"] == "failed", brief(ex)
    sb = sandbox_of(sbxd, sid)
    if sb:
        f = cgroup_file(sb[0], "memory", "memory.events")
        if f:
            assert read_kv(f).get("oom_kill", 0) >= 1
        else:
            f = cgroup_file(sb[0], "memory", "memory.oom_control")
            assert f and read_kv(f).get("oom_kill", 0) >= 1, f
    elif runtime() == "docker" and sbxd.proc is not None:
        f = (docker_cgroup_file(sbxd, sid, "memory", "memory.events")
             or docker_cgroup_file(sbxd, sid, "memory", "memory.oom_control"))
        assert f and read_kv(f).get("oom_kill", 0) >= 1, f
    assert_session_works(api, sid)
    assert api.get("/health").status == 200


FILL = """
import os, errno, json
def fill(path, cap):
    chunk = b'\\0' * (1 << 20)
    n = 0
    try:
        with open(path, 'wb') as f:
            while n < cap:
                f.write(chunk)
                f.flush()
                n += len(chunk)
            os.fsync(f.fileno())
        return {'written': n, 'errno': None}
    except OSError as ex:
        try:
            n = os.stat(path).st_size
        except OSError:
            pass
        return {'written': n, 'errno': errno.errorcode.get(ex.errno)}
def handler(e):
    out = {}
    for name, path, cap in e['targets']:
        out[name] = fill(path, cap << 20)
        try:
            os.unlink(path)
        except OSError:
            pass
    return json.dumps(out)
"""


def test_disk_fill_of_workspace_tmp_and_shm_hits_enospc_host_disk_untouched(
        api, sbxd, make_session):
    sid = make_session("python-basic", memory="1Gi", disk="64Mi")["id"]
    host = data_dir(sbxd) or "/"
    before = disk_used(host)
    targets = [["workspace", "/workspace/fill", 1024], ["tmp", "/tmp/fill", 1024],
               ["dev_shm", "/dev/shm/fill", 1024]]
    rv = json.loads(ok(api, sid, FILL, event={"targets": targets}, timeout=120))
    after = disk_used(host)
    record({"fill": rv, "host_disk_delta": after - before})
    assert rv["workspace"]["errno"] == "ENOSPC", rv
    assert 60 * MiB <= rv["workspace"]["written"] <= 64 * MiB, rv
    assert rv["tmp"]["errno"] == "ENOSPC", rv                      # tmp_size_mb = 256
    assert 250 * MiB <= rv["tmp"]["written"] <= 256 * MiB, rv
    assert rv["dev_shm"]["errno"] == "ENOSPC", rv
    assert rv["dev_shm"]["written"] <= 64 * MiB, rv
    # ~380 MiB went into the sandbox's tmpfs; the host filesystem barely moved.
    assert after - before < 32 * MiB, "host disk grew by %d MiB" % ((after - before) >> 20)
    assert_session_works(api, sid)


def test_host_backed_run_dir_is_not_writable_by_handlers(api, sbxd, py_session):
    """/run/sbx is the one host directory bound into the sandbox (it holds the executor's
    socket): a handler must not be able to fill the host disk through it, nor replace the
    socket with a symlink that the control plane would follow on the host."""
    sid = py_session["id"]
    rv = probe(api, sid, """
import json
def handler(e):
    out = {}
    try:
        with open('/run/sbx/fill', 'wb') as f:
            for i in range(8):                 # 8 MiB at most
                f.write(b'\\0' * (1 << 20))
        out['write'] = 'ok'
    except OSError as ex:
        out['write'] = err(ex)
    try:
        os.symlink('/tmp/elsewhere.sock', '/run/sbx/other.sock')
        out['symlink'] = 'ok'
    except OSError as ex:
        out['symlink'] = err(ex)
    try:
        os.rename('/run/sbx/executor.sock', '/run/sbx/moved.sock')
        os.rename('/run/sbx/moved.sock', '/run/sbx/executor.sock')
        out['rename_socket'] = 'ok'
    except OSError as ex:
        out['rename_socket'] = err(ex)
    try:
        os.chmod('/run/sbx', 0o777)
        out['chmod_dir'] = 'ok'
    except OSError as ex:
        out['chmod_dir'] = err(ex)
    out['listing'] = sorted(os.listdir('/run/sbx'))
    return json.dumps(out)
""")
    assert rv["write"] in ("EACCES", "EROFS", "EPERM"), rv
    assert rv["symlink"] in ("EACCES", "EROFS", "EPERM"), rv
    assert rv["rename_socket"] in ("EACCES", "EROFS", "EPERM"), rv
    assert rv["chmod_dir"] in ("EACCES", "EROFS", "EPERM"), rv
    assert rv["listing"] == ["executor.sock"], rv
    sb = sandbox_of(sbxd, sid)
    if sb:
        assert sorted(os.listdir(os.path.join(sb[1], "run"))) == ["executor.sock"]
    assert_session_works(api, sid)


@pytest.mark.slow
def test_cpu_hog_in_one_session_does_not_starve_another(api, make_session):
    hog = make_session("python-basic", cpu=1)["id"]
    victim = make_session("python-basic")["id"]
    assert_session_works(api, victim)
    code = ("import os, time\n"
            "def handler(e):\n"
            "    for i in range(3):\n"          # 4 spinning processes for <= 8 s
            "        if os.fork() == 0:\n"
            "            break\n"
            "    end = time.monotonic() + 8\n"
            "    while time.monotonic() < end:\n"
            "        pass\n"
            "    return 'spun'\n")
    result = {}

    def spin():
        result["ex"] = run(api, hog, code, timeout=6)
    t = threading.Thread(target=spin)
    t.start()
    time.sleep(1.0)
    times = []
    while t.is_alive() and len(times) < 8:
        t0 = time.monotonic()
        assert ok(api, victim, "def handler(e):\n    return sum(range(1000))\n") == 499500
        times.append(time.monotonic() - t0)
        time.sleep(0.2)
    t.join(60)
    record({"victim_s": [round(x, 3) for x in times], "hog": result["ex"]["status"]})
    assert times, "the hog ended before the victim could run"
    assert max(times) < 5.0, "victim's short handler took %.2f s under a CPU hog" % max(times)
    assert result["ex"]["status"] == "timeout", brief(result["ex"])


# ---- network ----------------------------------------------------------------------------

NET = """
import json, socket
def conn(fam, addr, typ=socket.SOCK_STREAM):
    s = None
    try:
        s = socket.socket(fam, typ)
        s.settimeout(2)
        s.connect(addr)
        return 'connected'
    except OSError as ex:
        return err(ex)
    finally:
        if s:
            s.close()
def handler(e):
    out = {}
    out['tcp_host_listener'] = conn(socket.AF_INET, ('127.0.0.1', e['port']))
    out['tcp_api_port'] = conn(socket.AF_INET, ('127.0.0.1', e['api_port']))
    out['tcp6_loopback'] = conn(socket.AF_INET6, ('::1', e['port6'] or e['port']))
    out['tcp6_global'] = conn(socket.AF_INET6, ('2001:4860:4860::8888', 53))
    out['tcp4_global'] = conn(socket.AF_INET, ('192.0.2.1', 80))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.sendto(b'escape', ('127.0.0.1', e['udp_port']))
        out['udp_loopback_sendto'] = 'sent'
    except OSError as ex:
        out['udp_loopback_sendto'] = err(ex)
    try:
        u.sendto(b'escape', ('192.0.2.1', 53))
        out['udp_global_sendto'] = 'sent'
    except OSError as ex:
        out['udp_global_sendto'] = err(ex)
    u.close()
    for name, fam, typ, proto in (('raw_icmp', socket.AF_INET, socket.SOCK_RAW, 1),
                                  ('raw_ipv6', socket.AF_INET6, socket.SOCK_RAW, 58),
                                  ('packet', socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
                                  ('packet_dgram', socket.AF_PACKET, socket.SOCK_DGRAM, 0x0300)):
        try:
            socket.socket(fam, typ, proto).close()
            out[name] = 'created'
        except OSError as ex:
            out[name] = err(ex)
    out['unix_abstract_host'] = conn(socket.AF_UNIX, '\\0' + e['abstract'])
    out['unix_path_host'] = conn(socket.AF_UNIX, e['unix_path'])
    # (if_nameindex() needs a raw netlink socket, which the filter refuses with SOCK_RAW)
    out['ifaces'] = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]
    return json.dumps(out)
"""


def test_outbound_connections_are_refused_or_unreachable(api, sbxd, py_session):
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.1)
    tcp6 = None
    port6 = 0
    try:
        tcp6 = socket.socket(socket.AF_INET6)
        tcp6.bind(("::1", 0))
        tcp6.listen(8)
        tcp6.settimeout(0.1)
        port6 = tcp6.getsockname()[1]
    except OSError:
        tcp6 = None
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.1)
    abstract = "sbx-escape-%s" % uuid.uuid4().hex
    ab = socket.socket(socket.AF_UNIX)
    ab.bind("\0" + abstract)
    ab.listen(8)
    ab.settimeout(0.1)
    unix_path = "/tmp/sbx-escape-%s.sock" % uuid.uuid4().hex
    us = socket.socket(socket.AF_UNIX)
    us.bind(unix_path)
    us.listen(8)
    us.settimeout(0.1)
    try:
        # Positive control: the host listeners are reachable from the host.
        socket.create_connection(("127.0.0.1", tcp.getsockname()[1]), timeout=2).close()
        tcp.accept()[0].close()
        rv = probe(api, py_session["id"], NET, event={
            "port": tcp.getsockname()[1], "port6": port6, "api_port": sbxd.port,
            "udp_port": udp.getsockname()[1], "abstract": abstract, "unix_path": unix_path})
        got = []
        for s in (tcp, tcp6, ab, us):
            if s is None:
                continue
            try:
                got.append(s.accept())
            except (socket.timeout, BlockingIOError):
                pass
        try:
            got.append(udp.recvfrom(64))
        except socket.timeout:
            pass
    finally:
        for s in (tcp, tcp6, udp, ab, us):
            if s is not None:
                s.close()
        os.unlink(unix_path)
    assert got == [], "a host listener heard from the sandbox: %r" % got
    assert rv["tcp_host_listener"] == "ECONNREFUSED", rv   # the sandbox's own loopback
    assert rv["tcp_api_port"] == "ECONNREFUSED", rv
    assert rv["tcp6_loopback"] in ("ECONNREFUSED", "EADDRNOTAVAIL", "ENETUNREACH"), rv
    assert rv["tcp6_global"] in ("ENETUNREACH", "EADDRNOTAVAIL"), rv
    assert rv["tcp4_global"] == "ENETUNREACH", rv
    assert rv["udp_loopback_sendto"] == "sent", rv  # into the sandbox's own lo: nobody hears
    assert rv["udp_global_sendto"] == "ENETUNREACH", rv
    for k in ("raw_icmp", "raw_ipv6", "packet", "packet_dgram"):
        assert rv[k] in ("EPERM", "EACCES"), (k, rv)
    assert rv["unix_abstract_host"] == "ECONNREFUSED", rv    # abstract names are per netns
    assert rv["unix_path_host"] == "ENOENT", rv
    assert rv["ifaces"] == ["lo"], rv


def test_other_sandboxes_executor_socket_and_control_plane_files_are_not_visible(
        api, sbxd, make_session):
    need_host(sbxd)
    a = make_session("python-basic")["id"]
    b = make_session("python-basic")["id"]
    sb_b = executor_socket_of(sbxd, b)
    assert sb_b, "no sandbox found for session %s" % b
    b_sock, b_pid = sb_b
    assert os.path.exists(b_sock)
    db = glob.glob(os.path.join(data_dir(sbxd), "*.db"))
    rv = probe(api, a, """
import json, socket
def handler(e):
    out = {}
    for name, path in e['paths'].items():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        try:
            s.connect(path)
            out[name] = 'connected'
        except OSError as ex:
            out[name] = err(ex)
        s.close()
    for p in e['files']:
        out[p] = os.path.exists(p)
    out['own_run'] = sorted(os.listdir('/run/sbx'))
    return json.dumps(out)
""", event={"paths": {"other_executor": b_sock,
                      "other_executor_via_proc": "/proc/%d/root/run/sbx/executor.sock"
                      % b_pid},
            "files": [data_dir(sbxd), sandboxes_dir(sbxd)] + db})
    assert rv["other_executor"] == "ENOENT", rv
    assert rv["other_executor_via_proc"] == "ENOENT", rv
    for p in [data_dir(sbxd), sandboxes_dir(sbxd)] + db:
        assert rv[p] is False, (p, rv)
    assert rv["own_run"] == ["executor.sock"], rv


def test_socket_redirect_by_the_sandbox_never_reaches_a_host_socket(api, sbxd, make_session):
    """If a handler could swap /run/sbx/executor.sock for a symlink, the control plane
    would connect (as host root) wherever it points."""
    need_host(sbxd)
    sid = make_session("python-basic")["id"]
    path = "/tmp/sbx-escape-redirect-%s.sock" % uuid.uuid4().hex
    lst = socket.socket(socket.AF_UNIX)
    lst.bind(path)
    lst.listen(8)
    lst.settimeout(0.2)
    try:
        rv = probe(api, sid, """
def handler(e):
    try:
        os.unlink('/run/sbx/executor.sock')
    except OSError as ex:
        return 'unlink ' + err(ex)
    try:
        os.symlink(e['target'], '/run/sbx/executor.sock')
    except OSError as ex:
        return 'symlink ' + err(ex)
    return 'redirected'
""", event={"target": path})
        for _ in range(3):
            api.get("/sessions/%s/files" % sid, timeout=10)
        try:
            c, _ = lst.accept()
            c.close()
            reached = True
        except socket.timeout:
            reached = False
    finally:
        lst.close()
        os.unlink(path)
    assert not reached, "the control plane connected to a host socket chosen by the sandbox"
    assert rv in ("unlink EACCES", "unlink EPERM", "unlink EROFS"), rv
    assert_session_works(api, sid)


# ---- privileged system calls ------------------------------------------------------------

SYSCALLS = """
import json, signal, time
def handler(e):
    out = {}
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    out['mount_tmpfs'] = sc(165, 'none', '/tmp', 'tmpfs', 0, None)
    out['mount_bind_over_usr'] = sc(165, '/workspace', '/usr', None, 4096, None)
    out['umount2_proc'] = sc(166, '/proc', 2)
    out['unshare_user'] = sc(272, 0x10000000)
    out['unshare_mnt'] = sc(272, 0x00020000)
    out['unshare_net'] = sc(272, 0x40000000)
    out['unshare_user_mnt_net'] = sc(272, 0x10000000 | 0x00020000 | 0x40000000)
    out['clone_newuser'] = sc(56, 0x10000000 | 17, 0, 0, 0, 0)
    out['clone3'] = sc(435, 0, 0)
    for ns in ('mnt', 'net', 'pid', 'user', 'uts', 'ipc', 'cgroup'):
        try:
            fd = os.open('/proc/1/ns/' + ns, os.O_RDONLY)
        except OSError as ex:
            out['setns_' + ns] = 'open ' + err(ex)
            continue
        out['setns_' + ns] = sc(308, fd, 0)
        os.close(fd)
    out['ptrace_attach_pid1'] = sc(101, 16, 1, 0, 0)
    child = os.fork()
    if child == 0:
        time.sleep(5)
        os._exit(0)
    out['ptrace_attach_child'] = sc(101, 16, child, 0, 0)
    out['ptrace_seize_child'] = sc(101, 0x4206, child, 0, 0)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    out['ptrace_traceme'] = sc(101, 0, 0, 0, 0)
    out['process_vm_readv'] = sc(310, 1, 0, 0, 0, 0, 0)
    out['keyctl_join'] = sc(250, 1, 0)
    out['add_key'] = sc(248, 'user', 'k', 'v', 1, -3)
    out['bpf_prog_load'] = sc(321, 5, 0, 0)
    out['perf_event_open'] = sc(298, 0, 0, -1, -1, 0)
    out['userfaultfd'] = sc(323, 0)
    out['kexec_load'] = sc(246, 0, 0, 0, 0)
    out['kexec_file_load'] = sc(320, -1, -1, 0, 0, 0)
    out['init_module'] = sc(175, 0, 0, '')
    out['finit_module'] = sc(313, -1, '', 0)
    out['delete_module'] = sc(176, 'ext4', 0)
    out['pivot_root'] = sc(155, '/tmp', '/tmp')
    out['chroot'] = sc(161, '/tmp')
    out['io_uring_setup'] = sc(425, 1, 0)
    out['open_tree'] = sc(428, -100, '/usr', 1)
    out['fsopen'] = sc(430, 'tmpfs', 0)
    out['reboot'] = sc(169, 0xfee1dead, 672274793, 0x4321fedc, 0)
    out['swapon'] = sc(167, '/workspace/x', 0)
    out['settimeofday'] = sc(164, 0, 0)
    out['syslog_read'] = sc(103, 3, 0, 0)
    out['name_to_handle_at'] = sc(303, -100, '/', 0, 0, 0)
    out['setuid0'] = sc(105, 0)
    out['setgroups'] = sc(116, 0, 0)
    return json.dumps(out)
"""

# Calls with arguments that a permitted kernel path would reject with EFAULT/EINVAL/EBADF:
# EPERM shows the filter (or a missing capability) stopped them first.
DENIED = ["mount_tmpfs", "mount_bind_over_usr", "umount2_proc", "unshare_user",
          "unshare_mnt", "unshare_net", "unshare_user_mnt_net", "clone_newuser",
          "ptrace_attach_pid1", "ptrace_attach_child", "ptrace_seize_child", "ptrace_traceme",
          "process_vm_readv", "keyctl_join", "add_key", "bpf_prog_load", "perf_event_open",
          "userfaultfd", "kexec_load", "kexec_file_load", "init_module", "finit_module",
          "delete_module", "pivot_root", "chroot", "io_uring_setup", "open_tree", "fsopen",
          "reboot", "swapon", "settimeofday", "syslog_read", "name_to_handle_at", "setuid0",
          "setgroups"] + ["setns_" + n for n in ("mnt", "net", "pid", "user", "uts", "ipc",
                                                 "cgroup")]


def test_privileged_syscalls_fail_with_eperm(api, py_session):
    rv = probe(api, py_session["id"], SYSCALLS)
    bad = {k: rv[k] for k in DENIED if rv[k] not in ("EPERM", "ENOSYS")}
    assert not bad, "not denied: %r (all: %r)" % (bad, rv)
    assert rv["clone3"] == "ENOSYS", rv
    assert rv["io_uring_setup"] in ("EPERM", "ENOSYS"), rv
    assert_session_works(api, py_session["id"])


def test_writes_under_proc_sys_and_sys_fail(api, py_session):
    rv = probe(api, py_session["id"], """
import json
def handler(e):
    out = {}
    for p, data in (('/proc/sys/kernel/hostname', 'x'), ('/proc/sys/vm/drop_caches', '3'),
                    ('/proc/sys/kernel/core_pattern', '|/tmp/x'),
                    ('/proc/sysrq-trigger', 'b'), ('/proc/self/oom_score_adj', '-1000'),
                    ('/sys/kernel/uevent_helper', '/tmp/x'), ('/sys/fs/cgroup/cgroup.procs', '1')):
        try:
            with open(p, 'w') as f:
                f.write(data)
            out[p] = 'written'
        except OSError as ex:
            out[p] = err(ex)
    for d in ('/sys', '/proc/sys/newdir', '/newdir'):
        try:
            os.mkdir(d)
            out['mkdir ' + d] = 'made'
        except OSError as ex:
            out['mkdir ' + d] = err(ex)
    out['sys_exists'] = os.path.exists('/sys')
    return json.dumps(out)
""")
    for p in ("/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches",
              "/proc/sys/kernel/core_pattern"):
        assert rv[p] in ("EROFS", "EACCES"), (p, rv)
    assert rv["/proc/sysrq-trigger"] in ("EROFS", "EACCES", "ENOENT"), rv
    assert rv["/proc/self/oom_score_adj"] in ("EACCES", "EPERM"), rv
    if runtime() == "docker":
        # The engine mounts sysfs read-only (and the cgroup v1 controllers under it): there
        # is a /sys, but nothing in it can be written.
        assert rv["sys_exists"] is True, rv
        assert rv["/sys/kernel/uevent_helper"] in ("EROFS", "EACCES"), rv
        assert rv["/sys/fs/cgroup/cgroup.procs"] in ("EROFS", "EACCES", "ENOENT"), rv
        assert rv["mkdir /sys"] == "EEXIST", rv
    else:
        # /sys is not mounted at all: nothing to write to, and no way to create it.
        assert rv["sys_exists"] is False, rv
        assert rv["/sys/kernel/uevent_helper"] == "ENOENT", rv
        assert rv["/sys/fs/cgroup/cgroup.procs"] == "ENOENT", rv
        assert rv["mkdir /sys"] == "EROFS", rv
    assert rv["mkdir /newdir"] == "EROFS", rv
    assert rv["mkdir /proc/sys/newdir"] in ("EROFS", "EACCES", "EPERM", "ENOENT"), rv


# ---- secrets and host files -------------------------------------------------------------

def test_executor_environ_holds_no_secrets_and_host_files_are_absent(api, sbxd, py_session):
    rv = probe(api, py_session["id"], """
import json
def handler(e):
    out = {'environs': {}}
    for p in [x for x in os.listdir('/proc') if x.isdigit()]:
        try:
            out['environs'][p] = open('/proc/%s/environ' % p, 'rb').read().decode(
                errors='replace').split('\\0')
        except OSError as ex:
            out['environs'][p] = err(ex)
    out['own_env'] = dict(os.environ)
    for p in ('/etc/shadow', '/etc/gshadow', '/root', '/home', '/var', '/boot',
              '/etc/ssh', '/etc/sandbox', '/usr/local/etc/sandbox/sbxd.conf'):
        try:
            os.stat(p)
            out[p] = 'present'
        except OSError as ex:
            out[p] = err(ex)
        try:
            if os.path.isdir(p):
                os.listdir(p)
            else:
                open(p, 'rb').close()
            out['read ' + p] = 'ok'
        except OSError as ex:
            out['read ' + p] = err(ex)
    try:
        out['kcore'] = len(open('/proc/kcore', 'rb').read(4096))
    except OSError as ex:
        out['kcore'] = err(ex)
    try:
        out['keys'] = len(open('/proc/keys', 'rb').read(4096))
    except OSError as ex:
        out['keys'] = err(ex)
    out['root'] = sorted(os.listdir('/'))
    out['etc'] = sorted(os.listdir('/etc'))
    return json.dumps(out)
""")
    pid1 = rv["environs"]["1"]
    assert isinstance(pid1, list), rv["environs"]
    keys = {kv.split("=", 1)[0] for kv in pid1 if kv}
    # The engine adds HOSTNAME (the container's, "sandbox") to every container.
    allowed = {"PATH", "HOME", "LANG"} | ({"HOSTNAME"} if runtime() == "docker" else set())
    assert keys <= allowed, pid1
    for p, env in rv["environs"].items():
        assert CANARY not in json.dumps(env), (p, env)
    assert CANARY not in json.dumps(rv["own_env"]), rv["own_env"]
    if sbxd.proc is not None:   # positive control: the daemon itself has the canary
        with open("/proc/%d/environ" % sbxd.proc.proc.pid, "rb") as f:
            assert CANARY.encode() in f.read()
    for p in ("/etc/ssh", "/etc/sandbox", "/usr/local/etc/sandbox/sbxd.conf"):
        assert rv[p] == "ENOENT", (p, rv[p])
    if runtime() == "docker":
        # The root is the image's (a Debian root with its own shadow files and /root), not
        # the host's: they exist but the sandbox user can read none of them.
        for p in ("/etc/shadow", "/etc/gshadow", "/root"):
            assert rv["read " + p] in ("EACCES", "ENOENT"), (p, rv["read " + p])
    else:
        for p in ("/etc/shadow", "/etc/gshadow", "/root", "/home", "/var", "/boot"):
            assert rv[p] == "ENOENT", (p, rv[p])
        assert set(rv["root"]) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32",
                                   "opt", "proc", "run", "sbin", "tmp", "usr",
                                   "workspace"}, rv["root"]
        assert set(rv["etc"]) <= {"passwd", "group", "hosts", "nsswitch.conf", "hostname",
                                  "resolv.conf"}, rv["etc"]
    assert rv["kcore"] in ("ENOENT", 0), rv["kcore"]   # absent on this kernel, or /dev/null
    assert rv["keys"] in ("ENOENT", 0), rv["keys"]


def test_setuid_binaries_and_a_setuid_copy_in_workspace_give_no_privilege(api, py_session):
    have = [p for p in ("/usr/bin/su", "/usr/bin/mount") if os.path.exists(p)
            and os.stat(p).st_mode & 0o4000]
    if not have:
        pytest.skip("no setuid su/mount on this host")
    rv = probe(api, py_session["id"], """
import json, shutil, stat, subprocess
def handler(e):
    out = {}
    for argv in (['/usr/bin/su', '-c', 'id -u', 'root'],
                 ['/usr/bin/mount', '-t', 'tmpfs', 'none', '/tmp'],
                 ['/usr/bin/mount', '--bind', '/workspace', '/usr']):
        if not os.path.exists(argv[0]):
            continue
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        out[' '.join(argv)] = [p.returncode, (p.stdout + p.stderr).decode(errors='replace')]
    shutil.copy('/usr/bin/id', '/workspace/suid-id')
    try:
        os.chmod('/workspace/suid-id', 0o4755)
        out['chmod'] = 'ok'
    except OSError as ex:
        out['chmod'] = err(ex)
    out['mode'] = oct(os.stat('/workspace/suid-id').st_mode)
    p = subprocess.run(['/workspace/suid-id'], capture_output=True, timeout=10)
    out['suid_id'] = p.stdout.decode().strip()
    p = subprocess.run(['/usr/bin/id', '-u'], capture_output=True, timeout=10)
    out['id'] = p.stdout.decode().strip()
    out['mounts'] = open('/proc/self/mountinfo').read().count('\\n')
    out['mounts_before'] = e['n']
    return json.dumps(out)
""", event={"n": 0})
    for k, (rc, text) in [(k, v) for k, v in rv.items() if k.startswith("/usr/bin/")]:
        assert rc != 0, (k, text)
    assert rv["id"] == "1000", rv
    assert rv["suid_id"].startswith("uid=1000") and "euid=0" not in rv["suid_id"], rv
    assert rv["chmod"] == "ok" and int(rv["mode"], 8) & 0o4000, rv   # the bit is set...
    assert "euid" not in rv["suid_id"], rv                            # ...and ignored


def test_device_nodes_cannot_be_made_and_dev_is_minimal(api, py_session):
    rv = probe(api, py_session["id"], """
import json, stat
def handler(e):
    out = {}
    for p in ('/tmp/mem', '/workspace/sda', '/dev/shm/null2'):
        try:
            os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 1))
            out['mknod ' + p] = 'made'
        except OSError as ex:
            out['mknod ' + p] = err(ex)
    try:
        os.mknod('/tmp/blk', stat.S_IFBLK | 0o666, os.makedev(254, 0))
        out['mknod block'] = 'made'
    except OSError as ex:
        out['mknod block'] = err(ex)
    for p in ('/dev/mem', '/dev/kmem', '/dev/port', '/dev/vda', '/dev/sda', '/dev/kmsg',
              '/dev/loop0', '/dev/net/tun', '/dev/fuse'):
        try:
            os.close(os.open(p, os.O_RDONLY))
            out[p] = 'opened'
        except OSError as ex:
            out[p] = err(ex)
    out['dev'] = sorted(os.listdir('/dev'))
    return json.dumps(out)
""")
    for k in ("mknod /tmp/mem", "mknod /workspace/sda", "mknod /dev/shm/null2", "mknod block"):
        assert rv[k] == "EPERM", (k, rv)
    for p in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/vda", "/dev/sda", "/dev/kmsg",
              "/dev/loop0", "/dev/net/tun", "/dev/fuse"):
        assert rv[p] == "ENOENT", (p, rv)
    dev = ["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "tty",
           "urandom", "zero"]
    if runtime() == "docker":
        dev += ["mqueue", "ptmx", "pts"]  # the engine's fixed set: a private devpts, mqueue
    assert rv["dev"] == sorted(dev), rv["dev"]


# ---- signals ----------------------------------------------------------------------------

def test_kill_minus_one_hits_only_the_sandbox_and_the_executor_survives(api, sbxd, py_session):
    sid = py_session["id"]
    host = subprocess.Popen(["sleep", "60"])
    try:
        rv = probe(api, sid, """
import json, signal, time
def handler(e):
    out = {}
    kids = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        kids.append(pid)
    os.kill(-1, signal.SIGKILL)
    time.sleep(0.3)
    out['kids_dead'] = [os.waitpid(k, os.WNOHANG)[0] == k for k in kids]
    try:
        os.kill(1, signal.SIGKILL)              # init ignores SIGKILL from inside
        out['kill_1'] = 'sent'
    except OSError as ex:
        out['kill_1'] = err(ex)
    time.sleep(0.2)
    out['pid1_alive'] = os.path.exists('/proc/1')
    for name, pid in e['host_pids'].items():
        if os.path.exists('/proc/%d' % pid):
            out[name] = 'collides with a sandbox pid'
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            out[name] = 'sent'
        except OSError as ex:
            out[name] = err(ex)
    return json.dumps(out)
""", event={"host_pids": {"host_sleep": host.pid, "pytest": os.getpid(),
                          "sbxd": sbxd.proc.proc.pid if sbxd.proc else os.getppid()}})
        time.sleep(0.2)
        assert host.poll() is None, "a host process died"
    finally:
        host.kill()
        host.wait()
    assert rv["kids_dead"] == [True] * 3, rv
    assert rv["pid1_alive"] is True, rv
    for k in ("host_sleep", "pytest", "sbxd"):
        assert rv[k] in ("ESRCH", "collides with a sandbox pid"), (k, rv)
    assert api.get("/health").status == 200
    assert_session_works(api, sid)     # the executor (and its warm interpreter) came back


def test_sigterm_to_the_executor_from_inside_is_ignored(api, make_session):
    """PID 1 (the executor) ignores stop signals sent from inside its own sandbox (only the
    host's runtime stops it): the handler's SIGTERM/SIGINT change nothing, the next
    execution completes, and nothing else is affected."""
    victim = make_session("python-basic")["id"]
    other = make_session("python-basic")["id"]
    run(api, victim, "import os, signal, time\ndef handler(e):\n"
                     "    os.kill(1, signal.SIGTERM)\n    os.kill(1, signal.SIGINT)\n"
                     "    time.sleep(1)\n    return 1\n",
        timeout=10)
    ex = run(api, victim, "def handler(e):\n    return 7\n", timeout=10)
    assert ex["status"] == "completed" and ex["return_value"] == 7, brief(ex)
    assert_session_works(api, other)
    assert api.get("/health").status == 200


# ---- the files API ----------------------------------------------------------------------

def test_symlink_to_a_file_outside_then_download_is_400(api, py_session):
    sid = py_session["id"]
    ok(api, sid, "import os\ndef handler(e):\n"
                 "    os.symlink('/etc/passwd', '/workspace/pw')\n"
                 "    os.symlink('../../../../etc/passwd', '/workspace/pw_rel')\n"
                 "    os.symlink('/proc/1/environ', '/workspace/env')\n"
                 "    os.symlink('/proc/self/root/etc/passwd', '/workspace/magic')\n")
    for name in ("pw", "pw_rel", "env", "magic"):
        r = api.download(sid, name)
        assert r.status == 400, (name, r)
        assert b"root:x" not in r.raw and b"PATH=" not in r.raw, (name, r)


def test_symlink_to_a_directory_outside_then_upload_is_400_and_nothing_written(
        api, sbxd, py_session):
    sid = py_session["id"]
    ok(api, sid, "import os\ndef handler(e):\n"
                 "    os.symlink('/tmp', '/workspace/tmpdir')\n"
                 "    os.symlink('/run/sbx', '/workspace/rundir')\n"
                 "    os.symlink('../../tmp', '/workspace/reldir')\n"
                 "    os.symlink(e['host'], '/workspace/hostdir')\n",
       event={"host": data_dir(sbxd) or "/var/tmp"})
    name = "escaped-%s" % uuid.uuid4().hex
    for d in ("tmpdir", "rundir", "reldir", "hostdir"):
        r = api.upload(sid, name, b"owned", path="%s/%s" % (d, name))
        assert r.status == 400, (d, r)
        r = api.upload(sid, name, b"owned", path="%s/" % d)
        assert r.status == 400, (d, r)
    seen = ok(api, sid, "import os\ndef handler(e):\n"
                        "    return [p for p in ('/tmp', '/run/sbx') if e['n'] in os.listdir(p)]\n",
              event={"n": name})
    assert seen == [], seen
    if sbxd.proc is not None:
        hits = [dp for dp, dn, fn in os.walk(data_dir(sbxd)) if name in fn]
        assert hits == [], hits
    assert not os.path.exists(os.path.join("/tmp", name))


def test_hard_link_to_a_file_outside_the_workspace_fails(api, py_session):
    sid = py_session["id"]
    rv = probe(api, sid, """
import json
def handler(e):
    out = {}
    for src, dst in (('/etc/passwd', '/workspace/hl_passwd'), ('/usr/bin/su', '/workspace/hl_su'),
                     ('/opt/sbx/bin/sbx-executor', '/workspace/hl_exe'),
                     ('/run/sbx/executor.sock', '/workspace/hl_sock'),
                     ('/etc/passwd', '/tmp/hl_passwd')):
        try:
            os.link(src, dst)
            out[dst] = 'linked'
        except OSError as ex:
            out[dst] = err(ex)
    return json.dumps(out)
""")
    for k, v in rv.items():
        assert v in ("EXDEV", "EPERM"), (k, rv)
    for name in ("hl_passwd", "hl_su", "hl_exe", "hl_sock"):
        assert api.download(sid, name).status == 404


RACER = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
def xchg(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
        raise OSError(ctypes.get_errno(), 'renameat2')
def handler(e):
    os.makedirs('/tmp/racetarget', exist_ok=True)
    with open('/workspace/race', 'w') as f:
        f.write('inside')
    os.symlink('/etc/passwd', '/workspace/race_alt')
    os.mkdir('/workspace/racedir')
    os.symlink('/tmp/racetarget', '/workspace/racedir_alt')
    open('/workspace/racing', 'w').close()
    end = time.monotonic() + e['secs']
    n = 0
    while time.monotonic() < end and n < 5000000:
        xchg('/workspace/race', '/workspace/race_alt')
        xchg('/workspace/racedir', '/workspace/racedir_alt')
        n += 1
    os.unlink('/workspace/racing')
    return {'swaps': n, 'outside': os.listdir('/tmp/racetarget')}
"""


@pytest.mark.slow
def test_toctou_symlink_swap_race_never_reads_or_writes_outside(api, py_session):
    sid = py_session["id"]
    r = api.post("/sessions/%s/execute" % sid,
                 json={"code": RACER, "language": "python", "timeout": 30,
                       "event": {"secs": 8}})
    assert r.status == 201, r
    eid = r.body.get("execution_id") or r.body.get("id")
    deadline = time.monotonic() + 10
    while api.download(sid, "racing").status != 200:
        assert time.monotonic() < deadline, "the racer never started"
        time.sleep(0.05)
    reads, writes = {}, {}
    end = time.monotonic() + 6
    i = 0
    while time.monotonic() < end and i < 400:
        d = api.download(sid, "race")
        key = d.status if d.status != 200 else d.raw[:16]
        reads[key] = reads.get(key, 0) + 1
        assert d.status != 200 or d.raw == b"inside", d
        u = api.upload(sid, "up", b"x", path="racedir/up-%d" % i)
        writes[u.status] = writes.get(u.status, 0) + 1
        i += 1
    ex = api.wait_execution(eid, deadline_s=60)
    record({"reads": {str(k): v for k, v in reads.items()}, "writes": writes,
            "racer": ex.get("return_value")})
    assert ex["status"] == "completed", brief(ex)
    rv = ex["return_value"]
    assert rv["outside"] == [], "uploads landed outside the workspace: %r" % rv["outside"][:5]
    assert rv["swaps"] > 1000, rv
    assert i >= 50, (reads, writes)
    assert set(reads) <= {b"inside", 400, 404}, reads
    assert set(writes) <= {200, 400, 404}, writes
    # Both outcomes were actually exercised.
    assert reads.get(b"inside", 0) > 0 and writes.get(200, 0) > 0, (reads, writes)


# ---- oversized inputs and outputs -------------------------------------------------------

def test_huge_argv_gets_e2big_and_the_executor_survives(api, py_session):
    sid = py_session["id"]
    rv = probe(api, sid, """
import json, subprocess
def handler(e):
    out = {}
    for name, argv in (('one_2MiB_arg', ['/bin/true', 'a' * (2 << 20)]),
                       ('many_args_2MiB', ['/bin/true'] + ['b' * 65536] * 33)):
        try:
            out[name] = subprocess.run(argv).returncode
        except OSError as ex:
            out[name] = err(ex)
    return json.dumps(out)
""")
    assert rv["one_2MiB_arg"] == "E2BIG", rv       # MAX_ARG_STRLEN is 128 KiB
    assert rv["many_args_2MiB"] in ("E2BIG", 0), rv  # ARG_MAX: stack rlimit / 4
    assert_session_works(api, sid)


def test_execution_with_256_env_vars_of_32_kib_is_refused_or_handled_never_a_crash(
        api, sbxd, make_session):
    sid = make_session("shell-basic")["id"]
    big = {"V%03d" % i: "x" * 32768 for i in range(256)}     # 8 MiB
    r = api.post("/sessions/%s/execute" % sid,
                 json={"code": "echo hi", "language": "shell", "env_vars": big})
    assert r.status in (201, 413, 422), r
    # Under the request cap: 96 x 32 KiB = 3 MiB of environment for an exec'd bash.
    mid = {"V%03d" % i: "y" * 32768 for i in range(96)}
    r2 = api.execute_sync(sid, "echo hi", language="shell", env_vars=mid, timeout=20,
                          expect=None)
    record({"256x32KiB": r.status, "96x32KiB": r2.status,
            "96x32KiB_exec": brief(r2.body) if r2.status == 200 else None})
    assert r2.status in (200, 413, 422), r2
    if r2.status == 200:
        assert r2.body["status"] in ("completed", "failed", "crashed"), brief(r2.body)
    assert api.get("/health").status == 200
    ex = api.execute_sync(sid, "echo ok", language="shell", timeout=20)
    assert ex["status"] == "completed" and ex["stdout"].strip() == "ok", brief(ex)


@pytest.fixture
def own_sbxd():
    """A daemon of this test's own: a control-plane crash here must not take the shared
    one (and every later test) with it."""
    if os.environ.get("SBXD_URL"):
        pytest.skip("starts its own sbxd")
    import sbxd_harness
    proc = sbxd_harness.SbxdProcess()
    try:
        proc.start()
        yield proc
        assert proc.proc.poll() is None, "sbxd died:\n%s" % proc.log_tail(20)
        proc.stop_and_check()
    finally:
        proc.cleanup()


@pytest.mark.own_daemon
def test_endless_output_is_capped_status_timeout_executor_rss_bounded(own_sbxd):
    api = own_sbxd.client
    r = api.post("/sessions", json={"template_id": "python-basic"})
    assert r.status == 201, r
    sid = r.body["id"]
    code = ("import sys\n"
            "def handler(e):\n"
            "    line = 'z' * 1023 + '\\n'\n"
            "    while True:\n"
            "        sys.stdout.write(line)\n")
    t0 = time.monotonic()
    try:
        ex = run(api, sid, code, timeout=5)
    except OSError as e:
        raise AssertionError("the control plane dropped the request (%r):\n%s"
                             % (e, own_sbxd.log_tail(5)))
    took = time.monotonic() - t0
    assert ex["status"] == "timeout", brief(ex)
    assert len(ex["stdout"]) <= 1 * MiB + 4096, len(ex["stdout"])
    assert ex.get("stdout_truncated") in (True, None), ex.get("stdout_truncated")
    assert took < 20, took
    h0 = time.monotonic()
    assert api.get("/health", timeout=5).status == 200
    assert time.monotonic() - h0 < 2
    hwm = ok(api, sid, "def handler(e):\n"
                       "    for l in open('/proc/1/status'):\n"
                       "        if l.startswith('VmHWM:'):\n"
                       "            return int(l.split()[1])\n")
    record({"status": ex["status"], "stdout_len": len(ex["stdout"]),
            "stdout_truncated": ex.get("stdout_truncated"), "took_s": round(took, 2),
            "executor_VmHWM_kib": hwm})
    assert hwm < 64 * 1024, "executor peak RSS %d KiB" % hwm
    assert api.delete("/sessions/%s" % sid).status == 204


def test_many_open_files_stop_at_rlimit_nofile(api, py_session):
    rv = probe(api, py_session["id"], """
import json, resource
def handler(e):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds, error = [], None
    try:
        for i in range(100000):
            fds.append(os.open('/dev/null', os.O_RDONLY))
    except OSError as ex:
        error = err(ex)
    n = len(fds)
    for fd in fds:
        os.close(fd)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard * 4, hard * 4))
        raised = 'raised'
    except OSError as ex:
        raised = err(ex)
    except ValueError as ex:   # how Python reports EPERM from setrlimit
        raised = 'EPERM' if 'not allowed' in str(ex) else repr(ex)
    return json.dumps({'soft': soft, 'hard': hard, 'opened': n, 'error': error,
                       'raise_hard': raised})
""")
    assert rv["error"] == "EMFILE", rv
    assert rv["hard"] <= 4096 and rv["soft"] <= rv["hard"], rv
    assert rv["opened"] < rv["soft"], rv
    assert rv["raise_hard"] == "EPERM", rv


def test_proc_self_status_shows_no_caps_no_new_privs_and_seccomp_filter(api, py_session):
    rv = ok(api, py_session["id"],
            "def handler(e):\n"
            "    st = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)\n"
            "    return {k: st.get(k, '').strip() for k in ('CapInh', 'CapPrm', 'CapEff',\n"
            "            'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp', 'Uid', 'Gid', 'Groups')}\n")
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert rv[k] == "0000000000000000", rv
    assert rv["NoNewPrivs"] == "1", rv
    assert rv["Seccomp"] == "2", rv
    assert rv["Uid"].split() == ["1000"] * 4 and rv["Gid"].split() == ["1000"] * 4, rv
    if runtime() == "docker":
        # The engine lists the primary group as a supplementary one too: no extra group.
        assert rv["Groups"] in ("", "1000"), rv
    else:
        assert rv["Groups"] == "", rv
