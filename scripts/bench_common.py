"""Helpers shared by the scripts/bench_*.py measurements: loopback ports, waiting for a
server, and reading a process's CPU ticks and memory from /proc."""
import os
import socket
import tempfile
import time
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    """A port free on 127.0.0.1 right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, timeout=15):
    """Wait until `url` answers 200, or exit with a message."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def mem_kib(pid, field="VmRSS"):
    """A memory field of /proc/PID/status in KiB (VmRSS, VmHWM); None when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_ticks(pid):
    """utime + stime of a process in clock ticks; None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError):
        return None


def api_stack(bindir, components=("system_health",), prefix="qmoi-bench-api-"):
    """The release supervisor in a new temp folder, for the API benchmarks: dashboard and
    gRPC on free loopback ports, rate limit off, no auth, master report every second, and
    each of `components` a fake monitor writing every second (the first one with a
    warning). Returns (process, folder, dashboard port, gRPC port) once the status answers;
    the caller stops the process (SIGTERM)."""
    import subprocess

    d = tempfile.mkdtemp(prefix=prefix)
    os.makedirs(f"{d}/config")
    port, gport = free_port(), free_port()
    fake = f"{bindir}/qmoi-fake-monitor"
    text = (f'[dashboard]\nport = {port}\n[dashboard.rate_limit]\nenabled = false\n'
            f'[grpc]\nenabled = true\nport = {gport}\n[report]\ninterval = 1\n')
    for i, c in enumerate(components):
        mode = '"--mode", "warn", ' if i == 0 else ""
        text += (f'[monitoring_components.{c}]\ninterval = 1\ncommand = "{fake}"\n'
                 f'args = [{mode}"--component", "{c}"]\n')
    with open(f"{d}/config/master_monitor.toml", "w") as f:
        f.write(text)
    sup = subprocess.Popen([f"{bindir}/qmoi-supervisor", "start"], cwd=d,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/api/monitor/status")
    return sup, d, port, gport
