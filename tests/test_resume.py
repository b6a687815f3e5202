"""Kill the pipeline in the middle of training, rerun the same command, get the uninterrupted outputs.

One scored model of the mini config (generated data -> validate -> trackastra cache -> train ->
evaluate) runs once uninterrupted; its outputs are set aside, the model, metrics and tracks are
removed, and the run is started again and SIGKILLed (whole process group) while training writes
its checkpoints. The same command then finishes the run; outputs must equal the reference.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ROOT = "results/mini"
METRICS = f"{ROOT}/metrics/Synth-HeLa/clean/02-01/retrained/seed0.json"
MODEL = f"{ROOT}/models/Synth-HeLa/clean/train02/retrained/seed0"
TRACKS = f"{ROOT}/tracks/Synth-HeLa/clean/02-01/retrained/seed0"
EPOCHS = 8


def config() -> dict:
    """The mini config with training long enough (several epochs) to be interrupted."""
    cfg = yaml.safe_load((REPO / "workflow" / "configs" / "mini.yaml").read_text())
    cfg["datasets"]["Synth-HeLa"]["synth"] |= {"shape": [48, 48], "n_frames": 8, "n_cells": 4}
    cfg["tracking"]["settings"] |= {"epochs": EPOCHS, "train_samples": 48}
    return cfg


def command(workdir: Path) -> list[str]:
    return [
        str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"), "--cores", "1", METRICS,
    ]  # fmt: skip


def run(workdir: Path) -> None:
    proc = subprocess.run(command(workdir), capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def snapshot(workdir: Path) -> dict[str, object]:
    """Everything the run produced downstream of the cache: bytes of files, tensors of checkpoints."""
    out: dict[str, object] = {}
    for top in (MODEL, TRACKS, METRICS, f"{ROOT}/trackastra_data", f"{ROOT}/data"):
        base = workdir / top
        for path in sorted([base] if base.is_file() else base.rglob("*")):
            if not path.is_file():
                continue
            key = str(path.relative_to(workdir))
            if path.suffix == ".pt" and "checkpoints" in path.parts:
                out[key] = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
            elif path.name == "train_log.csv":  # its last column is wall time
                out[key] = [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]
            else:
                out[key] = path.read_bytes()
    return out


def equal(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def kill_during_training(workdir: Path, timeout: float = 180.0) -> int:
    """Start the run, SIGKILL its process group once training saved a checkpoint; epochs saved then."""
    proc = subprocess.Popen(
        command(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        start_new_session=True,
    )
    checkpoints = workdir / MODEL / "checkpoints"
    deadline = time.monotonic() + timeout
    try:
        while not list(checkpoints.glob("epoch*.pt")):
            assert proc.poll() is None, "the run ended before training began"
            assert time.monotonic() < deadline, "training did not start in time"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return len(list(checkpoints.glob("epoch*.pt")))


def test_killed_run_resumes_to_identical_outputs(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(config()))
    run(work)
    reference = snapshot(work)
    assert len([k for k in reference if "checkpoints" in k]) == EPOCHS
    for path in (MODEL, TRACKS, METRICS):
        target = work / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    saved = kill_during_training(work)
    assert 1 <= saved < EPOCHS, f"killed after {saved} of {EPOCHS} epochs, not in the middle"
    assert not (work / MODEL / "done.json").exists() and not (work / METRICS).exists()

    # a SIGKILLed snakemake leaves its lock; the documented recovery is --unlock, then the same command
    unlock = subprocess.run([*command(work)[:-1], "--unlock"], capture_output=True, text=True, env=ENV)
    assert unlock.returncode == 0, unlock.stderr
    run(work)
    resumed = snapshot(work)
    assert resumed.keys() == reference.keys()
    assert equal(resumed, reference)
    leftovers = [p for p in (work / ROOT).rglob(".tmp-*")]
    assert leftovers == []
