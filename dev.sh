#!/usr/bin/env bash
# One-command entry points for a fresh clone:
#   ./dev.sh demo    set up and run the demo premises (or `gbhub decode` on an example until it lands)
#   ./dev.sh test    set up and run the whole test suite
#   ./dev.sh setup   only create .venv and install gbhub with its test extras
#   ./dev.sh gbhub ARGS   run the gbhub command installed in .venv (e.g. ./dev.sh gbhub send ECS17b)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup() {
  if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
  fi
  if ! .venv/bin/python -c "import gbcs, gbhub.tools.cli, pytest, hypothesis, pytest_asyncio, zigpy, aiohttp, selenium, bumble" 2>/dev/null \
     || [ pyproject.toml -nt .venv/.installed ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test,mqtt,serial,zigbee,web,ble]'
    touch .venv/.installed
  fi
}

case "${1:-}" in
  setup) setup ;;
  test)
    shift; setup
    exec .venv/bin/python -P -m pytest "$@" ;;
  demo)
    shift; setup
    echo "gbhub: in another shell, from $(pwd): ./dev.sh gbhub send ECS17b (or .venv/bin/gbhub ..., or source .venv/bin/activate first)" >&2
    exec .venv/bin/gbhub run "$@" ;;
  gbhub)
    shift; setup
    exec .venv/bin/gbhub "$@" ;;
  *)
    echo "usage: ./dev.sh demo|test|setup|gbhub [args...]" >&2; exit 2 ;;
esac
