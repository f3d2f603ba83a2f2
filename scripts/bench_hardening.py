#!/usr/bin/env python3
"""Measurements for scripts/bench-hardening.sh. Prints figures; asserts nothing.

Replays the attacks of the adversarial run (issue 17) against the release supervisor, each
bounded in count and time and on loopback only, and prints what the supervisor held:

1. 1,100 slow-header clients (one byte every 2 s, reconnecting when dropped) for 30 s,
   the supervisor at the systemd default soft limit of 1024 descriptors.
2. 200 concurrent basic-auth attempts with wrong passwords.
3. Hostile report files: a FIFO, a symlink to /dev/zero and a 200 MB report under report
   names; then a 48 MB report (under the 64 MiB cap) fetched by 8 clients at once.

For each: the supervisor's descriptors, resident memory (VmRSS now, VmHWM peak) and
threads, how long /healthz took to answer (retrying until it does), and how long
`qmoi-supervisor status` took over the control socket. Stops everything it started, by pid.
"""
import base64
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from bench_common import free_port, mem_kib, wait_http


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return -1


def mib(kib):
    return f"{kib / 1024:.1f} MiB" if kib is not None else "?"


def request(port, path, headers="", timeout=30.0):
    """One HTTP/1.1 request on a new connection; (status, seconds) or (None, seconds)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n".encode())
            head = s.recv(64).decode("latin-1")
            parts = head.split()
            return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None), time.monotonic() - t0
    except OSError:
        return None, time.monotonic() - t0


def healthz_until_ok(port, limit=60.0):
    """Seconds until /healthz answers 200, retrying refused or dropped connections."""
    t0 = time.monotonic()
    tries = 0
    while time.monotonic() - t0 < limit:
        tries += 1
        status, _ = request(port, "/healthz", timeout=5.0)
        if status == 200:
            return time.monotonic() - t0, tries
        time.sleep(0.05)
    return None, tries


class Stack:
    def __init__(self, bindir, master_extra, nofile=None):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="qmoi-bench-hardening-")
        os.makedirs(f"{self.dir}/config")
        os.makedirs(f"{self.dir}/logs")
        self.port = free_port()
        with open(f"{self.dir}/config/master_monitor.toml", "w") as f:
            f.write(f"[dashboard]\nport = {self.port}\n[dashboard.rate_limit]\nenabled = false\n[report]\ninterval = 1\n"
                    "[monitoring_components.system_health]\ninterval = 1\n" + master_extra)
        self.nofile = nofile
        self.proc = None

    def silent(self, cid):
        """A fake monitor that never writes a report, so a planted file stays in place."""
        return (f"[monitoring_components.{cid}]\ninterval = 1\ncommand = \"{self.bindir}/qmoi-fake-monitor\"\n"
                f"args = [\"--start-delay\", \"1h\", \"--component\", \"{cid}\"]\n")

    def start(self):
        def limits():
            if self.nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        self.proc = subprocess.Popen([f"{self.bindir}/qmoi-supervisor", "start"], cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limits)
        wait_http(f"http://127.0.0.1:{self.port}/healthz", timeout=30)
        return self.proc.pid

    def status_seconds(self):
        t0 = time.monotonic()
        out = subprocess.run([f"{self.bindir}/qmoi-supervisor", "status", "--json"], cwd=self.dir, capture_output=True,
                             timeout=60)
        return time.monotonic() - t0, out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Sampler(threading.Thread):
    """Peak descriptors and threads of a process while it runs."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.fds, self.threads, self.stop_flag = pid, 0, 0, False

    def run(self):
        while not self.stop_flag:
            self.fds = max(self.fds, fds(self.pid))
            self.threads = max(self.threads, threads(self.pid))
            time.sleep(0.1)


