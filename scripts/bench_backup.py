"""qmoi-backup verification against the ceilings of zstd -t, gzip -t, b3sum and sha256sum on
the same files, in one run.

Usage: bench_backup.py BIN_DIR WORK_DIR SIZE_MB

Prints figures; asserts nothing. The page cache is warm (every tool reads the same files).
"""
import base64
import os
import subprocess
import sys
import time

BIN, WORK, SIZE_MB = sys.argv[1], sys.argv[2], int(sys.argv[3])
EXE = os.path.join(BIN, "qmoi-backup")


def timed(cmd, cwd=None):
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    rss = next((int(l.split()[-1]) for l in p.stderr.splitlines() if "Maximum resident set size" in l), 0)
    return wall, rss, p.returncode, p.stdout


def make(size_mb):
    """A tar of size_mb MB of text-like data (base64 of random bytes: compresses ~25%),
    then .tar.zst (zstd -3) and .tar.gz (gzip -6), made once and reused."""
    d = os.path.join(WORK, f"{size_mb}mb")
    done = os.path.join(d, ".complete")
    if os.path.exists(done):
        return d
    src = os.path.join(d, "src")
    os.makedirs(src, exist_ok=True)
    per = 8
    for i in range(size_mb // per):
        with open(os.path.join(src, f"part{i:04d}.txt"), "wb") as f:
            f.write(base64.b64encode(os.urandom(per * 1024 * 1024 * 3 // 4)))
    subprocess.run(["tar", "-cf", os.path.join(d, "b.tar"), "-C", src, "."], check=True)
    subprocess.run(["zstd", "-q", "-3", "-T2", "-f", os.path.join(d, "b.tar"), "-o", os.path.join(d, "b.tar.zst")], check=True)
    with open(os.path.join(d, "b.tar.gz"), "wb") as out:
        subprocess.run(["gzip", "-6", "-c", os.path.join(d, "b.tar")], stdout=out, check=True)
    for name in ["b.tar.zst", "b.tar.gz"]:
        h = subprocess.run(["sha256sum", name], cwd=d, capture_output=True, text=True, check=True).stdout
        open(os.path.join(d, name + ".sha256"), "w").write(h)
    subprocess.run(["rm", "-rf", src], check=True)
    open(done, "w").close()
    return d


def config(d):
    path = os.path.join(d, "backup.toml")
    with open(path, "w") as f:
        f.write(f'''data_dir = "{d}/data"
restore_dir = "{d}/data/restore"
[[targets]]
name = "zst"
path = "{d}"
pattern = "*.tar.zst"
max_age = "30d"
verify = ["archive"]
[[targets]]
name = "gz"
path = "{d}"
pattern = "*.tar.gz"
max_age = "30d"
verify = ["archive"]
[[targets]]
name = "sum"
path = "{d}"
pattern = "*.tar.zst"
max_age = "30d"
verify = ["checksum"]
''')
    return path


def row(name, wall, rss, size, note=""):
    print(f"  {name:<44} {wall:7.2f} s {size / wall / 1e6:8.0f} MB/s {rss / 1024:7.1f} MiB  {note}")


def main():
    for size in sorted({SIZE_MB // 4, SIZE_MB}):
        d = make(size)
        cfg = config(d)
        tar_size = os.path.getsize(os.path.join(d, "b.tar"))
        zst, gz = os.path.join(d, "b.tar.zst"), os.path.join(d, "b.tar.gz")
        subprocess.run(f"cat {d}/b.tar* > /dev/null", shell=True)
        print(f"\n{tar_size / 1e9:.2f} GB tar; tar.zst {os.path.getsize(zst) / 1e9:.2f} GB, tar.gz {os.path.getsize(gz) / 1e9:.2f} GB"
              " (throughput = uncompressed bytes / s)")
        print(f"  {'step':<44} {'wall':>9} {'':>13} {'max RSS':>11}")
        w, r, rc, _ = timed(["zstd", "-t", "-q", zst])
        row("zstd -t (ceiling)", w, r, tar_size, f"exit {rc}")
        w, r, rc, out = timed([EXE, "--config", cfg, "--verify", "zst"], cwd=d)
        row("qmoi-backup --verify (tar.zst, archive)", w, r, tar_size, f"exit {rc}")
        w, r, rc, _ = timed(["gzip", "-t", gz])
        row("gzip -t (ceiling)", w, r, tar_size, f"exit {rc}")
        w, r, rc, out = timed([EXE, "--config", cfg, "--verify", "gz"], cwd=d)
        row("qmoi-backup --verify (tar.gz, archive)", w, r, tar_size, f"exit {rc}")
        zsize = os.path.getsize(zst)
        w, r, rc, _ = timed(["b3sum", zst])
        row("b3sum of the tar.zst", w, r, zsize)
        w, r, rc, _ = timed(["sha256sum", zst])
        row("sha256sum of the tar.zst", w, r, zsize)
        w, r, rc, out = timed([EXE, "--config", cfg, "--verify", "sum"], cwd=d)
        row("qmoi-backup --verify (sha256 sidecar)", w, r, zsize, f"exit {rc}")


if __name__ == "__main__":
    main()
