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
  [promtool]=prometheus           # /metrics: promtool check metrics
  [chromium]=chromium             # the dashboard page in a real browser
  [chromedriver]=chromium-driver  # … driven over WebDriver
  [openssl]=openssl               # a certificate for the dashboard's TLS test
  [curl]=curl                     # … and an HTTPS client that checks it
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> Installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test --workspace"
cargo test --workspace --locked
