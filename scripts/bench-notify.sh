#!/usr/bin/env bash
# Benchmark of qmoi-notify (prints figures; asserts nothing): time from a report with a
# new critical alert being renamed into place to the webhook receiver getting the
# message, median and p99 (target: faster than Alertmanager's own hop, p99 < 20 ms), and
# the notifier's RSS (target < 15 MiB). Debian's prometheus-alertmanager (group_wait 0s)
# is measured in the same run, same receiver: its POST /api/v2/alerts -> webhook.
#
#   scripts/bench-notify.sh [ALERTS]     (default 300)
#
# Installs prometheus-alertmanager (Debian) when missing; builds the release binary.
# Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-300}"
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus-alertmanager
fi
echo "==> cargo build --release -p qmoi-notify"
cargo build --release --locked -p qmoi-notify 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores; disk under $(df -P /tmp | awk 'NR==2{print $1}')"
python3 scripts/bench_notify.py "$BIN" "$N"
