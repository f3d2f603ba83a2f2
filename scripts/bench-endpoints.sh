#!/usr/bin/env bash
# Benchmark of qmoi-api-endpoints (prints figures; asserts nothing). Targets: >= 3,000
# probes/s on 2 cores with 5,000 endpoints, RSS < 40 MiB, p99 scheduling lateness < 50 ms;
# Debian's prometheus-blackbox-exporter probing the same nginx under wrk for comparison.
#
#   scripts/bench-endpoints.sh [ENDPOINTS] [SECONDS] [week]     (defaults 5000 and 20)
#   QMOI_BENCH_CONCURRENCY=N (default 256, as shipped), QMOI_BENCH_RSS_TRACE=FILE (0.1 s RSS trace),
#   QMOI_BENCH_WRAP="heaptrack -o FILE" (run the monitor under a profiler), QMOI_BENCH_NO_PEER=1
#   (skip blackbox_exporter). heaptrack sees only malloc: profile a build with the C
#   library's allocator, in its own target folder so the release binary stays as shipped:
#     CARGO_TARGET_DIR=target/heap cargo build --release -p qmoi-api-endpoints --features system-alloc
#     QMOI_BENCH_WRAP="heaptrack -o /tmp/ep" python3 scripts/bench_endpoints.py target/heap/release 5000 20 week
#     heaptrack_print -f /tmp/ep.zst --print-peaks 1
#
# `week` starts the monitor from a state file as a week of probing leaves it (240 recent
# probes, 168 hours of counts, 24 hours of histograms per endpoint): the steady-state RSS.
#
# Installs nginx, prometheus-blackbox-exporter and wrk (Debian) when missing; builds the
# release binary. nginx listens on 127.0.0.1-127.0.0.4 only; everything stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
SECS="${2:-20}"
if ! [ -x /usr/sbin/nginx ] || ! command -v prometheus-blackbox-exporter >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx prometheus-blackbox-exporter wrk
fi
echo "==> cargo build --release"
cargo build --release --locked -p qmoi-api-endpoints 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores; nginx, the prober and (later) wrk share them"
python3 scripts/bench_endpoints.py "$BIN" "$N" "$SECS" "${3:-}"
