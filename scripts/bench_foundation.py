#!/usr/bin/env python3
"""Measurements for scripts/bench-foundation.sh (see there). Prints figures; asserts nothing.

Reads only /proc. Every process it starts is stopped by pid before it exits.
"""
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

from bench_common import CLK, cpu_ticks, mem_kib as rss_kib







def children(pid):
    out = []
    for p in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(p) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def exe_name(pid):
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def wait_child(sup, name, not_pid=None, timeout=10.0):
    """Poll (every 0.2 ms) until the supervisor has a child that has exec'd `name`
    (not the short-lived `--validate` run it makes before starting anything)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for c in children(sup):
            if c != not_pid and exe_name(c) == name and b"--validate" not in cmdline(c):
                return c
        time.sleep(0.0002)
    return None


def steady(bindir, seconds):
    d = tempfile.mkdtemp(prefix="qmoi-bench-")
    os.makedirs(f"{d}/config")
    with open(f"{d}/config/master_monitor.toml", "w") as f:
        f.write('[dashboard]\nport = 0\n[monitoring_components.system_health]\ninterval = 1\n')
    sup = subprocess.Popen([f"{bindir}/qmoi-supervisor", "start"], cwd=d,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # past start-up (and the short-lived `--validate` run)
        child = wait_child(sup.pid, "qmoi-system-health")
        t0 = time.monotonic()
        s0, c0 = cpu_ticks(sup.pid), cpu_ticks(child)
        rs, rc = [], []
        while time.monotonic() - t0 < seconds:
            rs.append(rss_kib(sup.pid))
            rc.append(rss_kib(child))
            time.sleep(1)
        if None in rs or None in rc:
            print("  the monitor was restarted during the measurement; figures would be wrong")
            return
        el = time.monotonic() - t0
        s1, c1 = cpu_ticks(sup.pid), cpu_ticks(child)
        runs = seconds  # one run per second
        print(f"steady state over {el:.0f} s, system_health interval 1 s:")
        print(f"  qmoi-supervisor     RSS avg {sum(rs)/len(rs)/1024:.1f} MiB, max {max(rs)/1024:.1f} MiB; "
              f"CPU {(s1-s0)/CLK/el*100:.2f}% of one core")
        print(f"  qmoi-system-health  RSS avg {sum(rc)/len(rc)/1024:.1f} MiB, max {max(rc)/1024:.1f} MiB; "
              f"CPU {(c1-c0)/CLK/el*100:.2f}% of one core = {(c1-c0)/CLK/runs*1000:.1f} ms CPU per run")
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=30)


def restarts(bindir, n):
    d = tempfile.mkdtemp(prefix="qmoi-bench-")
    os.makedirs(f"{d}/config")
    with open(f"{d}/config/master_monitor.toml", "w") as f:
        # healthy_after short, so every kill below is a *first* restart (no backoff).
        f.write('[dashboard]\nport = 0\n[restart]\nhealthy_after = "1s"\n[monitoring_components.system_health]\ninterval = 1\n')
    sup = subprocess.Popen([f"{bindir}/qmoi-supervisor", "start"], cwd=d,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    try:
        time.sleep(2)
        child = wait_child(sup.pid, "qmoi-system-health")
        for _ in range(n):
            time.sleep(2.5)
            t = time.monotonic()
            os.kill(child, signal.SIGKILL)
            new = wait_child(sup.pid, "qmoi-system-health", not_pid=child)
            times.append((time.monotonic() - t) * 1000)
            child = new
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=30)
    times.sort()
    print(f"qmoi-supervisor: kill -9 of the child -> replacement exec'd, {n} times: "
          f"median {times[len(times)//2]:.1f} ms, min {times[0]:.1f} ms, max {times[-1]:.1f} ms")


def monit_restarts(bindir, n):
    """The same measurement under Monit 5 (polling every 1 s, its minimum)."""
    if not os.path.exists("/usr/bin/monit"):
        print("monit: not installed (apt-get install monit) - skipped")
        return
    d = tempfile.mkdtemp(prefix="qmoi-bench-monit-")
    marker = f"{d}/sh-config.toml"
    with open(marker, "w") as f:
        f.write("interval = 60\n")
    rc = f"{d}/monitrc"
    with open(rc, "w") as f:
        f.write(f"""set daemon 1
set pidfile {d}/monit.pid
set idfile {d}/monit.id
set statefile {d}/monit.state
set logfile {d}/monit.log
check process qmoi_sh matching "{marker}"
  start program = "/bin/sh -c 'cd {d} && exec {bindir}/qmoi-system-health --config {marker} --report-dir {d} --log-dir {d} >/dev/null 2>&1 &'"
  stop program = "/usr/bin/pkill -f {marker}"
""")
    os.chmod(rc, 0o600)
    mon = subprocess.Popen(["/usr/bin/monit", "-I", "-c", rc], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def find():
        for p in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                with open(p, "rb") as f:
                    if marker.encode() in f.read() and exe_name(int(p.split("/")[2])) == "qmoi-system-health":
                        return int(p.split("/")[2])
            except (OSError, ValueError):
                pass
        return None

    def wait_new(old, timeout=15):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            p = find()
            if p and p != old:
                return p
            time.sleep(0.002)
        return None

    times = []
    try:
        child = wait_new(None)
        for _ in range(n):
            time.sleep(2.5)
            t = time.monotonic()
            os.kill(child, signal.SIGKILL)
            new = wait_new(child)
            if new is None:
                break
            times.append((time.monotonic() - t) * 1000)
            child = new
    finally:
        mon.send_signal(signal.SIGTERM)
        mon.wait(timeout=30)
        p = find()
        if p:
            os.kill(p, signal.SIGTERM)
    if times:
        times.sort()
        print(f"monit 5 (daemon 1 s): same kill -9, {len(times)} times: median {times[len(times)//2]:.0f} ms, "
              f"min {times[0]:.0f} ms, max {times[-1]:.0f} ms")


if __name__ == "__main__":
    bindir, what = sys.argv[1], sys.argv[2]
    {"steady": lambda: steady(bindir, int(sys.argv[3])),
     "restarts": lambda: restarts(bindir, int(sys.argv[3])),
     "monit": lambda: monit_restarts(bindir, int(sys.argv[3]))}[what]()
