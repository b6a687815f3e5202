"""storage.keep_dense: false deletes a MAESTER volume once its feature tables exist; training still runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

pytestmark = pytest.mark.slow


def test_temp_volume_is_deleted_after_its_feature_tables_and_a_fused_model_trains(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "workflow/configs/mini.yaml").read_text())
    config.update(results_root="results", data_root="raw", storage={"keep_dense": {"maester": False}})
    config["mitocheck"]["root"] = "raw/mitocheck"
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump(config))
    stem = "results/features/Synth-HeLa/02/maester-synth-epoch3"
    variant = "maester-synth-epoch3-centroid-add_wrfeat"
    model = f"results/models/Synth-HeLa/clean/train02/{variant}/seed0/done.json"
    targets = [f"{stem}-mma.parquet", model]
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--profile",
           str(REPO / "profiles/ci"), *targets, "--configfile", str(tmp_path / "mini.yaml")]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    for agg in ("mma", "centroid"):
        table = pd.read_parquet(tmp_path / f"{stem}-{agg}.parquet")
        assert len(table) > 0 and "f015" in table.columns  # 16 channels of the mini MAESTER
    assert (tmp_path / model).is_file()  # the training recipe comes from the table, not the deleted volume
    assert not (tmp_path / "results/embeddings/Synth-HeLa/02/maester-synth-epoch3.zarr").exists()
    assert "Removing temporary output" in result.stderr
