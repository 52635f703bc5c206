"""Crash safety, measured: sbxd is SIGKILLed (and, on the production tier, MariaDB is
restarted) while executions are in flight.  After the restart nothing is lost: every
session is still there (running, or ended with a reason), every execution ends `completed`
with its real result (computed from its input, so a made-up value is caught) or `crashed`,
none stays pending/running, and every sandbox left belongs to a live session.

Runs on the embedded default (sqlite) and on the production tier (SBXD_PROD_DIR: MariaDB +
S3); the MariaDB-restart scenario needs the production tier.  Each test prints one summary
line with its figures."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import sbxd_harness
from sbxclient import EXEC_TERMINAL, SESSION_TERMINAL

PROD = os.environ.get("SBXD_PROD_DIR")
RUNTIME = os.environ.get("SBXD_RUNTIME", "linux")
SERVICES = os.path.join(os.path.dirname(__file__), "..", "production", "services.sh")

N_SESSIONS = 20
N_EXECS = 50
SETTLE_S = 40  # bound on the wait for every execution to end after the restart

# Sleeps 0.2 .. 3.1 s, then returns a value only this input gives.
CODE = ("import time\n"
        "def handler(event):\n"
        "    time.sleep(event['sleep'])\n"
        "    return {'n': event['n'], 'v': event['n'] * event['n'] + 7}\n")

pytestmark = [pytest.mark.own_daemon, pytest.mark.slow,
              pytest.mark.skipif(bool(os.environ.get("SBXD_URL")),
                                 reason="kills and restarts its own sbxd (SBXD_URL is set)")]


def expected(n):
    return {"n": n, "v": n * n + 7}


def retrying(call, deadline_s=30):
    """call() -> Response, retried while sbxd or its database is unavailable (connection
    refused/reset, 503).  Returns the last response."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            r = call()
            if r.status != 503 or time.monotonic() > end:
                return r
        except OSError:
            if time.monotonic() > end:
                raise
        time.sleep(0.2)


class Load:
    """N_SESSIONS python sessions and N_EXECS async executions spread over them."""

    def __init__(self, api):
        self.api = api
        self.sessions = []
        self.execs = {}  # execution id -> n
        for _ in range(N_SESSIONS):
            r = api.post("/sessions", json={"template_id": "python-basic"})
            assert r.status == 201, r
            self.sessions.append(r.body["id"])

    def submit(self):
        for n in range(N_EXECS):
            sid = self.sessions[n % N_SESSIONS]
            event = {"n": n, "sleep": round(0.2 + (n % 10) * 0.32, 2)}
            r = self.api.post("/sessions/%s/execute" % sid,
                              json={"code": CODE, "language": "python", "event": event,
                                    "timeout": 30})
            assert r.status == 201, r
            self.execs[r.body["execution_id"]] = n

    def statuses(self, api):
        out = {}
        for eid in self.execs:
            r = retrying(lambda: api.get("/executions/%s" % eid))
            out[eid] = r.body if r.status == 200 else {"status": "http %d" % r.status}
        return out

    def settle(self, api, deadline_s=SETTLE_S):
        """Wait (bounded) until every execution is terminal; return the last statuses."""
        end = time.monotonic() + deadline_s
        while True:
            st = self.statuses(api)
            if all(e.get("status") in EXEC_TERMINAL for e in st.values()) or \
                    time.monotonic() > end:
                return st
            time.sleep(0.5)

    def check(self, api, st, data_dir, what, running_at_kill):
        completed = [e for e, b in st.items() if b.get("status") == "completed"]
        real = [e for e in completed if st[e].get("return_value") == expected(self.execs[e])]
        crashed = [e for e, b in st.items() if b.get("status") == "crashed"]
        stuck = [e for e, b in st.items() if b.get("status") not in EXEC_TERMINAL]
        other = [e for e, b in st.items() if e not in completed + crashed + stuck]

        kept, lost, bad = 0, [], []
        for sid in self.sessions:
            r = retrying(lambda: api.get("/sessions/%s" % sid))
            if r.status != 200:
                lost.append((sid, r.status))
                continue
            if r.body["status"] == "running" or (r.body["status"] in SESSION_TERMINAL
                                                  and r.body.get("error_message")):
                kept += 1
            else:
                bad.append((sid, r.body["status"], r.body.get("error_message")))
        listed = listed_sessions(api)
        unlisted = [s for s in self.sessions if s not in listed]
        orphans, missing = sandbox_orphans(api, data_dir)

        print("crash test (%s): %d executions, %d running at the interruption, "
              "%d completed with real results, %d crashed, %d stuck, %d other, "
              "%d/%d sessions, %s orphans"
              % (what, len(st), running_at_kill, len(real), len(crashed), len(stuck),
                 len(other), kept, N_SESSIONS,
                 "n/a" if orphans is None else len(orphans)))
        assert not stuck, "executions still pending/running after %ss: %s" % (
            SETTLE_S, {e: st[e].get("status") for e in stuck})
        assert len(real) == len(completed), "completed with a wrong result: %s" % [
            (st[e].get("return_value"), expected(self.execs[e]))
            for e in completed if e not in real]
        assert not other, "executions ended neither completed nor crashed: %s" % {
            e: (st[e].get("status"), st[e].get("error_message")) for e in other}
        assert not lost and not bad, "sessions lost %s, ended without a reason %s" % (
            lost, bad)
        assert not unlisted, "sessions missing from GET /sessions: %s" % unlisted
        assert not orphans, "sandboxes of no live session: %s" % orphans
        assert not missing, "running sessions whose sandbox is gone: %s" % missing
        return len(real), len(crashed)

    def cleanup(self, api):
        for sid in self.sessions:
            try:
                api.delete("/sessions/%s" % sid, timeout=30)
            except OSError:
                pass


