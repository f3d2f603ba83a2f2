#!/usr/bin/env python3
"""Measurements for scripts/bench-api.sh. Prints figures; asserts nothing.

Starts the release supervisor (dashboard and gRPC on ephemeral loopback ports, rate limit
off, no auth: the servers are measured, not the limiter) with two fake monitors, then
loads REST /api/monitor/status with wrk, GraphQL's overview query (POST /graphql, the
fields the dashboard shows) with wrk, and gRPC qmoi.v1.Monitor/GetOverview with h2load (a
prepared frame: the empty request), each for 10 s, sampling the supervisor's RSS.
Stops what it started by pid.
"""
import re
import signal
import subprocess
import sys
import time

from bench_common import api_stack, mem_kib


def sample_rss(p, pid):
    peak = 0
    while p.poll() is None:
        peak = max(peak, mem_kib(pid) or 0)
        time.sleep(0.2)
    return peak / 1024


GRAPHQL_OVERVIEW = ('{"query": "{ overview { generatedAt verdict reasons components '
                    '{ id state pid restarts reportAgeS reportStatus summary criticalAlerts warningAlerts } } }"}')


def wrk(url, pid, script=None):
    extra = ["-s", script] if script else []
    p = subprocess.Popen(["wrk", "-t2", "-c16", "-d10s", "--latency", *extra, url], stdout=subprocess.PIPE, text=True)
    peak = sample_rss(p, pid)
    out = p.stdout.read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, peak, int(bad.group(1)) if bad else 0


def h2load(url, frame, pid, in_flight):
    log = f"{frame}.{in_flight}.log"
    p = subprocess.Popen(["h2load", "-t2", "-c16", f"-m{in_flight}", "-D10", "-d", frame, "--log-file", log,
                          "-H", "content-type: application/grpc", "-H", "te: trailers", url],
                         stdout=subprocess.PIPE, text=True)
    peak = sample_rss(p, pid)
    out = p.stdout.read()
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    ok = re.search(r"status codes: (\d+) 2xx", out)
    failed = re.search(r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed", out)
    # Percentiles from the per-request log (start µs, status, duration µs, …).
    times = sorted(int(line.split()[2]) / 1000 for line in open(log) if len(line.split()) >= 3)
    pct = lambda q: times[min(len(times) - 1, int(q * (len(times) - 1)))] if times else float("nan")
    return rps, pct(0.5), pct(0.99), peak, int(ok.group(1)) if ok else 0, int(failed.group(1)) if failed else -1


def main(bindir):
    sup, d, port, gport = api_stack(bindir, ("system_health", "security"))
    frame = f"{d}/get_overview.bin"
    with open(frame, "wb") as f:
        f.write(b"\x00\x00\x00\x00\x00")  # not compressed, length 0: an empty GetOverviewRequest
    try:
        time.sleep(2)
        idle = (mem_kib(sup.pid) or 0) / 1024
        print(f"supervisor RSS idle: {idle:.1f} MiB")
        rps, p99, peak, bad = wrk(f"http://127.0.0.1:{port}/api/monitor/status", sup.pid)
        print(f"REST GET /api/monitor/status (wrk, HTTP/1.1): {rps:,.0f} req/s, p99 {p99:.2f} ms, "
              f"non-2xx {bad}, supervisor RSS peak {peak:.1f} MiB")
        lua = f"{d}/graphql.lua"
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = [[{GRAPHQL_OVERVIEW}]]\n")
        got = subprocess.run(["curl", "-s", "-H", "Content-Type: application/json", "-d", GRAPHQL_OVERVIEW,
                              f"http://127.0.0.1:{port}/graphql"], capture_output=True, text=True).stdout
        if '"verdict"' not in got or '"errors"' in got:
            raise SystemExit(f"the GraphQL query does not answer as it should: {got[:300]}")
        rps, p99, peak, bad = wrk(f"http://127.0.0.1:{port}/graphql", sup.pid, lua)
        print(f"GraphQL POST /graphql overview query, {len(got):,} bytes answered (wrk, HTTP/1.1): "
              f"{rps:,.0f} req/s, p99 {p99:.2f} ms, non-2xx {bad}, supervisor RSS peak {peak:.1f} MiB")
        for in_flight in (1, 8):
            rps, p50, p99, peak, ok, failed = h2load(f"http://127.0.0.1:{gport}/qmoi.v1.Monitor/GetOverview", frame,
                                                     sup.pid, in_flight)
            print(f"gRPC GetOverview (h2load, HTTP/2, 16 connections x {in_flight} in flight): {rps:,.0f} req/s, "
                  f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {ok:,} answered 2xx, {failed} failed, "
                  f"supervisor RSS peak {peak:.1f} MiB")
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
