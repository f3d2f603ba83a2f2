#!/usr/bin/env bash
# Benchmark of qmoi-cloud (prints figures; asserts nothing): the inventory of INSTANCES
# instances across REGIONS regions from the moto AWS emulator on loopback — wall time and
# peak RSS of `qmoi-cloud --once`, side by side with a boto3 script listing the same.
#
#   scripts/bench-cloud.sh [INSTANCES] [REGIONS] [RUNS]     (default 5000 3 3)
#
# Uses the test venv (scripts/test.sh creates it; created here when missing); builds the
# release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"; R="${2:-3}"; RUNS="${3:-3}"
[ -x /usr/bin/time ] || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq time; }
VENV="${QMOI_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qmoi-test-venv}"
if ! "$VENV/bin/python" -c 'import moto.server, boto3' >/dev/null 2>&1; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
fi
echo "==> cargo build --release -p qmoi-cloud"
cargo build --release --locked -p qmoi-cloud 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores; moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
python3 scripts/bench_cloud.py "$BIN" "$VENV/bin/python" "$N" "$R" "$RUNS"
