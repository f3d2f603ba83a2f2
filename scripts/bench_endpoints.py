#!/usr/bin/env python3
"""Measurements for scripts/bench-endpoints.sh. Prints figures; asserts nothing.

nginx (Debian) answers on 127.0.0.1-4; qmoi-api-endpoints probes 5,000 endpoints there at
a 1 s interval for SECONDS; then prometheus-blackbox-exporter probes the same nginx
through /probe under wrk (2 threads, 16 connections, 10 s). Everything listens on
loopback, runs bounded in time, and is stopped by pid.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench_common import CLK, cpu_ticks, free_port, mem_kib, wait_http


def proc(pid):
    """(CPU ticks, RSS in MiB) of a process."""
    return cpu_ticks(pid), (mem_kib(pid) or 0) / 1024

ADDRS = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]








def write_week_of_state(path, n):
    """A state file as a week of probing at 1 s leaves it: for every endpoint the last 240
    probes, 168 hours of counts and 24 hours of latency histograms (5 buckets each), so
    that the measured memory is the steady state, not the first minutes'."""
    now = int(time.time())
    hour = now - now % 3600
    with open(path, "w") as f:
        f.write("{")
        for i in range(n):
            recent = ",".join(f'{{"t":{now - 240 + k},"ms":{0.3 + (k % 7) * 0.05:.2f},"ok":true}}' for k in range(240))
            hours = ",".join(
                f'"{hour - h * 3600}":{{"total":3600,"ok":3599,"hist":'
                + ("[[0,3000],[1,400],[2,150],[3,40],[5,9]]" if h < 24 else "[]") + "}"
                for h in range(168))
            f.write(("," if i else "") + f'"ep{i}":{{"up":true,"since":{now - 7 * 86400},"last_at":{now},'
                    f'"recent":[{recent}],"hours":{{{hours}}}}}')
        f.write("}\n")


