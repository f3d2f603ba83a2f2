#!/usr/bin/env bash
# The test command of the README, and what CI runs (.ci/run).
#
# 1. Installs what the tests need and the machine lacks (Debian packages via apt-get,
#    only when missing, so a second run is fast).
# 2. cargo fmt --check, cargo clippy -D warnings, cargo test --workspace --locked.
#
# QMOI_REQUIRE_EXTERNAL=1 makes a test that needs an outside tool fail instead of skip,
# so a missing install step here cannot hide behind a skipped test.
set -euo pipefail
cd "$(dirname "$0")/.."

export QMOI_REQUIRE_EXTERNAL=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Debian packages: command -> package.
declare -A NEED=(
  [systemd-analyze]=systemd       # unit files: systemd-analyze verify
  [promtool]=prometheus           # /metrics: promtool check metrics; rules: promtool test rules
  [prometheus]=prometheus         # remote write and the fleet: a real Prometheus
  [victoria-metrics]=victoria-metrics  # … and a real VictoriaMetrics
  [chromium]=chromium             # the dashboard page in a real browser
  [chromedriver]=chromium-driver  # … driven over WebDriver
  [openssl]=openssl               # a certificate for the dashboard's TLS test
  [curl]=curl                     # … and an HTTPS client that checks it
  [prometheus-alertmanager]=prometheus-alertmanager  # qmoi-notify forwards to a real Alertmanager
  [python3]=python3               # test servers: aiosmtpd (below)
  [restic]=restic                 # qmoi-backup checks (and damages) a real restic repository …
  [borg]=borgbackup               # … and a real Borg repository
  [setpriv]=util-linux            # qmoi-security's unreadable-file test runs the monitor as nobody
  [unshare]=util-linux            # tests in private network and mount namespaces …
  [mount]=mount                   # … with bind mounts (interface error counters), and full tmpfs folders …
  [prlimit]=util-linux            # the supervisor under a low descriptor limit (tests/faults.rs)
  [sqlite3]=sqlite3               # … and PRAGMA integrity_check of the databases after a full disk
  [faketime]=faketime             # … and a jump of the wall clock (its libfaketime)
  [ip]=iproute2                   # … and their own interfaces
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
# qmoi-system-health's [[plugins]] run real Monitoring Plugins (not on the PATH).
[ -x /usr/lib/nagios/plugins/check_tcp ] || missing+=(monitoring-plugins-basic)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> Installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python test servers and clients in a venv kept outside the clone (reused by the next
# run): aiosmtpd is the real SMTP server the notifier's email tests deliver to; moto is the
# AWS emulator the cloud monitor's tests run against (EC2, CloudWatch, Cost Explorer);
# schemathesis checks the REST API against its OpenAPI document; grpcio (with its health
# and reflection packages) is the real client of the gRPC API; gql (requests and websockets
# transports) is the real client of the GraphQL API.
VENV="${QMOI_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qmoi-test-venv}"
if ! "$VENV/bin/python" -c 'import aiosmtpd, moto.server, schemathesis, grpc, grpc_health, grpc_reflection, gql.transport.websockets, gql.transport.requests' >/dev/null 2>&1; then
  echo "==> Creating the Python venv for test servers and clients (aiosmtpd, moto, schemathesis, grpcio, gql): $VENV"
  if [ -x "$VENV/bin/python" ]; then
    :
  elif ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv for `-m venv`.
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd>=1.4,<2' 'moto[server]>=5.1,<6' \
    'schemathesis>=4.3,<5' 'grpcio>=1.60,<2' 'grpcio-health-checking>=1.60,<2' 'grpcio-reflection>=1.60,<2' \
    'gql[websockets,requests]>=4.0,<5'
fi
export QMOI_TEST_PYTHON="$VENV/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test --workspace"
cargo test --workspace --locked

echo "==> chaos soak, 3 minutes (scripts/soak.sh)"
scripts/soak.sh 3
