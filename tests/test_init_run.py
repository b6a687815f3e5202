"""End to end: from a CTC folder to Table 1 with `denselink init` and one snakemake command (minutes)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from denselink.init import write_config

REPO = Path(__file__).resolve().parents[1]
CROP = REPO / "tests" / "data" / "ctc_sim_crop"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
DATASET = "Fluo-N2DH-SIM+"
VARIANTS = ("retrained", "maester-fluo_n2dh_sim_01-epoch7-centroid-add_wrfeat")

pytestmark = pytest.mark.slow


def check_table1_run(results: Path) -> None:
    """Table 1 of the crop's init config: both directions of both variants, their LZW CTC results."""
    table = pd.read_csv(results / "tables" / "table1.csv")
    assert set(table["dataset"]) == {DATASET}
    assert DATASET in (results / "tables" / "table1.md").read_text()
    for direction, frames in (("02-01", 24), ("01-02", 24)):
        for variant in VARIANTS:
            for seed in (0, 1, 2):
                res = results / "tracks" / DATASET / "clean" / direction / variant / f"seed{seed}"
                masks = sorted(res.glob("mask*.tif"))
                assert len(masks) == frames and (res / "res_track.txt").is_file()
                with tifffile.TiffFile(masks[0]) as tif:
                    assert tif.pages.first.compression.name == "LZW"


def test_init_config_runs_table1_on_the_crop(tmp_path: Path) -> None:
    data = tmp_path / "data" / DATASET
    shutil.copytree(CROP, data, ignore=shutil.ignore_patterns("*.md", "*.py"))
    config = write_config([data], tmp_path / "my_config.yaml", "cpu", workdir=tmp_path)
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tmp_path),
        "--profile",
        str(REPO / "profiles/ci"),
    ]
    result = subprocess.run([*cmd, "--configfile", str(config)], capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    check_table1_run(tmp_path / "results")
