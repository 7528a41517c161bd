#!/usr/bin/env bash
# Evidently 0.7 in its own virtual environment (it needs pandas<3), for drift_bench.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-evidently"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
DO_NOT_TRACK=1 "$venv/bin/pip" install --quiet --disable-pip-version-check \
  "evidently==0.7.23" "pandas<3" "pyarrow"
DO_NOT_TRACK=1 "$venv/bin/python" -c "import evidently; print('evidently', evidently.__version__)"
