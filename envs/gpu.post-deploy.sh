#!/usr/bin/env bash
# Runs inside the new env, from the workflow's working directory (the repository root).
set -euo pipefail
pip install -e .
