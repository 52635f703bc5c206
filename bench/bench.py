#!/usr/bin/python3
"""sbxd benchmark suite (Python 3 standard library only).

Measures, in one run, against one sbxd (started here, or an already running one
with --url):
  1. session create latency (POST /sessions -> 201 running)
  2. Python execute-sync round trip on one session (serial)
  3. execute-sync throughput at concurrency 8 (8 sessions, 8 keep-alive connections)
  4. the same handler run with `/usr/bin/python3 -c` per execution (serial and at 8)
  5. node and shell execute-sync, session terminate and delete latency
and writes a Markdown report (bench/RESULTS.md by default).

Every loop is bounded both in count and in time. Traffic goes to 127.0.0.1 only.
"""

import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
API = "/api/v1"

PY_HANDLER = 'def handler(event):\n    return {"result": "hello world"}\n'
PY_EXPECT = {"result": "hello world"}
JS_HANDLER = 'function handler(event) {\n  return {result: "hello world"};\n}\n'
SH_SCRIPT = 'echo "hello world"\n'
# The same handler, done the naive way: a fresh interpreter per execution.
PY_C_CODE = ('import json\n'
             'def handler(event):\n    return {"result": "hello world"}\n'
             'print(json.dumps(handler({"n": 1})))\n')
PYTHON = "/usr/bin/python3"

TARGETS = [  # (measurement key, statistic, limit ms, label)
    ("create", "p50", 20.0, "session create p50 <= 20 ms"),
    ("exec_py", "p50", 5.0, "Python execute-sync p50 <= 5 ms"),
]


# --------------------------------------------------------------------------- stats

def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def summarize(vals_ms):
    s = sorted(vals_ms)
    if not s:
        return {"n": 0}
    return {"n": len(s), "p50": statistics.median(s), "p90": pct(s, 90), "p99": pct(s, 99),
            "max": s[-1], "min": s[0], "mean": statistics.fmean(s)}


def fmt(v, nd=2):
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:.{nd}f}"


# --------------------------------------------------------------------------- HTTP

class Client:
    """One keep-alive HTTP/1.1 connection to sbxd."""

    def __init__(self, host, port, timeout=60.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None
        self.reconnects = 0

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, method, path, body=None, rid=None):
        """Returns (status, parsed body or raw bytes, elapsed seconds).
        The timed part is from just before sending to the last byte of the body."""
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if rid:
            headers["X-Request-ID"] = rid
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
                if attempt:
                    self.reconnects += 1
            try:
                t0 = time.perf_counter()
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                t1 = time.perf_counter()
                break
            except (http.client.HTTPException, ConnectionError, socket.timeout, OSError):
                self.close()
                if attempt:
                    raise
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return resp.status, parsed, t1 - t0

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None


# --------------------------------------------------------------------------- server

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def with_warm_pools(config, size, directory):
    """A copy of config (in directory) whose warm_pools group is `size = N` (replacing the
    config's own group, if any)."""
    with open(config) as f:
        text = f.read()
    text = re.sub(r"(?ms)^[ \t]*warm_pools\s*=\s*\{.*?\}\s*;?[ \t]*$", "", text)
    path = os.path.join(directory, "sbxd.conf")
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n\nwarm_pools = { size = %d; };\n" % size)
    return path


