#!/usr/bin/env bash
# Install (if needed) and run the test suite; extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
start=$(date +%s)
status=0
.venv/bin/python -m pytest "$@" || status=$?
echo "tests: finished in $(($(date +%s) - start)) s (pytest exit $status)"
# exit 5 = no test was collected: a failure too
exit "$status"