def listed_sessions(api):
    seen, offset = set(), 0
    while True:
        r = retrying(lambda: api.get("/sessions", params={"limit": 100, "offset": offset}))
        assert r.status == 200, r
        seen.update(s["id"] for s in r.body["items"])
        if not r.body.get("has_more"):
            return seen
        offset += len(r.body["items"])


def sandbox_orphans(api, data_dir):
    """Linux runtime: (sandboxes that neither a running session nor sbxd's warm pool owns,
    running sessions of this daemon without a live sandbox).  The runtime's state dir is
    <data_dir>/linux.  A session's sandbox is matched by the sandbox_id the API shows (a
    sandbox taken from a warm pool was built before its session existed); a pooled
    sandbox carries pool_owner and no session."""
    if RUNTIME != "linux":
        return None, []
    running = {}
    for s in listed_running(api, full=True):
        running[s.get("sandbox_id")] = s["id"]
    root = os.path.join(data_dir, "linux", "sandboxes")
    orphans, by_session = [], {}
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        try:
            with open(os.path.join(root, name, "sandbox.json")) as f:
                h = json.load(f)
        except (OSError, ValueError):
            orphans.append((name, "no sandbox.json"))
            continue
        sid = running.get(h.get("sandbox_id"))
        if sid is None and h.get("pool_owner") and not h.get("session_id"):
            if not pid_alive(h.get("pid")):
                orphans.append((name, "pooled", "its init is gone"))
            continue
        if sid is None:
            orphans.append((name, h.get("session_id"), "no running session owns it"))
            continue
        if not pid_alive(h.get("pid")):
            orphans.append((name, sid, "its init is gone"))
            continue
        by_session[sid] = name
    missing = [s for s in running.values() if s not in by_session]
    return orphans, missing


def listed_running(api, full=False):
    out, offset = [], 0
    while True:
        r = retrying(lambda: api.get("/sessions", params={"status": "running", "limit": 100,
                                                          "offset": offset}))
        assert r.status == 200, r
        out += r.body["items"] if full else [s["id"] for s in r.body["items"]]
        if not r.body.get("has_more"):
            return out
        offset += len(r.body["items"])


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % int(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, ValueError, TypeError, IndexError):
        return False


def running_now(api, load):
    return sum(1 for b in load.statuses(api).values() if b.get("status") == "running")


