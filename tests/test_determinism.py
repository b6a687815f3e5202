"""The same config and seed give identical outputs on rerun (CPU), through the real commands."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SYNTH = {"shape": [32, 32], "n_frames": 6, "n_cells": 3, "sequences": ["01", "02"], "seed": 0}
TRACKING = {"window": 4, "d_model": 32, "nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1}
TRACKING |= {"epochs": 2, "warmup_epochs": 1, "batch_size": 2, "train_samples": 8, "crop_size": None}
TRACKING |= {"max_tokens": 256, "val_fraction": 0.0, "augment": 1}
MODEL = {"img_size": 20, "patch_size": 5, "embed_dim": 16, "depth": 1, "num_heads": 1}
MODEL |= {"decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 1}
MAESTER_TRAIN = {"batch_size": 4, "samples_per_epoch": 16, "epochs": 2, "save_epochs": [1]}
MAESTER_TRAIN |= {"num_workers": 0, "device": "cpu", "seed": 7}


def denselink(*args: str | Path) -> None:
    proc = subprocess.run([str(BIN / "denselink"), *map(str, args)], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated data, validated: manifests of sequences 01 and 02."""
    root = tmp_path_factory.mktemp("determinism")
    denselink("data", "synth", "--out", root / "Synth", "--settings", json.dumps(SYNTH))
    out = {}
    for seq in ("01", "02"):
        out[seq] = root / f"{seq}.json"
        denselink(
            "data",
            "validate",
            "--dataset-dir",
            root / "Synth",
            "--dataset",
            "Synth",
            "--seq",
            seq,
            "--out",
            out[seq],
        )
    return out


def test_same_seed_gives_byte_identical_metrics(manifests: dict[str, Path], tmp_path: Path) -> None:
    settings = json.dumps(TRACKING)
    cache, run, metrics, res = (tmp_path / name for name in ("02.pt", "run", "seed3.json", "RES"))
    denselink("tracking", "prepare", "--manifest", manifests["02"], "--out", cache, "--settings", settings)
    results = []
    for _ in range(2):  # the same paths both times, so paths recorded in the outputs agree too
        shutil.rmtree(run, ignore_errors=True)
        denselink("tracking", "train", "--data", cache, "--out", run, "--seed", "3", "--settings", settings)
        denselink(
            "tracking", "evaluate", "--model-dir", run, "--manifest", manifests["01"], "--protocol", "paper",
            "--out", metrics, "--res-dir", res, "--settings", settings,
        )  # fmt: skip
        checkpoints = sorted((run / "checkpoints").glob("epoch*.pt"))
        weights = [torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in checkpoints]
        results.append((metrics.read_bytes(), (res / "res_track.txt").read_bytes(), weights))
    (first_metrics, first_tracks, first_weights), (second_metrics, second_tracks, second_weights) = results
    assert first_metrics == second_metrics
    assert first_tracks == second_tracks
    assert len(first_weights) == len(second_weights) == TRACKING["epochs"]
    for a, b in zip(first_weights, second_weights, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads(first_metrics)
    assert len(record["per_epoch"]) == TRACKING["epochs"] and 0.0 <= record["LNK"] <= 1.0


def test_different_seed_gives_different_weights(manifests: dict[str, Path], tmp_path: Path) -> None:
    settings = json.dumps(TRACKING | {"epochs": 1})
    cache = tmp_path / "02.pt"
    denselink("tracking", "prepare", "--manifest", manifests["02"], "--out", cache, "--settings", settings)
    weights = []
    for seed in ("0", "1"):
        denselink(
            "tracking",
            "train",
            "--data",
            cache,
            "--out",
            tmp_path / seed,
            "--seed",
            seed,
            "--settings",
            settings,
        )
        weights.append(
            torch.load(tmp_path / seed / "checkpoints" / "epoch000.pt", weights_only=False)["state_dict"]
        )
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_maester_train_and_infer_are_reproducible(manifests: dict[str, Path], tmp_path: Path) -> None:
    settings = json.dumps({"model": MODEL, "train": MAESTER_TRAIN})
    infer = json.dumps({"device": "cpu", "batch_size": 64, "tile": 16})
    arrays, losses = [], []
    for name in ("a", "b"):
        run = tmp_path / name
        denselink("maester", "train", "--manifest", manifests["01"], "--out", run, "--settings", settings)
        checkpoint = run / "checkpoints" / "epoch1.pt"
        out = tmp_path / f"{name}.zarr"
        denselink(
            "maester", "infer", "--checkpoint", checkpoint, "--manifest", manifests["02"],
            "--out", out, "--settings", infer,
        )  # fmt: skip
        arrays.append(np.asarray(zarr.open_group(out, mode="r")["embedding"][...]))
        losses.append(pd.read_csv(run / "loss.csv")["loss"].to_numpy())  # its other columns are timings
    assert arrays[0].shape == (SYNTH["n_frames"], MODEL["embed_dim"], *SYNTH["shape"])
    assert arrays[0].dtype == np.float16 and np.isfinite(arrays[0]).all()
    assert np.array_equal(arrays[0], arrays[1])
    assert len(losses[0]) == MAESTER_TRAIN["epochs"] and np.array_equal(losses[0], losses[1])
