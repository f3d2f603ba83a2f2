#!/usr/bin/env bash
# The fleet test network: N QMOI hosts in network namespaces, Prometheus, VictoriaMetrics,
# a two-replica Alertmanager cluster and a webhook receiver (docs/FLEET.md, "The fleet
# test"). Needs root (namespaces) and the Debian packages scripts/test.sh installs.
#
#   scripts/fleet.sh [N] [--bench] [--keep]
#
#   N        hosts (default 3)
#   --bench  also print the figures (RSS per host, scrape duration, remote-write rate and
#            cost, critical report -> webhook latency); use N = 50
#   --keep   leave the network running after the checks (Ctrl-C tears it down)
#
# Binaries: QMOI_BIN_DIR if set (the tests pass their own), else a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "fleet.sh: needs root (it creates network namespaces and a bridge)" >&2
  exit 2
fi
for tool in ip unshare prometheus prometheus-alertmanager victoria-metrics python3; do
  command -v "$tool" >/dev/null || { echo "fleet.sh: '$tool' is missing (scripts/test.sh installs it)" >&2; exit 2; }
done
BIN_DIR="${QMOI_BIN_DIR:-}"
if [ -z "$BIN_DIR" ]; then
  echo "==> cargo build --release"
  cargo build --release --locked -q
  BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
fi
exec python3 scripts/fleet.py "$@" --bin-dir "$BIN_DIR"
