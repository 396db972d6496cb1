#!/bin/sh
# gbhub lab rig installer (Raspberry Pi OS / Debian). One entry point; the work is done by
# install.py beside it (Python standard library only, it runs before gbhub is installed).
#   sudo hardware/install.sh --rig ezsp          # install, service user, rig file, unit, udev rules
#   hardware/install.sh --prefix /tmp/root       # everything under /tmp/root (CI); host steps skipped
#   hardware/install.sh --help
# Idempotent: run it again after `git pull` to update the installed gbhub; your rig file is kept.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for py in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    exec "$py" "$here/install.py" "$@"
  fi
done
echo "gbhub install: needs Python >= 3.11 (Raspberry Pi OS Bookworm: sudo apt-get install python3 python3-venv)" >&2
exit 1
