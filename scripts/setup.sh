#!/usr/bin/env bash
# Create .venv at the repository root from the project's own files (idempotent).
#   scripts/setup.sh            # install (or check) .venv
# Torch is the CPU build pinned by envs/constraints-cpu.txt (PyTorch's CPU index is added when reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
python=${PYTHON:-python3}

stamp=.venv/.denselink-installed
inputs_hash=$(cat pyproject.toml envs/constraints-cpu.txt | sha256sum | cut -d' ' -f1)
if [[ -x .venv/bin/python && -f $stamp && "$(cat "$stamp")" == "$inputs_hash" ]] \
  && .venv/bin/python -c "import denselink, torch, trackastra, snakemake" 2>/dev/null; then
  echo "setup: .venv is up to date ($(($(date +%s) - start)) s)"
  exit 0
fi

[[ -x .venv/bin/python ]] || "$python" -m venv .venv
extra=()
if "$python" - <<'PY' 2>/dev/null; then
import urllib.request
urllib.request.urlopen("https://download.pytorch.org/whl/cpu/torch/", timeout=5)
PY
  extra=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
.venv/bin/pip install --quiet "${extra[@]}" -c envs/constraints-cpu.txt -e ".[dev]"
# trackastra declares torchvision; PyPI's wheel is a CUDA build that cannot load beside CPU torch.
.venv/bin/pip uninstall --quiet -y torchvision || true
.venv/bin/python -c "import denselink, torch, trackastra, snakemake; print('torch', torch.__version__)"
echo "$inputs_hash" > "$stamp"
echo "setup: .venv ready in $(($(date +%s) - start)) s ($(du -sh .venv | cut -f1))"
