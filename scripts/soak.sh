#!/usr/bin/env bash
# Chaos soak of the whole stack (issue 22).
#
#   scripts/soak.sh [MINUTES]      (default 3; the README reports a 30-minute run)
#
# The supervisor runs three fake monitors (system_health, security, backup) whose alert
# the soak fires and resolves by creating and removing a file, and the real notifier,
# which sends every transition to a local webhook receiver. Every ~11 s one transition
# happens; 6 s later a chaos action: kill -9 of a monitor, of the notifier or of the
# supervisor itself (started again), kill -9 and restart of the receiver (deliveries
# wait and retry), the report folder filled to the last byte for 3 s (as root: it is a
# tmpfs), or nothing; then the stack must be running again before the next transition.
# At the end: every transition delivered at least once and at most twice (printed per
# component), no process of the run left behind, no torn report, RSS and descriptors of
# every process printed with their start, bounded. Exit status 1 on any failure, the
# run's folder kept.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-3}"
if [ "${minutes}" = "-h" ] || [ "${minutes}" = "--help" ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cargo build --locked --bins -p qmoi-supervisor -p qmoi-notify -p qmoi-testkit 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
exec python3 scripts/soak.py "$BIN" "$minutes"
