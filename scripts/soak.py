#!/usr/bin/env python3
"""Chaos soak of the whole stack (issue 22): see scripts/soak.sh for what it does.

Usage: soak.py BINDIR MINUTES        (or: soak.py --receiver PORT FILE, internal)
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from bench_common import free_port, mem_kib

COMPONENTS = ["system_health", "security", "backup"]


def receiver(port, path):
    """The webhook receiver: every body, one JSON line each, fsynced; answers 200."""
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with open(path, "ab") as f:
                f.write(body.replace(b"\n", b" ") + b"\n")
                f.flush()
                os.fsync(f.fileno())
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass

    HTTPServer(("127.0.0.1", port), H).serve_forever()


def status_of(d, sup):
    out = subprocess.run([sup, "status", "--json"], cwd=d, capture_output=True, text=True, timeout=20)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return None


def wait(pred, timeout, what):
    t = time.time()
    while time.time() - t < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.25)
    raise SystemExit(f"soak: timed out after {timeout}s waiting for {what}")


def rss_fds(pid):
    """RSS in MiB and open descriptors (0, 0 once gone)."""
    try:
        return (mem_kib(pid) or 0) / 1024, len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0.0, 0


def main(bindir, minutes):
    random.seed(os.environ.get("QMOI_SOAK_SEED", "22"))
    d = tempfile.mkdtemp(prefix="qmoi-soak-")
    sup = os.path.join(bindir, "qmoi-supervisor")
    fake = os.path.join(bindir, "qmoi-fake-monitor")
    notify = os.path.join(bindir, "qmoi-notify")
    port, hook_log = free_port(), os.path.join(d, "received.jsonl")
    os.makedirs(os.path.join(d, "config"))
    os.makedirs(os.path.join(d, "alerts"))
    os.makedirs(os.path.join(d, "logs"))
    # As root, the report folder is a small tmpfs the chaos loop can fill.
    tmpfs = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", os.path.join(d, "logs")], capture_output=True).returncode == 0
    comps = "".join(
        f'[monitoring_components.{c}]\ninterval = 1\nstale_after = "4s"\ncommand = "{fake}"\n'
        f'args = ["--component", "{c}", "--warn-while", "{d}/alerts/{c}"]\n' for c in COMPONENTS)
    with open(os.path.join(d, "config/master_monitor.toml"), "w") as f:
        f.write('[dashboard]\nport = 0\n[report]\ninterval = 1\n[restart]\nbackoff_initial = "200ms"\n'
                'max_restarts = 1000\nstop_timeout = "1s"\n' + comps +
                f'[monitoring_components.notification]\ninterval = 1\ncommand = "{notify}"\n')
    with open(os.path.join(d, "config/notification.toml"), "w") as f:
        f.write('interval = 1\n[watch]\nrescan = "1s"\n[grouping]\ngroup_wait = "1s"\ngroup_interval = "1s"\n'
                'group_by = "fingerprint"\n[retry]\nbackoff_initial = "500ms"\nbackoff_max = "3s"\n'
                '[priorities.warning]\nchannels = ["hook"]\nretry_attempts = 1000\n'
                f'[channels.hook]\ntype = "webhook"\nurls = [{{ url = "http://127.0.0.1:{port}/", format = "generic" }}]\n')
    devnull = subprocess.DEVNULL

    def start_receiver():
        return subprocess.Popen([sys.executable, __file__, "--receiver", str(port), hook_log], stdout=devnull, stderr=devnull)

    def start_supervisor():
        err = open(os.path.join(d, "supervisor.err"), "ab")
        return subprocess.Popen([sup, "start"], cwd=d, stdout=devnull, stderr=err, stdin=devnull)

    def running(ids):
        s = status_of(d, sup)
        if not s:
            return None
        by = {c["id"]: c for c in s["components"]}
        return s if all(by.get(i, {}).get("state") == "running" for i in ids) else None

    procs = {"rec": start_receiver(), "sup": start_supervisor()}
    try:
        run(d, sup, procs, start_receiver, start_supervisor, running, minutes, tmpfs, hook_log)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p is procs["sup"] else signal.SIGKILL)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
        if tmpfs:
            subprocess.run(["umount", "-l", os.path.join(d, "logs")], capture_output=True)


def run(d, sup, procs, start_receiver, start_supervisor, running, minutes, tmpfs, hook_log):
    """The soak itself; `procs` holds the receiver and supervisor as they are restarted."""
    rec, supervisor = procs["rec"], procs["sup"]
    everything = COMPONENTS + ["notification"]
    wait(lambda: running(everything), 60, "the stack to run")
    first = status_of(d, sup)
    base = {c["id"]: rss_fds(c["pid"]) for c in first["components"] if c.get("pid")}
    base["supervisor"] = rss_fds(supervisor.pid)
    expected = {c: [] for c in COMPONENTS}  # ("firing"/"resolved") in order
    chaos = {"kill a monitor": 0, "kill the notifier": 0, "kill the supervisor": 0, "restart the receiver": 0,
             "fill the report folder": 0, "nothing": 0}
    deadline = time.time() + minutes * 60
    step = 0
    print(f"soak: {minutes} min in {d} (report folder on a tmpfs: {tmpfs})", flush=True)
    while time.time() < deadline:
        step += 1
        c = random.choice(COMPONENTS)
        flag = os.path.join(d, "alerts", c)
        if os.path.exists(flag):
            os.remove(flag)
            expected[c].append("resolved")
        else:
            open(flag, "w").close()
            expected[c].append("firing")
        time.sleep(6)  # seen, alerted and notified with everything running
        action = random.choice(list(chaos))
        chaos[action] += 1
        s = status_of(d, sup) or {"components": []}
        pids = {x["id"]: x.get("pid") for x in s["components"]}
        if action == "kill a monitor" and pids.get(c):
            os.kill(pids[c], signal.SIGKILL)
        elif action == "kill the notifier" and pids.get("notification"):
            os.kill(pids["notification"], signal.SIGKILL)
        elif action == "kill the supervisor":
            supervisor.send_signal(signal.SIGKILL)
            supervisor.wait()
            time.sleep(0.5)
            supervisor = procs["sup"] = start_supervisor()
        elif action == "restart the receiver":
            rec.send_signal(signal.SIGKILL)
            rec.wait()
            time.sleep(2)
            rec = procs["rec"] = start_receiver()
        elif action == "fill the report folder" and tmpfs:
            filler = os.path.join(d, "logs", "filler")
            # Unbuffered: a buffered file would fail again when closed.
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                for size in (65536, 4096, 1):
                    while os.write(fd, b"\0" * size) == size:
                        pass
            except OSError:
                pass
            finally:
                os.close(fd)
            time.sleep(3)
            os.remove(filler)
        wait(lambda: running(everything), 60, f"the stack to run again after '{action}'")
        time.sleep(1)
    # Everything resolves; then time for the last deliveries.
    for c in COMPONENTS:
        flag = os.path.join(d, "alerts", c)
        if os.path.exists(flag):
            os.remove(flag)
            expected[c].append("resolved")
    time.sleep(15)
    end = running(everything) or status_of(d, sup)
    now = {c["id"]: rss_fds(c["pid"]) for c in end["components"] if c.get("pid")}
    now["supervisor"] = rss_fds(supervisor.pid)
    # Stop: the supervisor stops its children; nothing of this folder may remain.
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(timeout=60)
    rec.send_signal(signal.SIGKILL)
    rec.wait()
    time.sleep(1)
    orphans = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/cwd").startswith(d):
                    orphans.append(p)
            except OSError:
                pass
    torn = []
    for name in os.listdir(os.path.join(d, "logs")):
        if name.endswith("_latest.json"):
            try:
                with open(os.path.join(d, "logs", name)) as f:
                    json.load(f)
            except ValueError:
                torn.append(name)

    # What was delivered: each transition is (kind, since) of the component's alert.
    delivered = {}
    with open(hook_log, "rb") as f:
        for line in f:
            try:
                body = json.loads(line)
            except ValueError:
                continue
            for a in body.get("alerts", []):
                key = (a["component"], a["status"], a["since"])
                delivered[key] = delivered.get(key, 0) + 1
    failures = []
    print(f"\nsoak: {step} alert transitions in {minutes} min; chaos: " +
          ", ".join(f"{k} {v}" for k, v in chaos.items()))
    print(f"{'component':16} {'expected':>9} {'delivered':>9} {'twice':>6} {'more':>5}")
    for c in COMPONENTS:
        exp = len(expected[c])
        mine = {k: v for k, v in delivered.items() if k[0] == c}
        distinct = len(mine)
        twice = sum(1 for v in mine.values() if v == 2)
        more = sum(1 for v in mine.values() if v > 2)
        print(f"{c:16} {exp:9d} {distinct:9d} {twice:6d} {more:5d}")
        kinds = [k[1] for k in sorted(mine, key=lambda k: k[2])]
        if distinct != exp:
            failures.append(f"{c}: {exp} transitions, {distinct} delivered ({expected[c]} vs {kinds})")
        if more:
            failures.append(f"{c}: {more} transitions delivered more than twice")
    print(f"\n{'process':16} {'RSS MiB start':>13} {'end':>7} {'fds start':>9} {'end':>5}")
    for k in sorted(now):
        b = base.get(k, (0, 0))
        print(f"{k:16} {b[0]:13.1f} {now[k][0]:7.1f} {b[1]:9d} {now[k][1]:5d}")
        if now[k][0] > 150:
            failures.append(f"{k}: RSS {now[k][0]:.1f} MiB at the end")
        if b[1] and now[k][1] > b[1] + 16:
            failures.append(f"{k}: descriptors grew from {b[1]} to {now[k][1]}")
    if orphans:
        failures.append(f"processes left behind: {orphans}")
    if torn:
        failures.append(f"torn reports: {torn}")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures) + f"\n(the run's folder is kept: {d})")
        sys.exit(1)
    print("\nsoak: every transition delivered at least once and at most twice; no orphan, no torn report")
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1] == "--receiver":
        receiver(int(sys.argv[2]), sys.argv[3])
    else:
        main(sys.argv[1], float(sys.argv[2]))
