#!/usr/bin/env bash
# Benchmark of qmoi-backup verification (prints figures; asserts nothing): a full read of
# a tar.zst and a tar.gz archive against `zstd -t` / `gzip -t` on the same file, checksum
# verification against `b3sum` / `sha256sum`, and the max RSS of each (at SIZE_MB/4 and
# SIZE_MB, to show it does not grow with the archive).
#
#   scripts/bench-backup.sh [SIZE_MB]      (default 1024)
#
# Installs zstd and b3sum (Debian) when missing; builds the release binary. Archives are
# generated once under ${QMOI_BENCH_DIR:-/tmp/qmoi-bench-backup} and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-1024}"
need=()
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v b3sum >/dev/null 2>&1 || need+=(b3sum)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "==> cargo build --release -p qmoi-backup"
cargo build --release --locked -p qmoi-backup 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores; $(zstd --version); $(gzip --version | head -1)"
python3 scripts/bench_backup.py "$BIN" "${QMOI_BENCH_DIR:-/tmp/qmoi-bench-backup}" "$SIZE"