def slow_headers(bindir, clients=1100, seconds=30):
    print(f"\n## {clients:,} slow-header clients for {seconds} s, supervisor soft limit 1024 descriptors")
    st = Stack(bindir, "", nofile=1024)
    pid = st.start()
    before = fds(pid)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    stop = time.monotonic() + seconds
    socks = [None] * clients
    connects = [0]
    lock = threading.Lock()

    def attacker():
        # One byte of a request head to every client every 2 s; a dropped or refused
        # client reconnects at once, so every freed slot is contested.
        while time.monotonic() < stop:
            for i in range(clients):
                s = socks[i]
                try:
                    if s is None:
                        s = socket.create_connection(("127.0.0.1", st.port), timeout=1)
                        s.setblocking(False)
                        socks[i] = s
                        with lock:
                            connects[0] += 1
                    s.send(b"G")
                except OSError:
                    if s is not None:
                        s.close()
                    socks[i] = None
            time.sleep(2)

    sampler = Sampler(pid)
    sampler.start()
    a = threading.Thread(target=attacker, daemon=True)
    a.start()
    time.sleep(5)
    health = []
    control = []
    while time.monotonic() < stop - 2:
        health.append(healthz_until_ok(st.port, limit=max(1.0, stop - time.monotonic())))
        control.append(st.status_seconds()[0])
        time.sleep(1)
    a.join()
    sampler.stop_flag = True
    sampler.join()
    for s in socks:
        if s is not None:
            s.close()
    ok = [h for h, _ in health if h is not None]
    print(f"descriptors: {before} before, {sampler.fds} at most during the attack (limit 1024); "
          f"threads at most {sampler.threads}; {connects[0]:,} attacker connections made")
    if ok:
        print(f"/healthz: answered {len(ok)} of {len(health)} probes; time to an answer (retrying): "
              f"median {sorted(ok)[len(ok) // 2] * 1000:.0f} ms, max {max(ok) * 1000:.0f} ms")
    else:
        print(f"/healthz: no answer in {len(health)} probes")
    print(f"control socket `status`: {len(control)} calls, max {max(control) * 1000:.0f} ms")
    after, _ = healthz_until_ok(st.port, limit=30)
    print(f"after the attack: /healthz in {after * 1000:.0f} ms, descriptors {fds(pid)}" if after else "after: no answer")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{st.port}/metrics", timeout=10) as r:
            lines = [ln for ln in r.read().decode().splitlines() if ln.startswith("qmoi_dashboard_")]
        print("counters: " + ", ".join(ln.replace("qmoi_dashboard_", "") for ln in lines))
    except OSError as e:
        print(f"/metrics: {e}")
    st.stop()