class Server:
    def __init__(self, sbxd, config, warm_pool=0):
        """warm_pool: the pool size every template gets (0: none, so that session create
        is measured as a build; None: whatever config says)."""
        self.proc = None
        self.data_dir = tempfile.mkdtemp(prefix="sbxbench.")
        if warm_pool is not None:
            config = with_warm_pools(config, warm_pool, self.data_dir)
        self.sbxd, self.config = sbxd, config
        self.log_path = os.path.join(self.data_dir, "sbxd.log")
        self.port = free_port()
        self.cmd = [sbxd, "--config", config, "--listen", f"127.0.0.1:{self.port}",
                    "--data-dir", self.data_dir]

    def start(self, timeout=30.0):
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        t_start = time.perf_counter()
        deadline = time.monotonic() + timeout
        c = Client("127.0.0.1", self.port, timeout=2.0)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sbxd exited with {self.proc.returncode}; log {self.log_path}")
            try:
                st, _, _ = c.request("GET", API + "/health")
                if st == 200:
                    c.close()
                    return time.perf_counter() - t_start
            except OSError:
                c.close()
            time.sleep(0.05)
        raise RuntimeError(f"sbxd not healthy after {timeout}s; log {self.log_path}")

    def stop(self, grace=40.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # our own child, by PID
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.logf.close()


# --------------------------------------------------------------------------- helpers

class Bench:
    def __init__(self, host, port, args):
        self.host, self.port, self.args = host, port, args
        self.c = Client(host, port)
        self.sessions = set()  # ids we created and have not deleted yet
        self.lock = threading.Lock()
        self.results = {}
        self.notes = []
        self.rid_prefix = "bench-%x" % int(time.time())
        self.rid_n = 0

    def rid(self, kind):
        with self.lock:
            self.rid_n += 1
            return f"{self.rid_prefix}-{kind}-{self.rid_n}"

    def create_session(self, template, client=None, kind="create"):
        c = client or self.c
        st, body, dt = c.request("POST", API + "/sessions", {"template_id": template},
                                 rid=self.rid(kind))
        if st != 201 or not isinstance(body, dict) or "id" not in body:
            raise RuntimeError(f"create {template}: HTTP {st} {str(body)[:300]}")
        with self.lock:
            self.sessions.add(body["id"])
        if body.get("status") != "running":
            raise RuntimeError(f"create {template}: status {body.get('status')}")
        return body["id"], dt

    def delete_session(self, sid, client=None):
        c = client or self.c
        st1, _, t_term = c.request("POST", f"{API}/sessions/{sid}/terminate", rid=self.rid("term"))
        st2, _, t_del = c.request("DELETE", f"{API}/sessions/{sid}", rid=self.rid("del"))
        if st1 != 200 or st2 != 204:
            raise RuntimeError(f"terminate/delete {sid}: HTTP {st1}/{st2}")
        with self.lock:
            self.sessions.discard(sid)
        return t_term, t_del

    def execute(self, sid, code, lang, client=None, kind="exec"):
        c = client or self.c
        st, body, dt = c.request("POST", f"{API}/sessions/{sid}/execute-sync",
                                 {"code": code, "language": lang}, rid=self.rid(kind))
        return st, body, dt

    def cleanup(self):
        for sid in list(self.sessions):
            try:
                self.delete_session(sid)
            except Exception as e:  # report, keep going
                print(f"warning: cleanup of {sid}: {e}", file=sys.stderr)

    # ----------------------------------------------------------------------- 1 + 5b
    def bench_create(self, n, budget_s):
        lat, term, dele, both = [], [], [], []
        deadline = time.monotonic() + budget_s
        # one untimed warm-up (first sandbox of the run: catalogue, cgroup dirs, page cache)
        sid, _ = self.create_session("python-basic", kind="warm")
        self.delete_session(sid)
        for _ in range(n):
            if time.monotonic() > deadline:
                self.notes.append(f"session create stopped at {len(lat)}/{n}: {budget_s}s budget")
                break
            sid, dt = self.create_session("python-basic")
            lat.append(dt * 1e3)
            t_term, t_del = self.delete_session(sid)  # outside the create timing
            term.append(t_term * 1e3)
            dele.append(t_del * 1e3)
            both.append((t_term + t_del) * 1e3)
        self.results["create"] = summarize(lat)
        self.results["terminate"] = summarize(term)
        self.results["delete"] = summarize(dele)
        self.results["term_delete"] = summarize(both)

    # ----------------------------------------------------------------------- 2
    def bench_exec_serial(self, key, template, code, lang, n, warmup, budget_s, check):
        sid, _ = self.create_session(template, kind="sess")
        errors = 0
        lat, handler_ms, srv_ms, queue_ms, tail_ms = [], [], [], [], []
        rids = []
        try:
            for _ in range(warmup):
                st, body, _ = self.execute(sid, code, lang, kind="warm")
                if st != 200 or not check(body):
                    raise RuntimeError(f"{key} warm-up: HTTP {st} {str(body)[:400]}")
            deadline = time.monotonic() + budget_s
            for _ in range(n):
                if time.monotonic() > deadline:
                    self.notes.append(f"{key} stopped at {len(lat)}/{n}: {budget_s}s budget")
                    break
                st, body, dt = self.execute(sid, code, lang, kind=key)
                if st != 200 or not check(body):
                    errors += 1
                    if errors <= 3:
                        self.notes.append(f"{key} error: HTTP {st} {str(body)[:300]}")
                    if errors > 20:
                        break
                    continue
                lat.append(dt * 1e3)
                m = body.get("metrics") or {}
                if m.get("duration_ms") is not None:
                    handler_ms.append(float(m["duration_ms"]))
                ca, sa, co = (ts_ms(body.get(k)) for k in ("created_at", "started_at", "completed_at"))
                if None not in (ca, sa, co):
                    queue_ms.append(sa - ca)
                    srv_ms.append(co - sa)
        finally:
            self.delete_session(sid)
        r = summarize(lat)
        r["errors"] = errors
        r["handler_duration_ms"] = summarize(handler_ms)
        r["created_to_started_ms"] = summarize(queue_ms)
        r["started_to_completed_ms"] = summarize(srv_ms)
        r["warmup"] = warmup
        self.results[key] = r

    # ----------------------------------------------------------------------- 3
    def bench_exec_concurrent(self, conc, duration_s):
        sids = []
        clients = []
        try:
            for _ in range(conc):
                cl = Client(self.host, self.port)
                sid, _ = self.create_session("python-basic", client=cl, kind="sess")
                # warm each session (first fork of its zygote, connection set-up)
                for _ in range(3):
                    self.execute(sid, PY_HANDLER, "python", client=cl, kind="warm")
                sids.append(sid)
                clients.append(cl)
            lats = [[] for _ in range(conc)]
            errs = [0] * conc
            err_samples = []
            barrier = threading.Barrier(conc + 1)
            hard_cap = 200000  # per thread, in addition to the time bound

            def worker(i):
                barrier.wait()
                end = time.perf_counter() + duration_s
                n = 0
                while time.perf_counter() < end and n < hard_cap:
                    n += 1
                    try:
                        st, body, dt = self.execute(sids[i], PY_HANDLER, "python",
                                                    client=clients[i], kind="conc")
                        ok = st == 200 and check_py(body)
                    except Exception as e:
                        st, body, dt, ok = "exc", repr(e), 0.0, False
                    if ok:
                        lats[i].append(dt * 1e3)
                    else:
                        errs[i] += 1
                        if len(err_samples) < 3:
                            err_samples.append(f"HTTP {st} {str(body)[:200]}")

            threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(conc)]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join(duration_s + 120)
            wall = time.perf_counter() - t0
            allv = [v for l in lats for v in l]
            r = summarize(allv)
            r.update({"errors": sum(errs), "wall_s": wall, "per_s": len(allv) / wall,
                      "concurrency": conc, "per_thread": [len(l) for l in lats]})
            for s in err_samples:
                self.notes.append(f"concurrency {conc} error: {s}")
            self.results["exec_conc"] = r
        finally:
            for cl in clients:
                cl.close()
            for sid in sids:
                try:
                    self.delete_session(sid)
                except Exception as e:
                    print(f"warning: delete {sid}: {e}", file=sys.stderr)


