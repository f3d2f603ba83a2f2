"""Alert-to-webhook latency: qmoi-notify vs Debian's prometheus-alertmanager, same run,
same receiver. See scripts/bench-notify.sh."""
import json
import selectors
import socket
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from bench_common import free_port, mem_kib, wait_http  # noqa: E402

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
ARRIVALS = {}  # key -> perf_counter_ns at arrival
LOCK = threading.Lock()
EVENT = threading.Condition(LOCK)


def receiver(port):
    """A single-threaded HTTP receiver (selectors): the arrival time of a request is when
    its first bytes are read, so neither side pays for a thread per connection."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(128)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    state = {}

    def finish(conn, st):
        head, _, body = st["buf"].partition(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode() if b" " in head else "/"
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        sel.unregister(conn)
        conn.close()
        try:
            doc = json.loads(body)
        except ValueError:
            return
        if path.startswith("/am"):
            keys = [a["labels"].get("alertname") for a in doc.get("alerts", []) if a.get("status") == "firing"]
        else:
            keys = [a["fingerprint"] for a in doc.get("alerts", []) if a.get("status") == "firing"]
        with EVENT:
            for k in keys:
                ARRIVALS.setdefault(k, st["t"])
            EVENT.notify_all()

    while True:
        for key, _ in sel.select():
            if key.data is None:
                conn, _ = lsock.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, "c")
                state[conn] = {"buf": b"", "t": None}
                continue
            conn = key.fileobj
            st = state[conn]
            try:
                data = conn.recv(65536)
            except BlockingIOError:
                continue
            if st["t"] is None:
                st["t"] = time.perf_counter_ns()
            if not data:
                sel.unregister(conn)
                conn.close()
                del state[conn]
                continue
            st["buf"] += data
            head, sep, body = st["buf"].partition(b"\r\n\r\n")
            if not sep:
                continue
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            if len(body) >= length:
                finish(conn, st)
                del state[conn]


def wait_arrival(key, timeout=5.0):
    end = time.monotonic() + timeout
    with EVENT:
        while key not in ARRIVALS:
            left = end - time.monotonic()
            if left <= 0:
                return None
            EVENT.wait(left)
        return ARRIVALS[key]


def summary(name, ms):
    ms = sorted(ms)
    q = lambda p: ms[min(len(ms) - 1, int(round(p * (len(ms) - 1))))]
    print(f"  {name:<44} n={len(ms):>4}  median {statistics.median(ms):6.2f} ms  p90 {q(0.9):6.2f}  p99 {q(0.99):6.2f}  max {ms[-1]:6.2f}")


def write_report(folder, component, fingerprint_subject):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rep = {"schema_version": 1, "component": component, "host": "bench", "generated_at": now,
           "interval_s": 60, "duration_ms": 1, "status": "critical", "summary": "bench", "checks": [],
           "metrics": {}, "details": {},
           "alerts": [{"fingerprint": f"{component}/{fingerprint_subject}", "level": "critical",
                       "title": "Bench alert", "detail": "bench", "since": now}]}
    tmp = os.path.join(folder, f".{component}.tmp")
    with open(tmp, "w") as f:
        json.dump(rep, f)
    t0 = time.perf_counter_ns()
    os.rename(tmp, os.path.join(folder, f"{component}_latest.json"))
    return t0


def bench_alertmanager(hook_port, work):
    am = shutil.which("prometheus-alertmanager")
    if not am:
        print("  prometheus-alertmanager not installed: skipped")
        return
    port = free_port()
    cfg = os.path.join(work, "am.yml")
    with open(cfg, "w") as f:
        f.write("route:\n  receiver: hook\n  group_by: ['alertname']\n  group_wait: 0s\n  group_interval: 1s\n"
                "  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n"
                f"      - url: 'http://127.0.0.1:{hook_port}/am'\n")
    p = subprocess.Popen([am, f"--config.file={cfg}", f"--storage.path={work}/am-data",
                          f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready")
        lat = []
        for i in range(N + 10):
            name = f"am{i}"
            body = json.dumps([{"labels": {"alertname": name, "severity": "critical"},
                                "annotations": {"summary": "bench"}}]).encode()
            raw = (f"POST /api/v2/alerts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
                   f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
            # Connected before the clock starts: the hop is Alertmanager's, not the client's.
            c = socket.create_connection(("127.0.0.1", port))
            t0 = time.perf_counter_ns()
            c.sendall(raw)
            t1 = wait_arrival(name)
            c.recv(4096)
            c.close()
            if t1 is not None and i >= 10:  # the first 10 warm up
                lat.append((t1 - t0) / 1e6)
        summary("Alertmanager 0.25: POST /api/v2/alerts -> webhook", lat)
        print(f"  Alertmanager RSS {mem_kib(p.pid, 'VmRSS') / 1024:.1f} MiB (peak {mem_kib(p.pid, 'VmHWM') / 1024:.1f})")
    finally:
        p.terminate()
        p.wait()


def bench_qmoi(hook_port, work, sync):
    d = os.path.join(work, f"qmoi-{sync}")
    os.makedirs(os.path.join(d, "logs"))
    with open(os.path.join(d, "n.toml"), "w") as f:
        f.write(f"""
[grouping]
group_wait = "0s"
group_interval = "0s"
group_by = "fingerprint"
[database]
synchronous = "{sync}"
[priorities.critical]
channels = ["hook"]
[channels.hook]
type = "webhook"
format = "generic"
urls = ["http://127.0.0.1:{hook_port}/qmoi"]
""")
    p = subprocess.Popen([os.path.join(BIN, "qmoi-notify"), "--config", "n.toml", "--report-dir", "logs",
                          "--log-dir", "logs"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        lat = []
        logs = os.path.join(d, "logs")
        for i in range(N + 10):
            # A new component each time: one new alert per report, nothing resolving in
            # the same step (a resolution would go first on the same target).
            component = f"{sync}{i}"
            t0 = write_report(logs, component, "alert")
            t1 = wait_arrival(f"{component}/alert")
            if t1 is None:
                print(f"  no arrival for {subject}")
                continue
            if i >= 10:
                lat.append((t1 - t0) / 1e6)
        summary(f"qmoi-notify (synchronous={sync}): rename -> webhook", lat)
        print(f"  qmoi-notify RSS {mem_kib(p.pid, 'VmRSS') / 1024:.1f} MiB (peak {mem_kib(p.pid, 'VmHWM') / 1024:.1f})")
    finally:
        p.terminate()
        p.wait()


def main():
    hook_port = free_port()
    threading.Thread(target=receiver, args=(hook_port,), daemon=True).start()
    with tempfile.TemporaryDirectory() as work:
        print(f"alert -> webhook latency, {N} alerts each, one at a time, grouping off (group_wait 0s):")
        bench_alertmanager(hook_port, work)
        bench_qmoi(hook_port, work, "full")
        bench_qmoi(hook_port, work, "normal")


main()
