#!/usr/bin/python3
"""Warm-pool benchmark: session create from a warm pool next to a cold create, in one run.

Starts one sbxd (the installed one by default) on the given config with its warm_pools
group set to `{ size = N; }`, creates a second template identical to
python-basic but with `warm_pool_size = 0` (so every create on it builds a sandbox), then
alternates: one warm create (python-basic), one cold create (python-cold), each followed by a
terminate + delete and a pause that lets the pool refill. Both are client round trips of
POST /api/v1/sessions -> 201 running, over one keep-alive connection. Writes the
"Warm pools" section of bench/RESULTS.md (replacing an older one).

  bench/warm_pool.py [--sbxd PATH] [--config PATH] [-n 200] [--pool 4] [--out FILE]
"""

import argparse
import datetime
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import API, Client, Server, fmt, loadavg, machine_info, summarize  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sbxd", default="/usr/local/sbin/sbxd")
    ap.add_argument("--config", default="/usr/local/etc/sandbox/sbxd.conf")
    ap.add_argument("-n", type=int, default=200, help="creates of each kind (max 2000)")
    ap.add_argument("--pool", type=int, default=4, help="warm pool size (1..64)")
    ap.add_argument("--pause", type=float, default=0.05, help="seconds between creates")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    a = ap.parse_args()
    n = max(1, min(a.n, 2000))
    pool = max(1, min(a.pool, 64))

    srv = Server(a.sbxd, a.config, warm_pool=pool)
    warm, cold, hits = [], [], 0
    try:
        srv.start()
        c = Client("127.0.0.1", srv.port)
        st, tmpl, _ = c.request("GET", API + "/templates/python-basic")
        if st != 200:
            raise RuntimeError(f"GET template python-basic: HTTP {st}")
        body = {k: tmpl[k] for k in ("name", "image_url", "runtime_type", "default_cpu_cores",
                                     "default_memory_mb", "default_disk_mb",
                                     "default_timeout_sec") if tmpl.get(k) is not None}
        body.update(id="python-cold", warm_pool_size=0)
        st, b, _ = c.request("POST", API + "/templates", body)
        if st != 201:
            raise RuntimeError(f"POST template python-cold: HTTP {st} {b}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the pool fills in the background
            st, nodes, _ = c.request("GET", API + "/nodes")
            ready = sum(t["ready"] for nd in nodes["items"] for t in nd["templates_warm"]
                        if t["template_id"] == "python-basic")
            if ready >= pool:
                break
            time.sleep(0.1)
        load0 = loadavg()
        for i in range(n):
            for kind, tid, out in (("warm", "python-basic", warm), ("cold", "python-cold", cold)):
                st, s, dt = c.request("POST", API + "/sessions", {"template_id": tid})
                if st != 201 or s.get("status") != "running":
                    raise RuntimeError(f"{kind} create: HTTP {st} {str(s)[:200]}")
                if kind == "warm":
                    hits += bool(s.get("warm"))
                out.append(dt * 1000)
                c.request("POST", f"{API}/sessions/{s['id']}/terminate")
                c.request("DELETE", f"{API}/sessions/{s['id']}")
                time.sleep(a.pause)
        load1 = loadavg()
    finally:
        srv.stop()

    w, k = summarize(warm), summarize(cold)
    mi = machine_info()
    lines = [
        "## Warm pools: session create from a pool vs cold",
        "",
        f"Command: `bench/warm_pool.py -n {n} --pool {pool}` on "
        f"{datetime.date.today().isoformat()}; machine: {mi.get('nproc')} vCPU "
        f"{mi.get('cpu', '?')}, {mi.get('mem_gib', 0):.0f} GiB, kernel {mi.get('kernel')}; "
        f"load average {load0[0]:.2f} before, {load1[0]:.2f} after. Installed sbxd, embedded "
        "default (sqlite + local + linux runtime) plus "
        f"`warm_pools = {{ size = {pool}; }}`. Warm and cold creates alternate on one "
        "keep-alive connection; each session is terminated and deleted before the next "
        f"create, with a {a.pause * 1000:.0f} ms pause (the pool refills in the background).",
        "",
        "| create (client round trip, ms) | n | p50 | p90 | p99 | max |",
        "|---|---|---|---|---|---|",
        f"| warm (pool hit: {hits}/{n}) | {w['n']} | {fmt(w['p50'])} | {fmt(w['p90'])} | "
        f"{fmt(w['p99'])} | {fmt(w['max'])} |",
        f"| cold (sandbox built on the request) | {k['n']} | {fmt(k['p50'])} | "
        f"{fmt(k['p90'])} | {fmt(k['p99'])} | {fmt(k['max'])} |",
        "",
        f"Ratio cold/warm at p50: {k['p50'] / w['p50']:.1f}x. Target warm create p50 <= 2 ms: "
        f"{'met' if w['p50'] <= 2.0 else 'NOT met'} ({fmt(w['p50'])} ms).",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    try:
        with open(a.out) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    pat = re.compile(r"^## Warm pools: .*?(?=^## |\Z)", re.S | re.M)
    text = pat.sub(lambda m: section + "\n", text) if pat.search(text) else \
        text.rstrip("\n") + "\n\n" + section
    with open(a.out, "w") as f:
        f.write(text)
    return 0 if hits == n else 1


if __name__ == "__main__":
    sys.exit(main())
