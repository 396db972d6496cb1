#!/usr/bin/env bash
# One-command entry points for a fresh clone:
#   ./dev.sh demo    set up and run the demo premises (or `gbhub decode` on an example until it lands)
#   ./dev.sh test    set up and run the whole test suite
#   ./dev.sh setup   only create .venv and install gbhub with its test extras
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup() {
  if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
  fi
  if ! .venv/bin/python -c "import gbcs, gbhub.tools.cli, pytest, hypothesis, pytest_asyncio" 2>/dev/null \
     || [ pyproject.toml -nt .venv/.installed ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test,mqtt,serial]'
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
    exec .venv/bin/gbhub run "$@" ;;
  *)
    echo "usage: ./dev.sh demo|test|setup [args...]" >&2; exit 2 ;;
esac
