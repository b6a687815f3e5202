"""The real-data study's DAG run by Snakemake at tiny size on the real crop (tests/data/ctc_sim_crop).

workflow/configs/real.yaml with tiny models, 2 seeds and a few epochs, on one dataset: the crop of
Fluo-N2DH-SIM+, downsampled by 2 through the pipeline's own copy. Every arm is trained and scored, and
`denselink evaluate real-gain` writes the JSON and the forest plot.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from denselink.pipeline.real import ARMS

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
DATASET = "ctc_sim_crop"

# ~40 jobs (2 MAESTER runs, 6 inferences, 10 trainings, 5 scorings, ...), each starting torch: minutes
pytestmark = pytest.mark.slow


def tiny_config(base: Path) -> dict:
    """real.yaml on the crop: one dataset, 2 seeds, a few epochs."""
    config = yaml.safe_load((REPO / "workflow/configs/real.yaml").read_text())
    runs = {"crop_02": [f"{DATASET}/02"], "crop_01": [f"{DATASET}/01"]}
    config.update(results_root=str(base / "results"), data_root=str(REPO / "tests" / "data"))
    config["datasets"] = {DATASET: {"source": "ctc", "sequences": ["01", "02"], "downsample": 2}}
    config["maester"]["runs"] = runs
    config["maester"]["train"].update(samples_per_epoch=32, epochs=2, save_epochs=[1])
    config["tracking"]["seeds"] = [0, 1]
    config["tracking"]["settings"].update(epochs=3, train_samples=16, spatial_pos_cutoff=32)
    config["real_gain"].update(
        datasets=[DATASET],
        maester={DATASET: {"train": "crop_02", "paper": "crop_01", "epoch": 1}},
        out=str(base / "out" / "real_gain.json"),
    )
    config["table1"].update(datasets=[DATASET], maester={DATASET: {"run": "crop_02", "epoch": 1}})
    config["appendix_c"] = {
        "dataset": DATASET,
        "protocols": ["clean"],
        "compute_scaling": {"run": "crop_02", "epochs": [1]},
        "transfer": {"runs": [{"run": "crop_02", "epoch": 1}]},
        "data_scaling": {"runs": ["crop_02"], "epochs": [1]},
    }
    return config


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:
    base = tmp_path_factory.mktemp("real_gain")
    workdir = base / "work"
    workdir.mkdir()
    config_file = workdir / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(tiny_config(base)))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--profile"]
    cmd += [str(REPO / "profiles/ci")]
    cmd += ["real_gain", "--configfile", str(config_file)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("DENSELINK_")}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    out = base / "out" / "real_gain.json"
    return json.loads(out.read_text()), config_file, base


def test_every_arm_every_seed_scored(study: tuple[dict, Path, Path]) -> None:
    result, config_file, base = study
    assert result["config_sha256"] == hashlib.sha256(config_file.read_bytes()).hexdigest()
    assert result["version"] == yaml.safe_load(config_file.read_text())["real_gain"]["version"]
    assert result["seeds"] == [0, 1]
    data = result["datasets"][DATASET]
    assert data["downsample"] == 2
    assert [arm["name"] for arm in data["arms"]] == list(ARMS)
    for arm in data["arms"]:
        assert arm["n"] == 2 and [s["seed"] for s in arm["seeds"]] == [0, 1]
        for seed in arm["seeds"]:
            assert 0 <= seed["LNK"] <= 1 and seed["LNK_rescored"] == pytest.approx(seed["LNK"], abs=1e-9)
            metrics = base / "results" / "metrics" / DATASET / "clean" / "02-01" / arm["variant"]
            assert json.loads((metrics / f"seed{seed['seed']}.json").read_text())["LNK"] == seed["LNK"]
        assert arm["lnk_mean"] == pytest.approx(np.mean([s["LNK"] for s in arm["seeds"]]))
    baseline = {s["seed"]: s["LNK"] for s in data["arms"][0]["seeds"]}
    maester = data["arms"][1]
    diffs = [s["LNK"] - baseline[s["seed"]] for s in maester["seeds"]]
    assert maester["delta_mean"] == pytest.approx(np.mean(diffs))
    assert data["arms"][0]["delta_mean"] is None and data["arms"][-1]["vs_handcrafted"] is None


def test_downsampled_copy_recorded_and_hard_links_counted(study: tuple[dict, Path, Path]) -> None:
    result, _, base = study
    record = json.loads((base / "results" / "downsampled" / DATASET / "downsample.json").read_text())
    assert record["factor"] == 2
    assert record["sequences"]["01"]["shape_after"] == [[128, 120]]
    counts = result["datasets"][DATASET]["hard_links"]
    assert set(counts) == {"01", "02"}
    assert counts["02"]["validation_first_frame"] == 24 - 6  # the last quarter of 24 frames
    assert 0 < counts["02"]["validation_links"] < counts["02"]["links"]
    assert counts["01"]["hard"] <= counts["01"]["links"]


def test_forest_plot_written(study: tuple[dict, Path, Path]) -> None:
    _, _, base = study
    png = base / "out" / "real_gain.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (base / "out" / "real_gain.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and not line.startswith("| arm |")]
    assert [row.split(" | ")[0] for row in rows] == [f"| {arm}" for arm in ARMS]


def test_how_each_training_ended_recorded(study: tuple[dict, Path, Path]) -> None:
    result, _, base = study
    for arm in result["datasets"][DATASET]["arms"]:
        for seed in arm["seeds"]:
            model = base / "results" / "models" / DATASET / "clean" / "train02" / arm["variant"]
            done = json.loads((model / f"seed{seed['seed']}" / "done.json").read_text())
            assert (seed["epochs_run"], seed["stopped_early"]) == (done["epochs_run"], done["stopped_early"])
            assert seed["best_val_epoch"] == done["best_val_epoch"] and 1 <= seed["epochs_run"] <= 3
        assert arm["stopped_early"] == sum(s["stopped_early"] for s in arm["seeds"])
        assert arm["chose_last_epoch"] == sum(s["epoch"] == s["epochs_run"] - 1 for s in arm["seeds"])
