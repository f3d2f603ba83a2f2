#!/usr/bin/env bash
# Benchmark of the gRPC and GraphQL APIs beside REST in one run (prints figures; asserts
# nothing). Targets (issue 19): gRPC GetOverview >= 20,000 req/s with p99 < 5 ms on the
# 2-core machine; GraphQL's overview query >= 10,000 req/s; REST /api/monitor/status in the
# same run; 1,000 WatchOverview streams plus 1,000 GraphQL subscriptions add < 40 MiB to
# the supervisor and get each change within 100 ms (p99).
#
#   scripts/bench-api.sh
#
# Installs Debian's wrk (HTTP/1.1 load) and nghttp2-client (h2load: HTTP/2, sending a
# prepared gRPC frame) when missing, builds release binaries. Everything on 127.0.0.1;
# 10 s per load, 2 threads, 16 connections (h2load: 8 streams in flight on each).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1 || ! command -v h2load >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk nghttp2-client
fi
echo "==> cargo build --release"
cargo build --release --locked -p qmoi-supervisor -p qmoi-testkit 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores; the load generators run on the same machine (they compete for the cores)"
python3 scripts/bench_api.py "$BIN"
# The streams and subscriptions need the test venv's grpcio and websockets (scripts/test.sh).
VENV="${QMOI_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qmoi-test-venv}"
if "$VENV/bin/python" -c 'import grpc, grpc_reflection, websockets' >/dev/null 2>&1; then
  "$VENV/bin/python" scripts/bench_watch.py "$BIN"
else
  echo "skipped the streams and subscriptions run: no grpcio or websockets in $VENV (run scripts/test.sh once)"
fi
