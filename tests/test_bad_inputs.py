"""Malformed inputs stop with one line naming the file and the problem, before expensive work.

Each case breaks generated data (``denselink data synth``) or a config the way a user would meet
it: through the ``denselink`` command (exit code 2, one ``denselink: ...`` line on stderr) and,
for config and data problems, through ``snakemake`` on a copy of the mini config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = Path(os.environ.get("SNAKEFILE_UNDER_TEST", REPO / "Snakefile"))
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SYNTH = {"shape": [32, 32], "n_frames": 5, "n_cells": 3, "sequences": ["01", "02"], "seed": 0}
TRACKING = {"window": 4, "d_model": 32, "nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1}
TRACKING |= {"epochs": 1, "batch_size": 2, "train_samples": 4, "crop_size": None, "max_tokens": 256}


def denselink(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "denselink"), *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd
    )


def one_error_line(proc: subprocess.CompletedProcess[str], path: str | Path, problem: str) -> str:
    """The single ``denselink:`` line of a failed command; it must name ``path`` and ``problem``."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("denselink: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr
    assert str(path) in errors[0] and problem in errors[0], errors[0]
    print(errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid generated CTC dataset (sequences 01 and 02, 5 frames of 32 x 32)."""
    out = tmp_path_factory.mktemp("pristine") / "Synth"
    proc = denselink("data", "synth", "--out", out, "--settings", json.dumps(SYNTH))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def dataset(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the valid dataset to break."""
    return Path(shutil.copytree(pristine, tmp_path / "Synth"))


def validate(dataset_dir: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return denselink(
        "data", "validate", "--dataset-dir", dataset_dir, "--dataset", "Synth", "--seq", "01", "--out", out
    )


def test_valid_dataset_passes(dataset: Path, tmp_path: Path) -> None:
    proc = validate(dataset, tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["shape"] == [32, 32]


def _rm_tra(d: Path) -> Path:
    shutil.rmtree(d / "01_GT" / "TRA")
    return d / "01_GT" / "TRA"


def _drop_last_frame(d: Path) -> Path:
    (d / "01" / "t004.tif").unlink()
    return d / "01_GT" / "TRA"


def _corrupt(d: Path) -> Path:
    (d / "01" / "t002.tif").write_bytes(np.random.default_rng(0).bytes(600))
    return d / "01" / "t002.tif"


def _truncate(d: Path) -> Path:
    path = d / "01" / "t002.tif"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _float_mask(d: Path) -> Path:
    path = d / "01_GT" / "TRA" / "man_track002.tif"
    tifffile.imwrite(path, tifffile.imread(path).astype(np.float32))
    return path


def _absent_label(d: Path) -> Path:
    path = d / "01_GT" / "TRA" / "man_track.txt"
    path.write_text(path.read_text() + "9 1 3 0\n")
    return path


def _parent_after_child(d: Path) -> Path:
    path = d / "01_GT" / "TRA" / "man_track.txt"
    rows = [line.split() for line in path.read_text().splitlines()]
    rows[0][3] = rows[-1][0]  # the first track (starts at 0) gets the last track as its parent
    rows[-1][1] = "2"  # the parent now starts at frame 2
    path.write_text("".join(" ".join(r) + "\n" for r in rows))
    return path


def _empty(d: Path) -> Path:
    for frame in (d / "01").glob("*.tif"):
        frame.unlink()
    return d / "01"


def _bad_man_track_line(d: Path) -> Path:
    path = d / "01_GT" / "TRA" / "man_track.txt"
    path.write_text(path.read_text() + "7 1 x 0\n")
    return path


CTC_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing TRA folder": (_rm_tra, "directory is missing"),
    "frame count mismatch": (_drop_last_frame, "5 TRA masks but 4 raw frames"),
    "corrupt TIFF": (_corrupt, "unreadable or corrupt TIFF"),
    "truncated TIFF": (_truncate, "truncated TIFF"),
    "float masks": (_float_mask, "mask dtype float32 is not an integer type"),
    "man_track.txt names an absent label": (_absent_label, "track 9 (1-3) is absent from its frame 1"),
    "parent starts after its child": (_parent_after_child, "not before its child"),
    "empty sequence": (_empty, "no raw frame files (empty sequence)"),
    "man_track.txt line not integers": (_bad_man_track_line, "line 4: not an integer"),
}


@pytest.mark.parametrize("case", list(CTC_CASES))
def test_broken_ctc_sequence_is_named(case: str, dataset: Path, tmp_path: Path) -> None:
    breaker, problem = CTC_CASES[case]
    culprit = breaker(dataset)
    one_error_line(validate(dataset, tmp_path / "m.json"), culprit, problem)
    assert not (tmp_path / "m.json").exists()


def test_dataset_dir_that_does_not_exist(tmp_path: Path) -> None:
    one_error_line(
        validate(tmp_path / "nope", tmp_path / "m.json"), tmp_path / "nope" / "01", "directory is missing"
    )


SETTINGS_CASES = {
    "unknown settings key": ('{"n_framez": 3}', "n_framez: Extra inputs are not permitted"),
    "wrong type in settings": ('{"n_frames": "ten"}', "n_frames: Input should be a valid integer"),
    "settings not JSON": ('{"n_frames": 3', "not valid JSON"),
}


@pytest.mark.parametrize("case", list(SETTINGS_CASES))
def test_bad_settings_are_named(case: str, tmp_path: Path) -> None:
    settings, problem = SETTINGS_CASES[case]
    proc = denselink("data", "synth", "--out", tmp_path / "out", "--settings", settings)
    one_error_line(proc, "--settings", problem)
    assert not (tmp_path / "out").exists()


def test_settings_file_that_does_not_exist(tmp_path: Path) -> None:
    proc = denselink("data", "synth", "--out", tmp_path / "out", "--settings", tmp_path / "synth.yaml")
    one_error_line(proc, tmp_path / "synth.yaml", "settings file does not exist")


def test_even_maester_patch_size(tmp_path: Path) -> None:
    settings = json.dumps({"model": {"patch_size": 4, "img_size": 20}})
    proc = denselink(
        "maester",
        "train",
        "--manifest",
        tmp_path / "m.json",
        "--out",
        tmp_path / "run",
        "--settings",
        settings,
    )
    one_error_line(proc, "--settings", "patch_size must be odd for cover-and-stride inference, got 4")
    assert not (tmp_path / "run").exists()


def test_missing_maester_checkpoint(tmp_path: Path) -> None:
    proc = denselink(
        "maester", "infer", "--checkpoint", tmp_path / "epoch2.pt", "--manifest", tmp_path / "m.json",
        "--out", tmp_path / "e.zarr", "--settings", '{"device": "cpu"}',
    )  # fmt: skip
    assert proc.returncode == 2 and str(tmp_path) in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "e.zarr").exists()


def _feature_table(manifest: Path, out: Path, dim: int = 4) -> pd.DataFrame:
    """A complete feature table of the manifest's cells (random features)."""
    data = json.loads(manifest.read_text())
    rows = []
    for t, mask_path in enumerate(data["masks"]):
        mask = tifffile.imread(mask_path)
        for label in np.unique(mask[mask > 0]).tolist():
            ys, xs = np.nonzero(mask == label)
            rows.append({"frame": t, "label": label, "y": ys.mean(), "x": xs.mean(), "area": len(ys)})
    table = pd.DataFrame(rows)
    features = np.random.default_rng(0).normal(size=(len(table), dim)).astype(np.float32)
    for i in range(dim):
        table[f"f{i:03d}"] = features[:, i]
    table.to_parquet(out)
    return table


def test_feature_table_missing_a_cell_stops_training(pristine: Path, tmp_path: Path) -> None:
    manifest, cache = tmp_path / "m.json", tmp_path / "01.pt"
    assert validate(pristine, manifest).returncode == 0
    proc = denselink(
        "tracking", "prepare", "--manifest", manifest, "--out", cache, "--settings", json.dumps(TRACKING)
    )
    assert proc.returncode == 0, proc.stderr
    table = _feature_table(manifest, tmp_path / "full.parquet")
    dropped = table.iloc[len(table) // 2]
    table.drop(index=dropped.name).to_parquet(tmp_path / "holed.parquet")
    settings = json.dumps(TRACKING | {"fusion": "add_wrfeat"})
    run = tmp_path / "run"
    proc = denselink(
        "tracking", "train", "--data", cache, "--features", tmp_path / "holed.parquet",
        "--out", run, "--seed", "0", "--settings", settings,
    )  # fmt: skip
    problem = f"no features for the cell at frame {int(dropped.frame)}, label {int(dropped.label)}"
    one_error_line(proc, tmp_path / "holed.parquet", problem)
    assert not run.exists()


# --------------------------------------------------------------------------- through snakemake
def snakemake(
    workdir: Path, config: dict, *targets: str, dry: bool = True
) -> subprocess.CompletedProcess[str]:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    flags = ["-n"] if dry else ["--cores", "1"]
    cmd = [str(BIN / "snakemake"), "--snakefile", str(SNAKEFILE), "--directory", str(workdir)]
    cmd += ["--configfile", str(workdir / "config.yaml"), *flags, *targets]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    proc.stderr = proc.stdout + proc.stderr  # snakemake prints some errors on stdout
    return proc


def mini() -> dict:
    return yaml.safe_load((REPO / "workflow" / "configs" / "mini.yaml").read_text())


TRAIN_TARGET = "results/mini/models/Synth-HeLa/clean/train02/retrained/seed0/done.json"


def _unknown_key(c: dict) -> tuple[str, str]:
    c["tracking"]["settings"]["epochz"] = 3
    return "tracking.settings", "'epochz' was unexpected"


def _wrong_type(c: dict) -> tuple[str, str]:
    c["tracking"]["settings"]["epochs"] = "ten"
    return "tracking.settings.epochs", "'ten' is not of type 'integer'"


def _no_dataset_dir(c: dict) -> tuple[str, str]:
    c["data_root"] = "absent"
    c["datasets"]["Synth-HeLa"] = {"source": "ctc", "download": False, "sequences": ["01", "02"]}
    return "absent/Synth-HeLa", ""


CONFIG_CASES = {"unknown config key": _unknown_key, "wrong type in config": _wrong_type}
CONFIG_CASES |= {"dataset dir does not exist": _no_dataset_dir}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_snakemake_refuses_bad_config(case: str, tmp_path: Path) -> None:
    config = mini()
    key, problem = CONFIG_CASES[case](config)
    proc = snakemake(tmp_path, config, TRAIN_TARGET)
    assert proc.returncode != 0
    assert key in proc.stderr and problem in proc.stderr, proc.stderr[-2000:]
    assert "Job stats" not in proc.stderr  # stopped before planning any job


def _even_patch(c: dict) -> tuple[str, str]:
    c["maester"]["model"]["patch_size"] = 4
    return "maester", "patch_size must be odd"


def _results_root_a_parent(c: dict) -> tuple[str, str]:
    c["results_root"] = ".."
    return "results_root", "is a parent of the working directory"


@pytest.mark.parametrize(
    "case", [_even_patch, _results_root_a_parent], ids=["even patch size", "results root a parent"]
)
def test_snakemake_preflight_refuses(case: Callable[[dict], tuple[str, str]], tmp_path: Path) -> None:
    config = mini()
    key, problem = case(config)
    proc = snakemake(tmp_path, config, TRAIN_TARGET)
    assert proc.returncode != 0
    assert f"{key}: " in proc.stderr and problem in proc.stderr, proc.stderr[-2000:]
    assert "Job stats" not in proc.stderr


def test_snakemake_run_on_broken_data_stops_at_validation(pristine: Path, tmp_path: Path) -> None:
    data_root = tmp_path / "raw"
    shutil.copytree(pristine, data_root / "Synth-HeLa")
    culprit = data_root / "Synth-HeLa" / "02_GT" / "TRA" / "man_track002.tif"
    tifffile.imwrite(culprit, tifffile.imread(culprit).astype(np.float32))
    config = mini()
    config["data_root"] = str(data_root)
    config["datasets"]["Synth-HeLa"] = {"source": "ctc", "download": False, "sequences": ["01", "02"]}
    proc = snakemake(tmp_path, config, TRAIN_TARGET, dry=False)
    assert proc.returncode != 0
    assert "Error in rule data_validate" in proc.stderr, proc.stderr[-2000:]
    log = tmp_path / "results" / "mini" / "logs" / "data_validate" / "Synth-HeLa" / "02.log"
    line = log.read_text().strip().splitlines()[-1]
    assert line == f"denselink: CTC format error: {culprit}: mask dtype float32 is not an integer type"
    print(line)
    made = {p.name for p in (tmp_path / "results" / "mini").iterdir()}
    assert made <= {"logs", "benchmarks", "data"}, made  # no trackastra data, models, embeddings
    assert not list((tmp_path / "results" / "mini").rglob("manifest.json"))
