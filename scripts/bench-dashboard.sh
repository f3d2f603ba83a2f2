#!/usr/bin/env bash
# Benchmark of the dashboard/API (prints figures; asserts nothing). Targets:
# /api/monitor/status >= 20,000 req/s with p99 < 5 ms at 16 connections, supervisor RSS
# < 30 MiB under that load, /metrics >= 10,000 req/s (Debian's node_exporter, measured in
# the same run, collects on every scrape), a 7-day history query < 20 ms.
#
#   scripts/bench-dashboard.sh
#
# Installs wrk and prometheus-node-exporter (Debian) when missing and builds release
# binaries. All traffic stays on 127.0.0.1; wrk runs 10 s per URL.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1 || ! [ -x /usr/bin/prometheus-node-exporter ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk prometheus-node-exporter
fi
echo "==> cargo build --release"
cargo build --release --locked -p qmoi-supervisor -p qmoi-system-health 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores; wrk -t2 -c16 -d10s on the same machine (it competes for the 2 cores)"
python3 scripts/bench_dashboard.py "$BIN"
