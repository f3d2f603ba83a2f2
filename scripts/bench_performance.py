"""qmoi-performance: CPU and RSS of the 1 s sampling, and access-log parsing throughput
against `wc -l` (the ceiling: finding line ends) and GoAccess on the same log, in one run.

Usage: bench_performance.py BIN_DIR WORK_DIR LOG_MB SECONDS

Prints figures; asserts nothing.
"""
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import CLK, cpu_ticks, mem_kib  # noqa: E402

BIN, WORK, LOG_MB, SECONDS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
EXE = os.path.join(BIN, "qmoi-performance")


def make_log(path, mb):
    if os.path.exists(path) and os.path.getsize(path) >= mb * 1_000_000:
        return
    rnd = random.Random(7)
    paths = ["/", "/api/items", "/api/items/42", "/static/app.js", "/login", "/search?q=rust", "/img/logo.png"]
    agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
              "curl/8.5.0", "Prometheus/2.42.0", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"]
    with open(path, "w") as f:
        written = 0
        chunk = []
        while written < mb * 1_000_000:
            for _ in range(10000):
                st = rnd.choice([200] * 90 + [301, 304, 404, 404, 500, 502, 200, 200, 200, 200])
                line = (f'198.51.100.{rnd.randint(1, 254)} - - [27/Nov/2026:10:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d} +0000] '
                        f'"GET {rnd.choice(paths)} HTTP/1.1" {st} {rnd.randint(100, 90000)} "-" "{rnd.choice(agents)}" '
                        f'{rnd.expovariate(20):.3f}\n')
                chunk.append(line)
                written += len(line)
            f.write("".join(chunk))
            chunk = []


def timed(cmd, cwd=None):
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    rss = next((int(l.split()[-1]) for l in p.stderr.splitlines() if "Maximum resident set size" in l), 0)
    return wall, rss, p.returncode, p.stdout


def main():
    os.makedirs(WORK, exist_ok=True)
    # 1. The daemon with the shipped defaults (1 s sampling, 60 s reports): CPU and RSS.
    cfg = os.path.join(WORK, "idle.toml")
    with open(cfg, "w") as f:
        f.write(f'data_dir = "{WORK}/data"\n')
    d = subprocess.Popen([EXE, "--config", cfg, "--report-dir", f"{WORK}/logs", "--log-dir", f"{WORK}/logs"])
    try:
        time.sleep(3)
        t0, c0 = time.monotonic(), cpu_ticks(d.pid)
        rss = []
        end = t0 + SECONDS
        while time.monotonic() < end:
            time.sleep(1)
            rss.append(mem_kib(d.pid))
        t1, c1 = time.monotonic(), cpu_ticks(d.pid)
        hwm = mem_kib(d.pid, "VmHWM")
    finally:
        d.terminate()
        d.wait(timeout=10)
    cpu = (c1 - c0) / CLK / (t1 - t0) * 100
    print(f"\nsampling every 1 s, reports every 60 s, {SECONDS} s measured after a 3 s warm-up:")
    print(f"  CPU {cpu:.3f}% of one core; RSS avg {sum(rss) / len(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB (VmHWM {hwm / 1024:.1f} MiB)")

    # 2. Access log throughput.
    log = os.path.join(WORK, "access.log")
    make_log(log, LOG_MB)
    size = os.path.getsize(log)
    lines = int(subprocess.run(["wc", "-l", log], capture_output=True, text=True).stdout.split()[0])
    subprocess.run(f"cat {log} > /dev/null", shell=True)
    print(f"\naccess log: {size / 1e9:.2f} GB, {lines:,} lines (nginx combined + $request_time), warm page cache")
    print(f"  {'step':<48} {'wall':>8} {'lines/s':>12} {'max RSS':>10}")
    w, r, _, _ = timed(["wc", "-l", log])
    print(f"  {'wc -l (ceiling)':<48} {w:7.2f}s {lines / w:12,.0f} {r / 1024:8.1f} MiB")
    pcfg = os.path.join(WORK, "parse.toml")
    with open(pcfg, "w") as f:
        f.write(f'data_dir = "{WORK}/data"\n[baseline]\nenabled = false\n[prediction]\nenabled = false\n'
                f'[[access_logs]]\nname = "bench"\npath = "{log}"\ninitial_read_bytes = {size + 1}\nmax_read_bytes = {size + 1}\n')
    w, r, rc, _ = timed([EXE, "--config", pcfg, "--once", "--report-dir", f"{WORK}/logs", "--log-dir", f"{WORK}/logs"])
    rep = json.load(open(f"{WORK}/logs/performance_latest.json"))
    al = rep["details"]["access_logs"][0]
    parse_s = al["last_poll_ms"] / 1000
    print(f"  {'qmoi-performance (read + parse + aggregate)':<48} {parse_s:7.2f}s {al['parsed_lines'] / parse_s:12,.0f} {r / 1024:8.1f} MiB"
          f"  ({al['parsed_lines']:,} parsed, {al['unparsed_lines']} unparsed; whole --once {w:.2f} s)")
    if subprocess.run(["sh", "-c", "command -v goaccess"], capture_output=True).returncode == 0:
        out = os.path.join(WORK, "goaccess.json")
        w, r, rc, _ = timed(["goaccess", log, "--log-format=%h %^[%d:%t %^] \"%r\" %s %b \"%R\" \"%u\" %T",
                             "--date-format=%d/%b/%Y", "--time-format=%T", "-o", out, "--no-progress"])
        print(f"  {'goaccess 1.7 (JSON report)':<48} {w:7.2f}s {lines / w:12,.0f} {r / 1024:8.1f} MiB  exit {rc}")


if __name__ == "__main__":
    main()
