#!/usr/bin/env bash
# Measurements of what the supervisor withstands (prints figures; asserts nothing): the
# attacks of the adversarial run, replayed bounded and on loopback against release
# binaries — 1,100 slow-header clients at a 1024-descriptor limit, 200 concurrent wrong
# basic-auth passwords, a FIFO, /dev/zero and a 200 MB file under report names, and 8
# clients fetching a 48 MB report. The tests in crates/qmoi-supervisor/tests/hardening.rs
# assert the bounds; this prints the figures the README quotes.
#
#   scripts/bench-hardening.sh
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> cargo build --release"
cargo build --release --locked -p qmoi-supervisor -p qmoi-system-health -p qmoi-testkit 2>&1 | tail -1
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "machine: $(nproc) cores; clients are Python threads on the same machine"
python3 scripts/bench_hardening.py "$BIN"
