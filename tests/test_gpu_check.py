"""``scripts/gpu_check.sh`` fails loudly, with one line and no results file, where CUDA is absent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def test_gpu_check_without_cuda_fails_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a GPU node
    proc = subprocess.run([str(SCRIPT), "--out", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"gpu_check: FAILED: CUDA is not available (torch {torch.__version__}); nothing was run"
    ]
    assert not out.exists()