def basic_auth_burst(bindir, clients=200):
    print(f"\n## {clients} concurrent basic-auth attempts with wrong passwords")
    h = subprocess.run([f"{bindir}/qmoi-supervisor", "hash-password"], input="correct horse battery\n", text=True,
                       capture_output=True, check=True).stdout.strip()
    users = f"[[dashboard.auth.users]]\nname = \"ops\"\npassword_hash = \"{h}\"\nrole = \"admin\"\n"
    st = Stack(bindir, users)
    pid = st.start()
    good = "Authorization: Basic " + base64.b64encode(b"ops:correct horse battery").decode() + "\r\n"
    request(st.port, "/api/monitor/status", good)
    base = mem_kib(pid)
    sampler = Sampler(pid)
    sampler.start()
    results = [None] * clients
    barrier = threading.Barrier(clients)

    def attempt(i):
        auth = "Authorization: Basic " + base64.b64encode(f"ops:guess-{i}".encode()).decode() + "\r\n"
        barrier.wait()
        results[i] = request(st.port, "/api/monitor/status", auth)

    ts = [threading.Thread(target=attempt, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    hz = healthz_until_ok(st.port)
    for t in ts:
        t.join()
    sampler.stop_flag = True
    sampler.join()
    peak = mem_kib(pid, "VmHWM")
    time.sleep(3)
    codes = {}
    for status, _ in results:
        codes[status] = codes.get(status, 0) + 1
    slowest = max(sec for _, sec in results)
    print(f"answers: {', '.join(f'{n} × {c}' for c, n in sorted(codes.items(), key=lambda x: str(x[0])))}; "
          f"slowest answer {slowest * 1000:.0f} ms")
    print(f"RSS: {mib(base)} before, peak {mib(peak)}, {mib(mem_kib(pid))} 3 s after; threads at most {sampler.threads}")
    print(f"/healthz during the burst: {hz[0] * 1000:.0f} ms" if hz[0] is not None else "/healthz: no answer")
    status, sec = request(st.port, "/api/monitor/status", good)
    print(f"the valid password right after: {status} in {sec * 1000:.0f} ms")
    st.stop()


def hostile_reports(bindir):
    print("\n## hostile report files: a FIFO, /dev/zero, a 200 MB report; then 8 clients on a 48 MB report")
    st = Stack(bindir, "")
    extra = st.silent("backup") + st.silent("cloud_resources") + st.silent("security")
    with open(f"{st.dir}/config/master_monitor.toml", "a") as f:
        f.write(extra)
    logs = f"{st.dir}/logs"
    os.mkfifo(f"{logs}/backup_latest.json")
    os.symlink("/dev/zero", f"{logs}/cloud_resources_latest.json")
    pid = st.start()
    sample_path = f"{logs}/system_health_latest.json"
    end = time.monotonic() + 15
    while not os.path.exists(sample_path) and time.monotonic() < end:
        time.sleep(0.2)
    with open(sample_path) as f:
        report = json.load(f)

    def write_big(cid, size):
        r = dict(report, component=cid)
        r["details"] = dict(r.get("details") or {}, padding="x" * size)
        tmp = f"{logs}/.{cid}.tmp"
        with open(tmp, "w") as f:
            json.dump(r, f)
        os.rename(tmp, f"{logs}/{cid}_latest.json")

    write_big("security", 200 * 1024 * 1024)
    sampler = Sampler(pid)
    sampler.start()
    health = []
    for _ in range(10):
        health.append(healthz_until_ok(st.port)[0])
        time.sleep(1)
    sec, out = st.status_seconds()
    summaries = {}
    try:
        for c in json.loads(out.stdout)["components"]:
            summaries[c["id"]] = c.get("summary", "")
    except (ValueError, KeyError):
        pass
    print(f"RSS {mib(mem_kib(pid))} (peak {mib(mem_kib(pid, 'VmHWM'))}); descriptors {fds(pid)}; "
          f"/healthz max {max(h for h in health if h is not None) * 1000:.0f} ms; `status` {sec * 1000:.0f} ms")
    for cid in ("backup", "cloud_resources", "security"):
        print(f"  {cid}: {summaries.get(cid, '?')[:140]}")
    write_big("security", 48 * 1024 * 1024)
    time.sleep(2.5)
    before = mem_kib(pid)
    results = []

    def fetch():
        t0 = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", st.port), timeout=60) as s:
                s.sendall(f"GET /api/monitor/components/security HTTP/1.1\r\nHost: 127.0.0.1:{st.port}\r\n"
                          "Connection: close\r\n\r\n".encode())
                n = 0
                while True:
                    b = s.recv(1 << 20)
                    if not b:
                        break
                    n += len(b)
            results.append((n, time.monotonic() - t0))
        except OSError:
            results.append((0, time.monotonic() - t0))

    ts = [threading.Thread(target=fetch) for _ in range(8)]
    for t in ts:
        t.start()
    hz = healthz_until_ok(st.port)[0]
    for t in ts:
        t.join()
    sampler.stop_flag = True
    sampler.join()
    print(f"8 concurrent GET /api/monitor/components/security (48 MB): {sum(n for n, _ in results) / 1e6:.0f} MB sent, "
          f"slowest {max(s for _, s in results):.2f} s; RSS {mib(before)} before, {mib(mem_kib(pid))} after, "
          f"peak {mib(mem_kib(pid, 'VmHWM'))}; /healthz during: {hz * 1000:.0f} ms" if hz is not None else "no /healthz")
    st.stop()


def main(bindir):
    slow_headers(bindir)
    basic_auth_burst(bindir)
    hostile_reports(bindir)


if __name__ == "__main__":
    main(sys.argv[1])
