#!/usr/bin/env bash
# Benchmark of qmoi-security side by side with Debian's AIDE (prints figures; asserts
# nothing). On one generated tree (default 50,000 small files + 20 files of 50 MB):
# baseline creation, check of the unchanged tree, check after 10 changed files, full
# rehash; the raw ceilings (b3sum, sha256sum, a find stat walk); real-time detection
# latency (write → report) and the daemon's RSS while idle-watching the tree.
#
#   scripts/bench-security.sh [SMALL_FILES] [BIG_FILES] [BIG_MB]
#
# Installs aide and b3sum (Debian) when missing; builds the release binary. The tree is
# generated once under ${QMOI_BENCH_DIR:-/tmp/qmoi-bench-security} and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL="${1:-50000}"
BIG="${2:-20}"
BIG_MB="${3:-50}"
need=()
command -v aide >/dev/null 2>&1 || need+=(aide)
command -v b3sum >/dev/null 2>&1 || need+=(b3sum)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "==> cargo build --release -p qmoi-security"
cargo build --release --locked -p qmoi-security 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores; $(aide --version 2>&1 | head -1); b3sum $(b3sum --version | awk '{print $2}')"
python3 scripts/bench_security.py "$BIN" "${QMOI_BENCH_DIR:-/tmp/qmoi-bench-security}" "$SMALL" "$BIG" "$BIG_MB"
