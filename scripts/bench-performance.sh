#!/usr/bin/env bash
# Benchmark of qmoi-performance (prints figures; asserts nothing): CPU and RSS of the
# daemon sampling every second (targets < 0.5% of one core, < 12 MiB), and access-log
# parsing throughput on a generated nginx log (default 1 GB) against `wc -l` and GoAccess
# (Debian's), in the same run.
#
#   scripts/bench-performance.sh [LOG_MB] [SECONDS]      (defaults 1000, 60)
#
# Installs goaccess (Debian) when missing; builds the release binary. The log is generated
# once under ${QMOI_BENCH_DIR:-/tmp/qmoi-bench-performance} and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_MB="${1:-1000}"
SECONDS_="${2:-60}"
need=()
command -v goaccess >/dev/null 2>&1 || need+=(goaccess)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "==> cargo build --release -p qmoi-performance"
cargo build --release --locked -p qmoi-performance 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores"
python3 scripts/bench_performance.py "$BIN" "${QMOI_BENCH_DIR:-/tmp/qmoi-bench-performance}" "$LOG_MB" "$SECONDS_"
