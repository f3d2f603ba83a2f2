#!/usr/bin/env python3
"""Measurements for scripts/bench-lead.sh (heartbeats and Nagios plugins). Prints
figures; asserts nothing.

1. Heartbeat pings: the release qmoi-heartbeat with 10,000 checks (rate limit off),
   loaded by wrk for 10 s with GETs spread over every check's /ping/<uuid> (a Lua script);
   its RSS idle and at the end, and that every ping landed (the pings counted in the
   report against wrk's requests).
2. Nagios plugins: the CPU (user + system, the process and its children) of one
   `qmoi-system-health --check` with 200 [[plugins]] of check_dummy, minus the same run
   without them, per plugin; beside the floor: a shell loop running check_dummy 200 times.
3. Live reload: the release supervisor with the shipped config/ and all 8 monitors (the
   real binaries; heartbeats enabled), `qmoi-supervisor reload` timed from the shell and
   as the supervisor counts it (`took_ms`): with nothing changed, with one monitor's file
   changed (and the time until it runs again), with all 8 changed, and refused (invalid);
   the pids of the monitors that did not change, before and after.
Stops what it started by pid.
"""
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import json
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import free_port, mem_kib  # noqa: E402

CHECKS = 10_000
PLUGINS = 200
DUMMY = "/usr/lib/nagios/plugins/check_dummy"


