#!/usr/bin/env bash
# Benchmark of heartbeats and Nagios plugins (prints figures; asserts nothing). Targets
# (issue 21): >= 20,000 heartbeat pings/s with wrk on the 2-core machine, RSS < 15 MiB
# with 10,000 checks; the cost of one Nagios plugin run beside running it from a shell;
# live reload of the shipped stack (8 monitors): < 1 s, unchanged monitors keep their pid.
#
#   scripts/bench-lead.sh [heartbeats|plugins|reload ...]   (default: all three)
#
# Installs Debian's wrk and monitoring-plugins-basic when missing, builds release
# binaries. Everything on 127.0.0.1; stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1 || [ ! -x /usr/lib/nagios/plugins/check_dummy ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk monitoring-plugins-basic
fi
echo "==> cargo build --release"
cargo build --release --locked --bins 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores; the load generator runs on the same machine"
python3 scripts/bench_lead.py "$BIN" "$@"