def main(bindir, n, seconds, week=False):
    d = tempfile.mkdtemp(prefix="qmoi-bench-ep-")
    port = free_port()
    for sub in ("tmp", "logs"):
        os.makedirs(f"{d}/{sub}")
    listens = "\n".join(f"    listen {a}:{port};" for a in ADDRS)
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{
{listens}
    location / {{ return 200 "ok\\n"; }}
  }}
}}
""")
    nginx = subprocess.Popen(["/usr/sbin/nginx", "-p", d, "-c", f"{d}/nginx.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        # qmoi-api-endpoints
        # The shipped caps (concurrency 256, per host 8) would hold 5,000 endpoints on four
        # addresses to 32 probes at once; per host 256, global cap as shipped.
        lines = ['interval = "5s"', 'timeout = "2s"', 'probe_interval = "1s"', f"concurrency = {os.environ.get('QMOI_BENCH_CONCURRENCY', '256')}",
                 "per_host_concurrency = 256", f'state_file = "{d}/state.json"', "[history]", "enabled = false"]
        for i in range(n):
            lines += ["[[endpoints]]", f'name = "ep{i}"', 'kind = "http"',
                      f'url = "http://{ADDRS[i % len(ADDRS)]}:{port}/e{i}"', 'conditions = ["status == 200"]']
        with open(f"{d}/endpoints.toml", "w") as f:
            f.write("\n".join(lines) + "\n")
        if week:
            write_week_of_state(f"{d}/state.json", n)
            print(f"state file with a week of history: {os.path.getsize(f'{d}/state.json') / 1e6:.0f} MB")
        # QMOI_BENCH_WRAP="heaptrack -o FILE" runs the monitor under a profiler.
        wrap = os.environ.get("QMOI_BENCH_WRAP", "").split()
        mon = subprocess.Popen(wrap + [f"{bindir}/qmoi-api-endpoints", "--config", f"{d}/endpoints.toml", "--report-dir", f"{d}/logs",
                                "--log-dir", f"{d}/logs"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        try:
            report = f"{d}/logs/api_endpoints_latest.json"
            time.sleep(8)  # past the first (all at once) round
            r0 = json.load(open(report))
            t0, (c0, _) = time.monotonic(), proc(mon.pid)
            peak = 0.0
            samples = []
            while time.monotonic() - t0 < seconds:
                rss_now = proc(mon.pid)[1]
                samples.append(rss_now)
                if os.environ.get("QMOI_BENCH_RSS_TRACE"):
                    try:
                        rep_mtime = os.path.getmtime(report)
                    except OSError:
                        rep_mtime = 0
                    with open(os.environ["QMOI_BENCH_RSS_TRACE"], "a") as tf:
                        tf.write(f"{time.time():.2f} {rss_now:.1f} {rep_mtime:.2f}\n")
                peak = max(peak, rss_now)
                time.sleep(0.1)
            samples.sort()
            time.sleep(5.5)  # one more report
            r1 = json.load(open(report))
            el = time.monotonic() - t0
            c1, rss = proc(mon.pid)
            probes = r1["metrics"]["qmoi_endpoint_probes_total"] - r0["metrics"]["qmoi_endpoint_probes_total"]
            span = (time.mktime(time.strptime(r1["generated_at"], "%Y-%m-%dT%H:%M:%SZ"))
                    - time.mktime(time.strptime(r0["generated_at"], "%Y-%m-%dT%H:%M:%SZ")))
            up = sum(1 for k, v in r1["metrics"].items() if k.startswith("qmoi_endpoint_up{") and v == 1.0)
            late = r1["details"].get("scheduler", {}).get("lateness_ms", {})
            print(f"qmoi-api-endpoints, {n} endpoints at a 1 s interval (planned {n}/s), {span:.0f} s measured:")
            print(f"  {probes / span:,.0f} probes/s; {up} of {n} endpoints up")
            print(f"  CPU {(c1 - c0) / CLK / el * 100:.0f}% of one core; RSS {rss:.1f} MiB at the end; sampled every 0.1 s: "
                  f"median {samples[len(samples) // 2]:.1f}, p90 {samples[len(samples) * 9 // 10]:.1f}, peak {peak:.1f} MiB")
            hwm = (mem_kib(mon.pid, "VmHWM") or 0) / 1024
            print(f"  VmHWM {hwm:.1f} MiB (the process's peak since it started: the state file read, the first round of probes at once)")
            print(f"  probe start vs schedule (last {late.get('samples', 0)} probes): p50 {late.get('p50', float('nan')):.1f} ms, "
                  f"p99 {late.get('p99', float('nan')):.1f} ms")
        finally:
            # The whole group: a profiler given in QMOI_BENCH_WRAP forwards no signal.
            os.killpg(mon.pid, signal.SIGTERM)
            mon.wait(timeout=60)
        exe = shutil.which("prometheus-blackbox-exporter")
        if os.environ.get("QMOI_BENCH_NO_PEER"):
            print("QMOI_BENCH_NO_PEER set: blackbox_exporter skipped")
            return
        if not exe:
            print("prometheus-blackbox-exporter not installed - skipped")
            return
        bport = free_port()
        with open(f"{d}/blackbox.yml", "w") as f:
            f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n    http:\n      preferred_ip_protocol: ip4\n")
        bb = subprocess.Popen([exe, f"--config.file={d}/blackbox.yml", f"--web.listen-address=127.0.0.1:{bport}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{bport}/metrics")
            url = f"http://127.0.0.1:{bport}/probe?module=http_2xx&target=http://127.0.0.1:{port}/bb"
            c0, _ = proc(bb.pid)
            t0 = time.monotonic()
            w = subprocess.Popen(["wrk", "-t2", "-c16", "-d10s", "--latency", url], stdout=subprocess.PIPE, text=True)
            peak = 0.0
            while w.poll() is None:
                peak = max(peak, proc(bb.pid)[1])
                time.sleep(0.2)
            el = time.monotonic() - t0
            c1, _ = proc(bb.pid)
            out = w.stdout.read()
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
            print(f"blackbox_exporter /probe under wrk -t2 -c16 -d10s: {float(rps.group(1)) if rps else 0:,.0f} probes/s; "
                  f"CPU {(c1 - c0) / CLK / el * 100:.0f}% of one core; RSS peak {peak:.1f} MiB")
        finally:
            bb.send_signal(signal.SIGTERM)
            bb.wait(timeout=30)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), len(sys.argv) > 4 and sys.argv[4] == "week")
