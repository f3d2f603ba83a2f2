#!/usr/bin/env python3
"""Measurements for scripts/bench-dashboard.sh. Prints figures; asserts nothing.

Starts the release supervisor (dashboard on an ephemeral loopback port, rate limit off so
wrk measures the server, not the limiter) and Debian's prometheus-node-exporter on
another loopback port; runs wrk (bounded: 2 threads, 16 connections, 10 s per URL) and a
history query over 7 days of seeded 1-minute data. Stops everything it started by pid.
"""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench_common import free_port, mem_kib, wait_http


def rss_mib(pid, field="VmRSS"):
    kib = mem_kib(pid, field)
    return kib / 1024 if kib is not None else float("nan")








def wrk(url, pid=None):
    """Run wrk; sample the server's RSS while it runs."""
    p = subprocess.Popen(["wrk", "-t2", "-c16", "-d10s", "--latency", url], stdout=subprocess.PIPE, text=True)
    peak = 0.0
    while p.poll() is None:
        if pid:
            peak = max(peak, rss_mib(pid))
        time.sleep(0.2)
    out = p.stdout.read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = "?"
    if p99:
        v = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
        lat = f"{v:.2f} ms"
    return (float(rps.group(1)) if rps else 0.0), lat, peak, (errors.group(1) if errors else "0")


def main(bindir):
    d = tempfile.mkdtemp(prefix="qmoi-bench-dash-")
    os.makedirs(f"{d}/config")
    port = free_port()
    with open(f"{d}/config/master_monitor.toml", "w") as f:
        f.write(f'[dashboard]\nport = {port}\n[dashboard.rate_limit]\nenabled = false\n'
                '[monitoring_components.system_health]\ninterval = 1\n')
    base = f"http://127.0.0.1:{port}"

    def start():
        p = subprocess.Popen([f"{bindir}/qmoi-supervisor", "start"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(base + "/api/monitor/status")
        return p

    def stop(p):
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)

    # Seed 7 days of 1-minute aggregates for one metric (the schema is created on start).
    sup = start()
    stop(sup)
    db = sqlite3.connect(f"{d}/data/history.db")
    db.execute("INSERT OR IGNORE INTO series (component, metric) VALUES ('system_health', 'qmoi_bench_seeded_ratio')")
    sid = db.execute("SELECT id FROM series WHERE metric = 'qmoi_bench_seeded_ratio'").fetchone()[0]
    now = int(time.time())
    start_ts = now - 7 * 86400
    start_ts -= start_ts % 60
    rows = [(sid, t, 0.5, 1, 0.5, 0.5) for t in range(start_ts, now, 60)]
    db.executemany("INSERT OR REPLACE INTO samples_1m (series, ts, sum, count, min, max) VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()

    sup = start()
    node = None
    try:
        time.sleep(3)
        print(f"qmoi-supervisor RSS at rest (dashboard serving, system_health every 1 s): {rss_mib(sup.pid):.1f} MiB")
        q = f"{base}/api/history?component=system_health&metric=qmoi_bench_seeded_ratio&from={now - 7 * 86400}&to={now}&step=60"
        times = []
        points = 0
        for _ in range(20):
            t = time.monotonic()
            with urllib.request.urlopen(q) as r:
                body = r.read()
            times.append((time.monotonic() - t) * 1000)
            points = body.count(b"],[") + 1
        times.sort()
        print(f"history query, 7 days of 1-minute data ({points} points), 20 times over HTTP: "
              f"median {times[10]:.1f} ms, max {times[-1]:.1f} ms")
        for path in ("/api/monitor/status", "/metrics"):
            rps, p99, peak, errs = wrk(base + path, sup.pid)
            print(f"qmoi {path:<22} {rps:>10,.0f} req/s  p99 {p99:>9}  supervisor RSS peak {peak:.1f} MiB  non-2xx {errs}")
        print(f"qmoi-supervisor peak RSS over the whole run (VmHWM): {rss_mib(sup.pid, 'VmHWM'):.1f} MiB")
        exe = "/usr/bin/prometheus-node-exporter"
        if os.path.exists(exe):
            nport = free_port()
            node = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{nport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_http(f"http://127.0.0.1:{nport}/metrics")
            rps, p99, peak, errs = wrk(f"http://127.0.0.1:{nport}/metrics", node.pid)
            print(f"node_exporter /metrics      {rps:>10,.0f} req/s  p99 {p99:>9}  node_exporter RSS peak {peak:.1f} MiB  non-2xx {errs}")
        else:
            print("prometheus-node-exporter not installed - skipped")
    finally:
        if node:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=30)
        stop(sup)


if __name__ == "__main__":
    main(sys.argv[1])