def check_py(body):
    return isinstance(body, dict) and body.get("status") == "completed" and \
        body.get("return_value") == PY_EXPECT


def check_js(body):
    return isinstance(body, dict) and body.get("status") == "completed" and \
        body.get("return_value") == PY_EXPECT


def check_sh(body):
    return isinstance(body, dict) and body.get("status") == "completed" and \
        "hello world" in (body.get("stdout") or "")


def ts_ms(s):
    """ISO 8601 '2026-11-26T03:33:52.223Z' -> ms since epoch (float), or None."""
    if not s or not isinstance(s, str):
        return None
    try:
        d = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
        return d.timestamp() * 1e3
    except ValueError:
        return None


# --------------------------------------------------------------------------- python3 -c

def run_py_c():
    t0 = time.perf_counter()
    p = subprocess.run([PYTHON, "-c", PY_C_CODE], capture_output=True, timeout=30)
    dt = time.perf_counter() - t0
    ok = p.returncode == 0 and json.loads(p.stdout or b"null") == PY_EXPECT
    return ok, dt


def bench_py_c(results, n, conc, duration_s):
    for _ in range(5):  # warm the page cache
        run_py_c()
    lat, errs = [], 0
    deadline = time.monotonic() + 120
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        ok, dt = run_py_c()
        if ok:
            lat.append(dt * 1e3)
        else:
            errs += 1
    r = summarize(lat)
    r["errors"] = errs
    results["pyc_serial"] = r

    lats = [[] for _ in range(conc)]
    errc = [0] * conc
    barrier = threading.Barrier(conc + 1)

    def worker(i):
        barrier.wait()
        end = time.perf_counter() + duration_s
        k = 0
        while time.perf_counter() < end and k < 100000:
            k += 1
            try:
                ok, dt = run_py_c()
            except Exception:
                ok, dt = False, 0
            if ok:
                lats[i].append(dt * 1e3)
            else:
                errc[i] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(conc)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(duration_s + 60)
    wall = time.perf_counter() - t0
    allv = [v for l in lats for v in l]
    r = summarize(allv)
    r.update({"errors": sum(errc), "wall_s": wall, "per_s": len(allv) / wall, "concurrency": conc})
    results["pyc_conc"] = r