@pytest.fixture
def data_dir():
    d = tempfile.mkdtemp(prefix="sbxd-crash-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def config():
    """The tier's config; on the production tier with a MariaDB database of its own, so
    that the suite's shared daemon (another replica) does not judge these sessions."""
    c = sbxd_harness.DerivedConfig()
    yield c
    c.cleanup()


def test_sigkill_of_sbxd_with_executions_in_flight_loses_nothing(data_dir, config):
    procs = []
    load = None
    try:
        first = sbxd_harness.SbxdProcess(data_dir=data_dir, config=config)
        procs.append(first)
        api = first.start().client
        load = Load(api)
        load.submit()
        time.sleep(0.5)  # the shortest ones finish before the kill
        running = running_now(api, load)
        assert running > 0, "no execution was running when sbxd was to be killed"
        first.kill()  # SIGKILL

        second = sbxd_harness.SbxdProcess(data_dir=data_dir, port=first.port, config=config)
        procs.append(second)
        api = second.start().client
        st = load.settle(api)
        load.check(api, st, data_dir, "sbxd SIGKILL", running)
        load.cleanup(api)
        load = None
        second.stop_and_check()
    finally:
        if load is not None and procs and procs[-1].proc.poll() is None:
            load.cleanup(procs[-1].client)
        for p in procs:
            p.cleanup()


@pytest.mark.skipif(not PROD, reason="restarts MariaDB: needs the production tier "
                                     "(SBXD_PROD_DIR, tests/production/services.sh)")
def test_mariadb_restart_with_executions_in_flight_loses_nothing(data_dir, config):
    proc = sbxd_harness.SbxdProcess(data_dir=data_dir, config=config)
    load = None
    db_down = False
    try:
        api = proc.start().client
        load = Load(api)
        load.submit()
        time.sleep(0.5)
        running = running_now(api, load)
        assert running > 0, "no execution was running when MariaDB was to be stopped"
        subprocess.run(["bash", SERVICES, "db-stop", PROD], check=True, timeout=60)
        db_down = True
        time.sleep(2)
        subprocess.run(["bash", SERVICES, "db-start", PROD], check=True, timeout=60)
        db_down = False
        st = load.settle(api)
        load.check(api, st, data_dir, "MariaDB restart", running)
        load.cleanup(api)
        load = None
        proc.stop_and_check()
    finally:
        if db_down:
            subprocess.run(["bash", SERVICES, "db-start", PROD], timeout=60)
        if load is not None and proc.proc is not None and proc.proc.poll() is None:
            load.cleanup(api)
        proc.cleanup()


def half_made_sandboxes(binary):
    """Processes forked by sbxd into new namespaces that never became a sandbox: still
    running the sbxd binary, inside a pid namespace of their own (NSpid has two entries)."""
    found = []
    real = os.path.realpath(binary)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % pid)
            with open("/proc/%s/status" % pid) as f:
                nspid = [l.split()[1:] for l in f if l.startswith("NSpid:")]
        except OSError:
            continue
        if exe == real and nspid and len(nspid[0]) > 1:
            found.append(int(pid))
    return found


@pytest.mark.skipif(RUNTIME != "linux", reason="linux runtime: its sandbox set-up runs in a "
                                               "child of sbxd")
def test_sigkill_during_session_creates_leaves_no_half_made_sandbox(data_dir, config):
    # Sessions are created from 4 threads while sbxd is killed; a child caught between
    # clone() and exec (waiting for its id maps or its cgroup) must go away with sbxd,
    # not wait on its pipe forever.
    import threading
    first = sbxd_harness.SbxdProcess(data_dir=data_dir, config=config)
    second = None
    stop = threading.Event()

    def create(api):
        while not stop.is_set():
            try:
                api.post("/sessions", json={"template_id": "python-basic"}, timeout=5)
            except Exception:
                return

    try:
        api = first.start().client
        workers = [threading.Thread(target=create, args=(sbxd_harness.Client(first.url),))
                   for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        first.kill()  # SIGKILL, creates in flight
        stop.set()
        for w in workers:
            w.join(10)
        deadline = time.monotonic() + 10
        while half_made_sandboxes(first.binary) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert half_made_sandboxes(first.binary) == [], "half-made sandboxes left behind"
        second = sbxd_harness.SbxdProcess(data_dir=data_dir, port=first.port, config=config)
        api = second.start().client
        orphans, missing = [], []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            orphans, missing = sandbox_orphans(api, data_dir)
            if not orphans and not missing:
                break
            time.sleep(0.5)
        assert not orphans and not missing, (orphans, missing)
        for sid in listed_running(api):
            api.delete("/sessions/%s" % sid)
        second.stop_and_check()
    finally:
        stop.set()
        first.cleanup()
        if second is not None:
            second.cleanup()
