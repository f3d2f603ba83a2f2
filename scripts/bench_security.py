"""qmoi-security against AIDE and the raw hashing ceiling, on one generated tree, in one run.

Usage: bench_security.py BIN_DIR WORK_DIR SMALL_FILES BIG_FILES BIG_MB

Prints figures; asserts nothing. The page cache is warm for every tool (each step reads
the same tree that the one before it read), so these are CPU/metadata costs, not disk
reads.
"""
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import mem_kib  # noqa: E402

BIN, WORK, SMALL, BIG, BIG_MB = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
TREE = os.path.join(WORK, "tree")
SEC = os.path.join(BIN, "qmoi-security")


def generate():
    if os.path.exists(os.path.join(WORK, ".complete")):
        print(f"tree: reusing {TREE}")
        return
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(TREE)
    rnd = random.Random(42)
    per_dir = 100
    for i in range(SMALL):
        d = os.path.join(TREE, f"d{i // per_dir:04d}")
        if i % per_dir == 0:
            os.makedirs(d)
        with open(os.path.join(d, f"f{i:06d}.txt"), "wb") as f:
            f.write(rnd.randbytes(rnd.randint(200, 8000)))
    big = os.path.join(TREE, "big")
    os.makedirs(big)
    for i in range(BIG):
        with open(os.path.join(big, f"blob{i:02d}.bin"), "wb") as f:
            for _ in range(BIG_MB):
                f.write(os.urandom(1 << 20))
    open(os.path.join(WORK, ".complete"), "w").close()


def timed(cmd, cwd=None, env=None):
    """Run under /usr/bin/time -v: (wall seconds, max RSS KiB, stdout)."""
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    rss = 0
    for line in p.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split()[-1])
    return wall, rss, p.stdout, p.returncode, p.stderr


def du():
    total, files = 0, 0
    for root, _, names in os.walk(TREE):
        for n in names:
            files += 1
            total += os.lstat(os.path.join(root, n)).st_size
    return files, total


def sec_config(algorithm, realtime=False):
    path = os.path.join(WORK, f"security-{algorithm}.toml")
    with open(path, "w") as f:
        f.write(f'''data_dir = "data-{algorithm}"
interval = "1h"
[integrity]
algorithm = "{algorithm}"
realtime = {str(realtime).lower()}
max_alerts = 1000
max_listed = 1000
[[integrity.paths]]
path = "{TREE}"
[network]
enabled = false
[auth_log]
enabled = false
[accounts]
enabled = false
[processes]
enabled = false
[kernel_modules]
enabled = false
''')
    return path


def sec(cfg, *args):
    return timed([SEC, "--config", cfg, "--report-dir", os.path.join(WORK, "logs"), "--log-dir", os.path.join(WORK, "logs")] + list(args), cwd=WORK)


def aide_config():
    path = os.path.join(WORK, "aide.conf")
    with open(path, "w") as f:
        f.write(f"""database_in=file:{WORK}/aide.db
database_out=file:{WORK}/aide.db.new
database_new=file:{WORK}/aide.db.new
gzip_dbout=no
report_url=stdout
Q = p+i+n+u+g+s+m+c+sha256
{TREE} Q
""")
    return path


def change(n, tag):
    """Modify n small files (content and size)."""
    changed = []
    for i in range(n):
        p = os.path.join(TREE, f"d{(i * 37) % (SMALL // 100):04d}", f"f{((i * 37) % (SMALL // 100)) * 100:06d}.txt")
        with open(p, "ab") as f:
            f.write(f"changed {tag} {i}\n".encode())
        changed.append(p)
    return changed


def row(name, wall, rss, note=""):
    print(f"  {name:<46} {wall:8.2f} s  {rss / 1024:7.1f} MiB  {note}")


