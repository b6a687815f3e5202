"""MAESTER pretraining: DDP over two gloo processes, the checkpoint schedule, bitwise resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage

from denselink.data.manifest import SequenceManifest
from denselink.errors import ConfigError, DivergenceError
from denselink.maester.checkpoint import read_checkpoint
from denselink.maester.settings import PAPER_SAVE_EPOCHS, MaesterSettings, MaesterTrainSettings
from denselink.maester.train import train
from denselink.settings import load_settings

MINI_MODEL = {
    "img_size": 20, "patch_size": 5, "embed_dim": 16, "depth": 2, "num_heads": 1,
    "decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 1,
}  # fmt: skip


def mini_settings(**train: object) -> dict:
    base = {"epochs": 4, "save_epochs": [1, 3], "samples_per_epoch": 128, "batch_size": 16,
            "num_workers": 0, "lr": 1e-3, "device": "cpu"}  # fmt: skip
    return {"model": MINI_MODEL, "train": {**base, **train}}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seq")
    rng = np.random.default_rng(0)
    frames = []
    for t in range(8):
        image = ndimage.gaussian_filter(rng.random((48, 48)), 2.0)
        path = root / f"t{t:03d}.tif"
        tifffile.imwrite(path, (image / image.max() * 4000).astype(np.uint16))
        frames.append(path)
    path = root / "manifest.json"
    path.write_text(json.dumps(SequenceManifest("toy", "01", frames, (48, 48), "uint16").to_dict()))
    return path


def test_defaults_follow_the_paper() -> None:
    cfg = MaesterTrainSettings()
    assert (cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.samples_per_epoch) == (32, 6e-5, 1e-5, 20000)
    assert cfg.save_epochs == PAPER_SAVE_EPOCHS and cfg.epochs == 18250 and cfg.sampling == "frame"


def test_save_epochs_beyond_the_run_are_rejected() -> None:
    with pytest.raises(ConfigError, match="save_epochs"):
        load_settings(MaesterSettings, json.dumps(mini_settings(save_epochs=[4])))


def test_two_process_gloo_training_lowers_the_loss(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "denselink.cli", "maester", "train", "--manifest", str(manifest), "--out", str(out),
           "--settings", json.dumps(mini_settings())]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (out / "loss.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,seconds" and len(rows) == 5
    losses = [float(row.split(",")[1]) for row in rows[1:]]
    assert losses[-1] < 0.6 * losses[0]
    done = json.loads((out / "done.json").read_text())
    assert done["world_size"] == 2 and done["device"] == "cpu"
    assert done["checkpoints"] == {"1": "checkpoints/epoch1.pt", "3": "checkpoints/epoch3.pt"}
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch1.pt", "epoch3.pt", "last.pt"]
    assert not (out / "frames").exists()  # the decoded frames are removed once the run is done
    state = read_checkpoint(out / "checkpoints" / "epoch1.pt")
    assert state["epoch"] == 1 and state["world_size"] == 2 and len(state["loss_history"]) == 2


def test_resume_gives_the_same_state_as_an_uninterrupted_run(manifest: Path, tmp_path: Path) -> None:
    full = load_settings(MaesterSettings, json.dumps(mini_settings()))
    train([manifest], tmp_path / "full", full)
    half = load_settings(MaesterSettings, json.dumps(mini_settings(epochs=2, save_epochs=[1])))
    train([manifest], tmp_path / "resumed", half)
    train([manifest], tmp_path / "resumed", full, resume=True)
    a = read_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    b = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    moments = [(a["optimizer"]["state"][i], b["optimizer"]["state"][i]) for i in a["optimizer"]["state"]]
    assert all(torch.equal(x["exp_avg_sq"], y["exp_avg_sq"]) for x, y in moments)
    assert [row[1] for row in a["loss_history"]] == [row[1] for row in b["loss_history"]]
    assert (tmp_path / "full" / "loss.csv").read_text().split("\n")[1].split(",")[:2] == (
        (tmp_path / "resumed" / "loss.csv").read_text().split("\n")[1].split(",")[:2]
    )


def test_resume_with_other_model_settings_is_refused(manifest: Path, tmp_path: Path) -> None:
    train(
        [manifest],
        tmp_path / "run",
        load_settings(MaesterSettings, json.dumps(mini_settings(epochs=2, save_epochs=[]))),
    )
    other = mini_settings(epochs=3, save_epochs=[])
    other["model"] = {**MINI_MODEL, "depth": 3}
    with pytest.raises(ConfigError, match="model settings differ"):
        train([manifest], tmp_path / "run", load_settings(MaesterSettings, json.dumps(other)), resume=True)


def test_nan_pixels_stop_training_at_epoch_zero_without_a_checkpoint(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for t in range(4):
        image = rng.random((48, 48)).astype(np.float32)
        image[10:20, 10:20] = np.nan  # a float raw sequence with a NaN patch
        frames.append(tmp_path / f"t{t:03d}.tif")
        tifffile.imwrite(frames[-1], image)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(SequenceManifest("toy", "01", frames, (48, 48), "float32").to_dict()))
    settings = load_settings(MaesterSettings, json.dumps(mini_settings(epochs=2, save_epochs=[0, 1])))
    with pytest.raises(DivergenceError) as err:
        train([manifest], tmp_path / "run", settings)
    assert err.value.path == str(tmp_path / "run")
    assert err.value.problem.startswith("epoch 0: mean loss is nan; no checkpoint of this epoch was written")
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "done.json").exists()
