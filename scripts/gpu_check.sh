#!/usr/bin/env bash
# GPU readiness in one command: every CUDA path of denselink at tiny size (scripts/gpu_check.py), in at
# most 8 minutes, results in benchmarks/results/gpu_check.json. Exits non-zero with one line when CUDA is
# absent, a check fails or time runs out.
#   scripts/gpu_check.sh [--out PATH]        # PYTHON=... picks the interpreter (default .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
timeout 480 "$python" scripts/gpu_check.py "$@"
status=$?
if [[ $status -eq 124 ]]; then
  echo "gpu_check: FAILED: not finished within 8 minutes" >&2
fi
exit "$status"
