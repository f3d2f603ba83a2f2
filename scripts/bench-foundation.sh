#!/usr/bin/env bash
# Benchmark of the foundation (issue: supervisor + system health). Prints figures; it is
# not a test and asserts nothing. Targets: system-health < 8 MiB RSS, supervisor < 20 MiB,
# restart of a crashed child < 150 ms (Monit polls: ~0.5-2 s), one run < 50 ms of CPU.
#
#   scripts/bench-foundation.sh [SECONDS]     (steady-state length, default 60)
#
# Installs monit (Debian) for the side-by-side restart figure when missing, and builds
# the release binaries. Everything runs on this machine; nothing listens on the network.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_STEADY="${1:-60}"
if ! command -v monit >/dev/null 2>&1 || ! [ -x /usr/bin/time ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends monit time
fi
echo "==> cargo build --release"
cargo build --release --locked -p qmoi-supervisor -p qmoi-system-health 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores, $(grep MemTotal /proc/meminfo | awk '{print int($2/1024/1024)" GiB"}'), $(uname -r)"
echo
echo "==> One system-health run (qmoi-system-health --once, a whole process: start, 250 ms CPU sample, report), 10 times"
TMP="$(mktemp -d)"
for i in $(seq 10); do
  /usr/bin/time -f "%U %S %M" -o "$TMP/t.$i" "$BIN/qmoi-system-health" --once --report-dir "$TMP" --log-dir "$TMP" >/dev/null
done
cat "$TMP"/t.* | awk '{u+=$1; s+=$2; if ($3>m) m=$3} END {printf "  CPU (user+sys) avg %.1f ms per run; max RSS %.1f MiB\n", (u+s)/NR*1000, m/1024}'
python3 -c "import json; r=json.load(open('$TMP/system_health_latest.json')); print(f\"  wall time of the checks in the last run (duration_ms): {r['duration_ms']} ms, {len(r['checks'])} checks\")"
rm -rf "$TMP"
echo
echo "==> Steady state (${SECONDS_STEADY} s)"
python3 scripts/bench_foundation.py "$BIN" steady "$SECONDS_STEADY"
echo
echo "==> Restart of a crashed child (time from kill -9 to the replacement exec'd)"
python3 scripts/bench_foundation.py "$BIN" restarts 10
python3 scripts/bench_foundation.py "$BIN" monit 5
