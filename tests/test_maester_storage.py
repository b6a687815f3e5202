"""storage.keep_dense: false deletes a MAESTER volume once both of its feature tables exist (a real run)."""

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


def test_temp_volume_is_deleted_after_its_feature_tables(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "workflow/configs/mini.yaml").read_text())
    config.update(results_root="results", data_root="raw", storage={"keep_dense": {"maester": False}})
    config["mitocheck"]["root"] = "raw/mitocheck"
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump(config))
    stem = "results/features/Synth-HeLa/01/maester-synth-epoch3"
    targets = [f"{stem}-mma.parquet", f"{stem}-centroid.parquet"]
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--profile",
           str(REPO / "profiles/ci"), *targets, "--configfile", str(tmp_path / "mini.yaml")]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    for target in targets:
        table = pd.read_parquet(tmp_path / target)
        assert len(table) > 0 and "f015" in table.columns  # 16 channels of the mini MAESTER
    assert not (tmp_path / "results/embeddings/Synth-HeLa/01/maester-synth-epoch3.zarr").exists()
    assert "Removing temporary output" in result.stderr
