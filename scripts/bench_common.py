"""Helpers shared by the scripts/bench_*.py measurements: loopback ports, waiting for a
server, and reading a process's CPU ticks and memory from /proc."""
import os
import socket
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