# --------------------------------------------------------------------------- server log

LOG_RE = re.compile(r"req=(\S+) method=(\S+) path=(\S+) status=(\d+) ms=([\d.]+)")


def server_log_ms(log_path, rid_prefix):
    """Server-side handling time per request kind, from sbxd's own access log lines
    (matched through the X-Request-ID we sent)."""
    out = {}
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                m = LOG_RE.search(line)
                if not m or not m.group(1).startswith(rid_prefix + "-"):
                    continue
                kind = m.group(1)[len(rid_prefix) + 1:].rsplit("-", 1)[0]
                out.setdefault(kind, []).append(float(m.group(5)))
    except OSError:
        return {}
    return {k: summarize(v) for k, v in out.items()}


# --------------------------------------------------------------------------- machine

def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def machine_info():
    info = {"nproc": os.cpu_count(), "kernel": " ".join(os.uname()[2:4])}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["mem_gib"] = int(line.split()[1]) / 1048576
                    break
    except OSError:
        pass
    nproc = sh(["nproc"])
    if nproc:
        info["nproc"] = int(nproc)
    info["python"] = sys.version.split()[0]
    return info


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def busy_procs(limit=6):
    """Top CPU consumers right now (to say what else was running)."""
    out = sh(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"])
    rows = []
    for line in out.splitlines()[:limit]:
        parts = line.split(None, 1)
        if len(parts) == 2 and float(parts[0]) >= 5.0:
            rows.append(f"{parts[1]} {parts[0]}%")
    return rows


# --------------------------------------------------------------------------- report

ROWS = [  # key, label
    ("create", "1. session create (POST /sessions -> 201 running)"),
    ("exec_py", "2. Python execute-sync, 1 session, serial"),
    ("exec_conc", "3. Python execute-sync under load, concurrency 8"),
    ("pyc_serial", "4. `python3 -c` per execution, serial"),
    ("pyc_conc", "4. `python3 -c` per execution, concurrency 8"),
    ("exec_node", "5. node execute-sync, serial"),
    ("exec_shell", "5. shell execute-sync, serial"),
    ("terminate", "5. session terminate (POST .../terminate)"),
    ("delete", "5. session delete (DELETE /sessions/{id})"),
    ("term_delete", "5. session terminate + delete"),
]


def table(results):
    hdr = "| measurement | n | p50 ms | p90 ms | p99 ms | max ms | mean ms | errors | exec/s |"
    lines = [hdr, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, label in ROWS:
        r = results.get(key)
        if not r or not r.get("n"):
            if r is not None:
                lines.append(f"| {label} | 0 | - | - | - | - | - | {r.get('errors', '-')} | - |")
            continue
        per_s = fmt(r["per_s"], 1) if "per_s" in r else "-"
        lines.append(f"| {label} | {r['n']} | {fmt(r['p50'])} | {fmt(r['p90'])} | "
                     f"{fmt(r['p99'])} | {fmt(r['max'])} | {fmt(r['mean'])} | "
                     f"{r.get('errors', 0)} | {per_s} |")
    return "\n".join(lines)


def text_table(results):
    out = [f"{'measurement':52s} {'n':>5s} {'p50':>8s} {'p90':>8s} {'p99':>8s} {'max':>8s} "
           f"{'mean':>8s} {'err':>4s} {'exec/s':>7s}"]
    for key, label in ROWS:
        r = results.get(key)
        if not r or not r.get("n"):
            continue
        per_s = fmt(r["per_s"], 1) if "per_s" in r else "-"
        out.append(f"{label[:52]:52s} {r['n']:5d} {fmt(r['p50']):>8s} {fmt(r['p90']):>8s} "
                   f"{fmt(r['p99']):>8s} {fmt(r['max']):>8s} {fmt(r['mean']):>8s} "
                   f"{r.get('errors', 0):4d} {per_s:>7s}")
    return "\n".join(out)


def write_report(path, ctx, results, srvlog, notes):
    L = []
    a = L.append
    a("# sbxd benchmark results\n")
    a("Generated by `bench/run.sh` (bench/bench.py). All times are client-side wall-clock "
      "round trips in milliseconds (time.perf_counter, keep-alive HTTP/1.1 over loopback) "
      "unless a row says otherwise. See bench/README.md for what each number means.\n")
    a("## Run\n")
    a(f"- date (UTC): {ctx['date']}")
    a(f"- command: `{ctx['command']}`")
    a(f"- sbxd: {ctx['version']} — {ctx['server']}")
    m = ctx["machine"]
    a(f"- machine: {m.get('nproc')} vCPU, {m.get('cpu', '?')}, kernel {m.get('kernel')}, "
      f"{m.get('mem_gib', 0):.1f} GiB RAM, Python {m.get('python')} (client)")
    la0, la1 = ctx["load_start"], ctx["load_end"]
    a(f"- load average at start: {la0[0]:.2f} {la0[1]:.2f} {la0[2]:.2f}; at end: "
      f"{la1[0]:.2f} {la1[1]:.2f} {la1[2]:.2f}")
    if ctx.get("busy"):
        a(f"- busiest other processes at start: {', '.join(ctx['busy'])}")
    if ctx.get("mode"):
        a(f"- mode: {ctx['mode']}")
    if ctx.get("extra_run_note"):
        a(f"- {ctx['extra_run_note']}")
    a("")
    if la0[0] > 1.0:
        a(f"> **Warning: the 1-minute load average was {la0[0]:.2f} (> 1.0) when the run "
          f"started: other work was running on this {m.get('nproc')}-vCPU machine, so these "
          f"numbers are pessimistic.**\n")
    a("## Results\n")
    a(table(results))
    a("")
    a("## Targets\n")
    a("| target | measured | verdict |")
    a("|---|---:|---|")
    for key, stat, limit, label in TARGETS:
        r = results.get(key) or {}
        v = r.get(stat)
        verdict = "-" if v is None else ("**met**" if v <= limit else "**not met**")
        a(f"| {label} | {fmt(v)} ms | {verdict} |")
    a("")
    ep = results.get("exec_py") or {}
    ec = results.get("exec_conc") or {}
    pc = results.get("pyc_serial") or {}
    pcc = results.get("pyc_conc") or {}
    a("## Comparisons\n")
    if ep.get("n") and pc.get("n"):
        a(f"- serial: sbxd execute-sync p50 {fmt(ep['p50'])} ms vs `python3 -c` p50 "
          f"{fmt(pc['p50'])} ms (ratio {ep['p50'] / pc['p50']:.2f}; `python3 -c` has no sandbox, "
          f"no HTTP and no persistence, it is only the floor of the naive approach).")
        a(f"- serial throughput implied by the mean: sbxd {1000 / ep['mean']:.1f} exec/s, "
          f"`python3 -c` {1000 / pc['mean']:.1f} exec/s.")
    if pc.get("n"):
        a(f"- machine calibration: `python3 -c` p50 here was {fmt(pc['p50'])} ms; "
          f"/work/shared/notes/machine.md measured `python3 -c pass` at ~8 ms on a quiet "
          f"machine (row 4 also imports json, a little more work), so this run saw roughly {pc['p50'] / 8.0:.1f}x the quiet cost for "
          f"process start-up (CPU contention from other work).")
    if ec.get("n") and pcc.get("n"):
        a(f"- concurrency 8: sbxd {fmt(ec['per_s'], 1)} exec/s vs `python3 -c` "
          f"{fmt(pcc['per_s'], 1)} exec/s.")
    a("")
    a("## Server-side view of the same requests\n")
    a("From the executions' own fields (serial Python run, row 2) and sbxd's access log lines "
      "(`ms=` per request, matched by the X-Request-ID the client sent; the log's resolution "
      "is coarse).\n")
    a("| quantity | n | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
    a("|---|---:|---:|---:|---:|---:|---:|")

    def row(label, r):
        if r and r.get("n"):
            a(f"| {label} | {r['n']} | {fmt(r['p50'])} | {fmt(r['p90'])} | {fmt(r['p99'])} | "
              f"{fmt(r['max'])} | {fmt(r['mean'])} |")
    row("Python: client round trip (row 2)", ep)
    row("Python: handler `metrics.duration_ms` (executor-measured)", ep.get("handler_duration_ms"))
    row("Python: `started_at - created_at`", ep.get("created_to_started_ms"))
    row("Python: `completed_at - started_at`", ep.get("started_to_completed_ms"))
    for kind, label in (("create", "sbxd log: POST /sessions"), ("exec_py", "sbxd log: execute-sync python (serial)"),
                        ("conc", "sbxd log: execute-sync python (concurrency 8)"),
                        ("exec_node", "sbxd log: execute-sync node"), ("exec_shell", "sbxd log: execute-sync shell"),
                        ("term", "sbxd log: POST terminate (every session of the run)"),
                        ("del", "sbxd log: DELETE session (every session of the run)")):
        row(label, srvlog.get(kind))
    a("")
    if notes:
        a("## Notes from this run\n")
        for n_ in notes:
            a(f"- {n_}")
        a("")
    wt = os.path.join(HERE, "WHERE_TIME_GOES.md")
    if os.path.exists(wt):
        with open(wt) as f:
            a(f.read().rstrip() + "\n")
    # The section bench/docker.py writes (its own run) is kept as it is.
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        m = re.search(r"<!-- bench/docker.py: begin -->.*<!-- bench/docker.py: end -->\n?", old,
                      re.S)
        if m:
            a(m.group(0))
    with open(path, "w") as f:
        f.write("\n".join(L))


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sbxd", default="/usr/local/sbin/sbxd")
    ap.add_argument("--config", default="/usr/local/etc/sandbox/sbxd.conf")
    ap.add_argument("--url", help="use an already running sbxd (127.0.0.1 / localhost only)")
    ap.add_argument("--quick", action="store_true", help="small counts, short runs (smoke test)")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--json", help="also write the raw results as JSON here")
    ap.add_argument("--keep-data", action="store_true", help="keep the temp data dir and log")
    ap.add_argument("--report-from", metavar="JSON",
                    help="do not measure: re-render the report from a --json file of an earlier run")
    ap.add_argument("--command", help=argparse.SUPPRESS)  # set by run.sh
    args = ap.parse_args()

    if args.report_from:
        with open(args.report_from) as f:
            saved = json.load(f)
        if args.command and "--report-from" in args.command:
            saved["ctx"]["extra_run_note"] = (saved["ctx"].get("extra_run_note") or
                                              "report re-rendered from the run's saved JSON")
        write_report(args.out, saved["ctx"], saved["results"], saved["server_log"], saved["notes"])
        print(text_table(saved["results"]))
        print(f"report written to {args.out}")
        return

    q = args.quick
    N_CREATE = 20 if q else 100
    N_EXEC, WARM = (100, 20) if q else (500, 20)
    N_OTHER = 20 if q else 50
    N_PYC = 30 if q else 100
    DUR = 3.0 if q else 10.0
    CONC = 8

    ctx = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
           "command": args.command or " ".join([sys.executable] + sys.argv),
           "machine": machine_info(), "load_start": loadavg(), "busy": busy_procs(),
           "mode": "quick (--quick: reduced counts)" if q else
           f"full (create N={N_CREATE}, exec N={N_EXEC} after {WARM} warm-up, "
           f"concurrency {CONC} for {DUR:.0f} s, python3 -c N={N_PYC}, node/shell N={N_OTHER})"}
    server = None
    if args.url:
        u = urllib.parse.urlsplit(args.url)
        if u.hostname not in ("127.0.0.1", "localhost"):
            sys.exit("--url must point at 127.0.0.1 (loopback only)")
        host, port = "127.0.0.1", u.port or 80
        ctx["server"] = f"already running at {args.url} (its configuration is not known here)"
        ctx["version"] = "?"
    else:
        ver = sh([args.sbxd, "--version"])
        ctx["version"] = ver or "?"
        server = Server(args.sbxd, args.config)
        print(f"starting: {' '.join(server.cmd)}", file=sys.stderr)
        ready = server.start()
        host, port = "127.0.0.1", server.port
        ctx["server"] = (f"started by the benchmark: `{' '.join(server.cmd)}` "
                         f"(healthy {ready * 1e3:.0f} ms after exec); config `{args.config}` "
                         "with `warm_pools = { size = 0; }`, so that session create is "
                         "measured as a build (warm-pool claims: bench/warm_pool.py)")

    b = Bench(host, port, args)
    if args.url:
        st, body, _ = b.c.request("GET", API + "/health")
        if st == 200 and isinstance(body, dict):
            ctx["version"] = f"sbxd {body.get('version')} (from /health)"
    t_run = time.perf_counter()
    try:
        def step(name, fn, *a):
            t = time.perf_counter()
            print(f"[{time.perf_counter() - t_run:6.1f}s] {name} ...", file=sys.stderr, flush=True)
            try:
                fn(*a)
            except Exception as e:
                b.notes.append(f"{name} failed: {e}")
                print(f"  FAILED: {e}", file=sys.stderr)
            print(f"         done in {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)

        step("1+5 session create / terminate / delete", b.bench_create, N_CREATE, 180)
        step("2 python execute-sync serial", b.bench_exec_serial, "exec_py", "python-basic",
             PY_HANDLER, "python", N_EXEC, WARM, 120, check_py)
        step("3 python execute-sync concurrency 8", b.bench_exec_concurrent, CONC, DUR)
        step("4 python3 -c", bench_py_c, b.results, N_PYC, CONC, DUR)
        step("5 node execute-sync", b.bench_exec_serial, "exec_node", "nodejs-basic",
             JS_HANDLER, "javascript", N_OTHER, 5, 120, check_js)
        step("5 shell execute-sync", b.bench_exec_serial, "exec_shell", "shell-basic",
             SH_SCRIPT, "shell", N_OTHER, 5, 60, check_sh)
    finally:
        b.cleanup()
        b.c.close()
        ctx["load_end"] = loadavg()
        if server:
            server.stop()

    srvlog = server_log_ms(server.log_path, b.rid_prefix) if server else {}
    if server and not args.keep_data:
        shutil.rmtree(server.data_dir, ignore_errors=True)
    elif server:
        print(f"data dir and log kept: {server.data_dir}", file=sys.stderr)

    write_report(args.out, ctx, b.results, srvlog, b.notes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ctx": ctx, "results": b.results, "server_log": srvlog, "notes": b.notes},
                      f, indent=1, default=str)
    la = ctx["load_start"]
    print()
    print(f"sbxd benchmark  {ctx['date']} UTC  {ctx['version']}  load at start {la[0]:.2f}")
    if la[0] > 1.0:
        print(f"WARNING: load average {la[0]:.2f} > 1.0 at start: numbers are pessimistic")
    print(text_table(b.results))
    for key, stat, limit, label in TARGETS:
        v = (b.results.get(key) or {}).get(stat)
        print(f"target {label}: {fmt(v)} ms -> {'-' if v is None else ('met' if v <= limit else 'NOT met')}")
    for n_ in b.notes:
        print("note:", n_)
    print(f"report written to {args.out}")


if __name__ == "__main__":
    main()