def main():
    generate()
    files, total = du()
    print(f"tree: {files} files, {total / 1e9:.2f} GB in {TREE}")
    all_files = os.path.join(WORK, "files.list")
    with open(all_files, "wb") as f:
        for root, _, names in os.walk(TREE):
            for n in names:
                f.write(os.path.join(root, n).encode() + b"\0")
    # Warm the cache, then the ceilings.
    subprocess.run(f"xargs -0 cat < {all_files} > /dev/null", shell=True, check=True)
    print("\n  step                                              wall       max RSS")
    w, r, *_ = timed(["sh", "-c", f"find {TREE} -printf '%s\\n' > /dev/null"])
    row("find stat walk", w, r)
    w, r, *_ = timed(["sh", "-c", f"xargs -0 b3sum < {all_files} > /dev/null"])
    b3 = w
    row("b3sum (raw BLAKE3 ceiling)", w, r)
    w, r, *_ = timed(["sh", "-c", f"xargs -0 sha256sum < {all_files} > /dev/null"])
    row("sha256sum (raw SHA-256 ceiling)", w, r)

    results = {}
    for algo in ["blake3", "sha256"]:
        cfg = sec_config(algo)
        shutil.rmtree(os.path.join(WORK, f"data-{algo}"), ignore_errors=True)
        w, r, out, rc, err = sec(cfg, "--init-baseline")
        if rc != 0:
            raise SystemExit(f"init failed: {err}")
        results[f"init-{algo}"] = w
        row(f"qmoi-security --init-baseline ({algo})", w, r, f"{b3 / w * 100:.0f}% of b3sum speed" if algo == "blake3" else "")
    cfg = sec_config("blake3")
    w, r, out, rc, _ = sec(cfg, "--check")
    results["check"] = w
    row("qmoi-security --check, unchanged (incremental)", w, r, f"exit {rc}")
    w, r, out, rc, _ = sec(cfg, "--check", "--full")
    results["full"] = w
    row("qmoi-security --check --full, unchanged", w, r, f"exit {rc}")

    acfg = aide_config()
    for f in ["aide.db", "aide.db.new"]:
        if os.path.exists(os.path.join(WORK, f)):
            os.remove(os.path.join(WORK, f))
    w, r, out, rc, err = timed(["aide", "--config", acfg, "--init"])
    results["aide-init"] = w
    row("aide --init (sha256)", w, r, f"exit {rc}")
    os.replace(os.path.join(WORK, "aide.db.new"), os.path.join(WORK, "aide.db"))
    w, r, out, rc, _ = timed(["aide", "--config", acfg, "--check"])
    results["aide-check"] = w
    row("aide --check, unchanged", w, r, f"exit {rc}")

    change(10, "a")
    w, r, out, rc, _ = sec(cfg, "--check")
    found = out.count("  file:")
    row("qmoi-security --check, 10 files changed", w, r, f"exit {rc}, {found} findings")
    w2, r2, out, rc, _ = sec(cfg, "--check", "--full")
    row("qmoi-security --check --full, 10 changed", w2, r2, f"exit {rc}")
    w3, r3, out, rc, _ = timed(["aide", "--config", acfg, "--check"])
    changed_line = next((l.strip() for l in out.splitlines() if l.strip().startswith("Changed entries")), "")
    row("aide --check, 10 files changed", w3, r3, f"exit {rc}, {changed_line}")

    print("\nratios (targets: init ≥ 80% of b3sum; unchanged check ≥ 30× faster than aide --check; full rehash ≥ 8×):")
    print(f"  init blake3 vs b3sum ceiling:       {b3 / results['init-blake3'] * 100:.0f}%")
    print(f"  init blake3 vs aide --init:         {results['aide-init'] / results['init-blake3']:.1f}× faster")
    print(f"  init sha256 vs aide --init:         {results['aide-init'] / results['init-sha256']:.1f}× faster")
    print(f"  incremental check vs aide --check:  {results['aide-check'] / results['check']:.1f}× faster")
    print(f"  full rehash check vs aide --check:  {results['aide-check'] / results['full']:.1f}× faster")

    # Real time: the daemon watching the tree; 100 writes, one at a time, each timed from
    # the write to the report listing it.
    rcfg = sec_config("blake3", realtime=True)
    subprocess.run([SEC, "--config", rcfg, "--accept"], cwd=WORK, capture_output=True)
    report = os.path.join(WORK, "logs", "security_latest.json")
    if os.path.exists(report):
        os.remove(report)
    d = subprocess.Popen([SEC, "--config", rcfg, "--report-dir", os.path.join(WORK, "logs"), "--log-dir", os.path.join(WORK, "logs")], cwd=WORK)
    try:
        end = time.monotonic() + 60
        while not os.path.exists(report) and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(1)
        rss_start = mem_kib(d.pid)
        lat = []
        for i in range(100):
            p = os.path.join(TREE, f"d{(i * 13) % (SMALL // 100):04d}", f"f{((i * 13) % (SMALL // 100)) * 100 + 1:06d}.txt")
            key = f"file:{p}"
            t0 = time.monotonic()
            with open(p, "ab") as f:
                f.write(b"rt\n")
            while True:
                try:
                    with open(report) as f:
                        text = f.read()
                    if key in text:
                        break
                except OSError:
                    pass
                if time.monotonic() - t0 > 10:
                    raise SystemExit(f"write to {p} not reported within 10 s")
                time.sleep(0.002)
            lat.append(time.monotonic() - t0)
        time.sleep(2)
        rss_idle = mem_kib(d.pid)
        hwm = mem_kib(d.pid, "VmHWM")
        lat.sort()
        print("\nreal time (100 writes, write → report lists the file; debounce 200 ms):")
        print(f"  median {statistics.median(lat) * 1000:.0f} ms, p99 {lat[98] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
        print(f"  daemon RSS idle-watching {files} files: {rss_start / 1024:.1f} MiB after start, {rss_idle / 1024:.1f} MiB after the writes (peak {hwm / 1024:.1f} MiB)")
    finally:
        d.terminate()
        d.wait(timeout=10)


if __name__ == "__main__":
    main()
