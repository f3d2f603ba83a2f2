#!/usr/bin/env bash
# Install QMOI into a folder (default /opt/qmoi):
#   bin/      the release binaries          config/  the shipped configs (existing files kept)
#   docs/     the documentation             logs/ data/ run/  state folders
#
#   scripts/install.sh [--prefix DIR] [--user NAME] [--systemd] [--no-build]
#
# Nothing privileged happens unless asked for: --user chowns the state folders to an
# existing user (create it first, e.g. `useradd --system --home DIR qmoi`), --systemd
# copies the units to /etc/systemd/system and runs `systemctl daemon-reload` (it does not
# enable or start anything).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=/opt/qmoi
USER_NAME=""
SYSTEMD=0
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --user) USER_NAME="$2"; shift 2 ;;
    --systemd) SYSTEMD=1; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$BUILD" = 1 ]; then
  echo "==> cargo build --release"
  cargo build --release --locked
fi
TARGET="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
echo "==> installing into $PREFIX"
install -d "$PREFIX/bin" "$PREFIX/config" "$PREFIX/docs" "$PREFIX/logs" "$PREFIX/data" "$PREFIX/run"
for b in qmoi-supervisor qmoi-system-health qmoi-performance qmoi-security qmoi-backup qmoi-cloud qmoi-api-endpoints qmoi-notify qmoi-heartbeat; do
  if [ -x "$TARGET/$b" ]; then install -m 0755 "$TARGET/$b" "$PREFIX/bin/$b"; echo "  bin/$b"; fi
done
for f in config/*; do
  dest="$PREFIX/config/$(basename "$f")"
  if [ -e "$dest" ]; then echo "  $dest exists: kept (new version beside it as $dest.dist)"; install -m 0640 "$f" "$dest.dist"
  else install -m 0640 "$f" "$dest"; echo "  $dest"; fi
done
install -m 0644 docs/*.md "$PREFIX/docs/"
chmod 0750 "$PREFIX/logs" "$PREFIX/data" "$PREFIX/run"
if [ -n "$USER_NAME" ]; then
  chown -R "$USER_NAME:" "$PREFIX/logs" "$PREFIX/data" "$PREFIX/run"
  chgrp -R "$(id -gn "$USER_NAME")" "$PREFIX/config"
fi
if [ "$SYSTEMD" = 1 ]; then
  for u in systemd/*.service; do
    sed "s#/opt/qmoi#$PREFIX#g" "$u" > "/etc/systemd/system/$(basename "$u")"
    echo "  /etc/systemd/system/$(basename "$u")"
  done
  systemctl daemon-reload
  echo "Enable with: systemctl enable --now qmoi-supervisor"
fi
echo "Done. Run: cd $PREFIX && bin/qmoi-supervisor validate && bin/qmoi-supervisor start"
