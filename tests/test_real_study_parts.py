"""The real-data study's parts: downsampled CTC copies, initial MAESTER weights, control variant names,
the study's grid."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from scipy import ndimage
from snakemake_cli import snakemake_cmd

from denselink import cli
from denselink.data.downsample import downsample_frame, downsample_mask
from denselink.data.manifest import SequenceManifest
from denselink.errors import ConfigError
from denselink.maester.checkpoint import read_checkpoint
from denselink.maester.model import build_model
from denselink.maester.settings import MaesterSettings
from denselink.maester.train import train
from denselink.pipeline import real
from denselink.settings import load_settings
from denselink.vocabulary import parse_variant

REPO = Path(__file__).resolve().parents[1]
CROP = REPO / "tests" / "data" / "ctc_sim_crop"


def test_downsample_frame_is_the_block_mean_in_the_same_dtype() -> None:
    frame = np.arange(36, dtype=np.uint16).reshape(6, 6)
    small = downsample_frame(frame, 4)  # cropped to 4 x 4, one block
    assert small.dtype == np.uint16 and small.tolist() == [[np.rint(frame[:4, :4].mean())]]
    assert downsample_frame(frame, 2)[0, 0] == np.rint((0 + 1 + 6 + 7) / 4)


def test_downsample_mask_keeps_a_cell_smaller_than_a_block() -> None:
    mask = np.zeros((8, 8), np.uint16)
    mask[0:4, 0:4] = 5  # block (0, 0): its centre (2, 2) is inside
    mask[5, 5] = 9  # one pixel: the centre sample (6, 6) misses it
    small, kept = downsample_mask(mask, 4)
    assert kept == [9]
    assert small.tolist() == [[5, 0], [0, 9]]


def test_downsample_mask_refuses_two_cells_on_one_pixel() -> None:
    mask = np.zeros((4, 4), np.uint16)
    mask[0, 0], mask[0, 1] = 3, 4
    with pytest.raises(ValueError, match="cannot be kept"):
        downsample_mask(mask, 4)


def test_downsampled_crop_validates_and_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "crop_x2"
    argv = ["data", "downsample", "--dataset-dir", str(CROP), "--sequences", "01", "02", "--factor", "2"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    record = json.loads((out / "downsample.json").read_text())
    assert record["factor"] == 2
    assert record["sequences"]["02"]["shape_after"] == [[120, 128]]
    manifest = tmp_path / "02.json"
    argv = ["data", "validate", "--dataset-dir", str(out), "--dataset", "crop", "--seq", "02"]
    assert cli.main([*argv, "--out", str(manifest)]) == 0  # every track kept in every frame of its span
    assert json.loads(manifest.read_text())["shape"] == [120, 128]
    assert (out / "02_GT" / "TRA" / "man_track.txt").read_text() == (
        CROP / "02_GT" / "TRA" / "man_track.txt"
    ).read_text()


def test_save_initial_keeps_the_seeded_weights_before_any_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for t in range(4):
        path = tmp_path / f"t{t:03d}.tif"
        tifffile.imwrite(path, (ndimage.gaussian_filter(rng.random((40, 40)), 2) * 4000).astype(np.uint16))
        frames.append(path)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(SequenceManifest("toy", "01", frames, (40, 40), "uint16").to_dict()))
    model = {"img_size": 20, "patch_size": 5, "embed_dim": 8, "depth": 1, "num_heads": 1,
             "decoder_embed_dim": 8, "decoder_depth": 1, "decoder_num_heads": 1}  # fmt: skip
    schedule = {"epochs": 1, "save_epochs": [0], "samples_per_epoch": 32, "batch_size": 8,
                "num_workers": 0, "lr": 1e-2, "device": "cpu", "save_initial": True}  # fmt: skip
    settings = load_settings(MaesterSettings, json.dumps({"model": model, "train": schedule}))
    done = train([manifest], tmp_path / "run", settings)
    assert done["initial"] == "checkpoints/init.pt"
    initial = read_checkpoint(tmp_path / "run" / "checkpoints" / "init.pt")
    trained = read_checkpoint(tmp_path / "run" / "checkpoints" / "epoch0.pt")
    seeded = build_model(settings.model, settings.train.seed).state_dict()
    assert initial["epoch"] is None
    for name, tensor in seeded.items():
        assert torch.equal(initial["state_dict"][name], tensor), name
    assert any(not torch.equal(initial["state_dict"][k], v) for k, v in trained["state_dict"].items())


def test_control_variant_names_parse_and_reject_typos() -> None:
    initial = parse_variant("maester-gowt1_02-init-centroid-add_wrfeat")
    assert (initial.backbone, initial.run, initial.epoch) == ("maester", "gowt1_02", None)
    assert initial.long_label == "MAESTER (gowt1_02, random initial weights)"
    handcrafted = parse_variant("handcrafted-mma-add_wrfeat")
    assert (handcrafted.backbone, handcrafted.agg) == ("handcrafted", "mma")
    with pytest.raises(ConfigError, match="handcrafted"):
        parse_variant("handcraft-mma-add_wrfeat")


def _real_config() -> dict:
    return yaml.safe_load((REPO / "workflow" / "configs" / "real.yaml").read_text())


def test_real_config_arms_and_inputs() -> None:
    cfg = _real_config()
    real.check_real_gain(cfg)
    assert real.arm_variants(cfg, "Fluo-N2DH-GOWT1") == {
        "retrained": "retrained",
        "maester": "maester-gowt1_02-epoch19-centroid-add_wrfeat",
        "maester_paper": "maester-gowt1_01-epoch19-centroid-add_wrfeat",
        "maester_untrained": "maester-gowt1_02-init-centroid-add_wrfeat",
        "handcrafted": "handcrafted-mma-add_wrfeat",
    }
    spec = real.dataset_inputs(cfg, "Fluo-N2DH-SIM+")
    assert spec["downsample"] == 3 and (spec["train_seq"], spec["eval_seq"]) == ("02", "01")
    assert [run["seed"] for run in spec["arms"]["handcrafted"]] == list(range(8))
    assert spec["arms"]["retrained"][3]["metrics"] == (
        "results/real/metrics/Fluo-N2DH-SIM+/clean/02-01/retrained/seed3.json"
    )
    assert real.dataset_folder(cfg, "Fluo-N2DH-GOWT1") == "results/real/downsampled/Fluo-N2DH-GOWT1"
    assert len(real.input_files(cfg)) == 3 * (2 + 5 * 8 * 3)  # 3 datasets: manifests; metrics, tracks, model


def test_real_config_checks_name_the_key() -> None:
    cfg = _real_config()
    cfg["real_gain"]["maester"]["Fluo-N2DH-GOWT1"]["train"] = "gowt1_01"
    with pytest.raises(ConfigError, match="real_gain.maester.Fluo-N2DH-GOWT1.train"):
        real.check_real_gain(cfg)
    cfg = _real_config()
    cfg["maester"]["train"]["save_initial"] = False
    with pytest.raises(ConfigError, match="save_initial"):
        real.check_real_gain(cfg)
    cfg = _real_config()
    cfg["real_gain"]["maester"]["Fluo-N2DH-SIM+"]["epoch"] = 7
    with pytest.raises(ConfigError, match="save_epochs"):
        real.check_real_gain(cfg)


def test_dry_run_of_the_study_before_its_data_is_downloaded(tmp_path: Path) -> None:
    """The downsampling job's command names the dataset folder before the download that fills it is done."""
    cmd = snakemake_cmd(
        tmp_path, "-n", "-p", "real_gain", config=REPO / "workflow/configs/real.yaml", profile=None
    )
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert (
        "denselink data downsample --dataset-dir data/Fluo-N2DH-GOWT1 --sequences 01 02 --factor 4"
        in done.stdout
    )
