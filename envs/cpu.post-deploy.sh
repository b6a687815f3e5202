#!/usr/bin/env bash
# Runs inside the new env, from the workflow's working directory (the repository root).
set -euo pipefail
pip install --extra-index-url https://download.pytorch.org/whl/cpu -c envs/constraints-cpu.txt -e .
# trackastra declares torchvision, whose PyPI wheel is a CUDA build that breaks CPU torch; nothing needs it.
pip uninstall -y torchvision