def children_cpu(cmd, cwd=None):
    """CPU seconds (user + system) of `cmd` and its children, and its wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def heartbeats(bindir):
    d = tempfile.mkdtemp(prefix="qmoi-bench-hb-")
    port = free_port()
    uuids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(CHECKS)]
    with open(f"{d}/hb.toml", "w") as f:
        f.write(f'interval = "5s"\nlisten = "127.0.0.1:{port}"\n[rate_limit]\nenabled = false\n'
                '[history]\nenabled = false\n')
        for i, u in enumerate(uuids):
            f.write(f'[[checks]]\nname = "job-{i}"\nuuid = "{u}"\nperiod = "1h"\n')
    with open(f"{d}/ping.lua", "w") as f:
        f.write("local n = 0\nrequest = function()\n  n = n + 1\n"
                f'  return wrk.format("GET", string.format("/ping/00000000-0000-4000-8000-%012d", n % {CHECKS}))\n'
                "end\n")
    hb = subprocess.Popen([f"{bindir}/qmoi-heartbeat", "--config", "hb.toml", "--report-dir", "logs", "--log-dir", "logs"],
                          cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/ping/x"]).returncode == 0:
                break
            time.sleep(0.1)
        time.sleep(6)
        idle = (mem_kib(hb.pid) or 0) / 1024
        out = subprocess.run(["wrk", "-t2", "-c32", "-d10s", "--latency", "-s", f"{d}/ping.lua",
                              f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
        loaded = (mem_kib(hb.pid) or 0) / 1024
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
        m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
        p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        time.sleep(6)  # a report after the load
        with open(f"{d}/logs/heartbeats_latest.json") as f:
            rep = json.load(f)
        counted = sum(v for k, v in rep["metrics"].items() if k.startswith("qmoi_heartbeat_pings_total"))
        steady = (mem_kib(hb.pid) or 0) / 1024  # every check has pinged; a report since
        peak = (mem_kib(hb.pid, "VmHWM") or 0) / 1024
        print(f"heartbeat pings (wrk, 2 threads, 32 connections, 10 s, {CHECKS:,} checks): {rps:,.0f} pings/s, "
              f"p99 {p99:.2f} ms, non-2xx {int(bad.group(1)) if bad else 0}; {total:,} sent, {counted:,.0f} counted "
              f"in the report")
        print(f"qmoi-heartbeat RSS with {CHECKS:,} checks: {idle:.1f} MiB idle, {loaded:.1f} MiB right after the load, "
              f"{steady:.1f} MiB steady after it (every check pinged), peak {peak:.1f} MiB")
    finally:
        hb.send_signal(signal.SIGTERM)
        hb.wait(timeout=30)


def plugins(bindir):
    if not os.access(DUMMY, os.X_OK):
        print(f"skipped the plugin run: {DUMMY} missing (apt install monitoring-plugins-basic)")
        return
    d = tempfile.mkdtemp(prefix="qmoi-bench-plugins-")
    base = 'connectivity = []\n[disk]\nmounts = ["/"]\n[temperature]\nenabled = false\n'
    with open(f"{d}/none.toml", "w") as f:
        f.write(base)
    with open(f"{d}/plugins.toml", "w") as f:
        f.write(base)
        for i in range(PLUGINS):
            f.write(f'[[plugins]]\nname = "p{i}"\ncommand = "{DUMMY}"\nargs = ["0", "fine"]\n')
    sh = bindir + "/qmoi-system-health"
    runs = 5
    without = min(children_cpu([sh, "--check", "--config", "none.toml"], d) for _ in range(runs))
    with_p = min(children_cpu([sh, "--check", "--config", "plugins.toml"], d) for _ in range(runs))
    loop = min(children_cpu(["sh", "-c", f'i=0; while [ $i -lt {PLUGINS} ]; do {DUMMY} 0 fine >/dev/null; i=$((i+1)); done'])
               for _ in range(runs))
    per = (with_p[0] - without[0]) / PLUGINS * 1000
    print(f"Nagios plugin runs (check_dummy, best of {runs}): qmoi-system-health --check with {PLUGINS} plugins "
          f"{with_p[0]:.3f} s CPU / {with_p[1]:.3f} s wall, without them {without[0]:.3f} s CPU / {without[1]:.3f} s wall: "
          f"{per:.2f} ms CPU per plugin run")
    print(f"  floor, a shell loop running check_dummy {PLUGINS} times: {loop[0]:.3f} s CPU / {loop[1]:.3f} s wall: "
          f"{loop[0] / PLUGINS * 1000:.2f} ms CPU per run")


def status(bindir, d):
    out = subprocess.run([f"{bindir}/qmoi-supervisor", "status", "--json"], cwd=d, capture_output=True, text=True)
    return json.loads(out.stdout)


def pids(st):
    return {c["id"]: c.get("pid") for c in st["components"]}


def all_running(st):
    return all(c["state"] == "running" for c in st["components"])


def reload_once(bindir, d):
    """`qmoi-supervisor reload`: (wall ms of the command, took_ms the supervisor counted, exit status)."""
    t0 = time.perf_counter()
    r = subprocess.run([f"{bindir}/qmoi-supervisor", "reload"], cwd=d, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    took = status(bindir, d)["supervisor"]["reload"]["took_ms"]
    return wall, took, r.returncode


def wait(pred, timeout=60):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        v = pred()
        if v:
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise SystemExit("timed out")


def reloads(bindir):
    d = tempfile.mkdtemp(prefix="qmoi-bench-reload-")
    shutil.copytree("config", f"{d}/config")
    port, hport = free_port(), free_port()
    with open(f"{d}/config/master_monitor.toml") as f:
        m = f.read()
    m = m.replace("port = 8080 ", f"port = {port} ", 1)
    m = m.replace("[monitoring_components.heartbeats]\nenabled = false", "[monitoring_components.heartbeats]\nenabled = true")
    with open(f"{d}/config/master_monitor.toml", "w") as f:
        f.write(m)
    with open(f"{d}/config/heartbeats.toml") as f:
        h = f.read()
    with open(f"{d}/config/heartbeats.toml", "w") as f:
        f.write(re.sub(r'(?m)^listen = ".*"', f'listen = "127.0.0.1:{hport}"', h))
    sup = subprocess.Popen([f"{bindir}/qmoi-supervisor", "start"], cwd=d,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(lambda: os.path.exists(f"{d}/run/dashboard.addr"), 30)
        wait(lambda: all_running(status(bindir, d)), 120)
        st = status(bindir, d)
        n = len(st["components"])
        before = pids(st)
        runs = [reload_once(bindir, d) for _ in range(5)]
        after = pids(status(bindir, d))
        kept = sum(1 for k, v in before.items() if after.get(k) == v)
        runs.sort()
        print(f"reload, nothing changed ({n} monitors, median of 5): {runs[2][0]:.0f} ms for `qmoi-supervisor reload`, "
              f"{runs[2][1]} ms in the supervisor; {kept} of {n} kept their pid")

        with open(f"{d}/config/system_health.toml", "a") as f:
            f.write("\n# touched by the benchmark\n")
        t0 = time.perf_counter()
        wall, took, code = reload_once(bindir, d)
        back = wait(lambda: (lambda s: all_running(s) and pids(s)["system_health"] != before["system_health"])(status(bindir, d)))
        back_ms = (time.perf_counter() - t0) * 1000 if back is not None else float("nan")
        after = pids(status(bindir, d))
        kept = sum(1 for k, v in before.items() if after.get(k) == v)
        print(f"reload, system_health.toml changed: {wall:.0f} ms for the command, {took} ms in the supervisor (its "
              f"--validate included); system_health running again with a new pid {back_ms:.0f} ms after the command "
              f"started; {kept} of {n - 1} others kept their pid")

        before = pids(status(bindir, d))
        for c in st["components"]:
            p = f"{d}/config/{c['id']}.toml"
            if os.path.exists(p):
                with open(p, "a") as f:
                    f.write("\n# touched by the benchmark, all\n")
        t0 = time.perf_counter()
        wall, took, code = reload_once(bindir, d)
        wait(lambda: (lambda s: all_running(s) and all(pids(s)[k] != v for k, v in before.items()))(status(bindir, d)), 120)
        all_ms = (time.perf_counter() - t0) * 1000
        print(f"reload, all {n} config files changed: {wall:.0f} ms for the command, {took} ms in the supervisor "
              f"({n} --validate at once); all running again {all_ms:.0f} ms after the command started")

        before = pids(status(bindir, d))
        with open(f"{d}/config/system_health.toml", "a") as f:
            f.write("\nbogus_key = 1\n")
        wall, took, code = reload_once(bindir, d)
        time.sleep(1)
        after = pids(status(bindir, d))
        kept = sum(1 for k, v in before.items() if after.get(k) == v)
        print(f"reload refused (an unknown key in system_health.toml): exit {code}, {wall:.0f} ms for the command, "
              f"{took} ms in the supervisor; {kept} of {n} kept their pid")
    finally:
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sup.kill()


if __name__ == "__main__":
    what = sys.argv[2:] or ["heartbeats", "plugins", "reload"]
    if "heartbeats" in what:
        heartbeats(sys.argv[1])
    if "plugins" in what:
        plugins(sys.argv[1])
    if "reload" in what:
        reloads(sys.argv[1])
