"""The authors' per-seed CSVs -> metrics JSONs -> paper-protocol Table 1, checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from denselink.evaluate.ingest import ingest, main
from denselink.evaluate.metrics import MetricsFormatError, read_metrics
from denselink.evaluate.table import main as table_main

# LNK per (seed, epoch); -1 marks a failed evaluation, dropped as the authors' script does.
LNK = {0: [0.90, 0.95, 0.93], 1: [0.92, 0.91, 0.96], 2: [0.94, 0.97, -1.0]}


def write_csvs(tmp_path: Path) -> list[Path]:
    paths = []
    for seed, values in LNK.items():
        path = tmp_path / f"run{seed}.csv"
        frame = pd.DataFrame({"epoch": [0, 1, 2], "TRA": [0.99] * 3, "DET": [0.995] * 3, "LNK": values})
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def test_ingest_picks_epoch_with_best_seed_mean(tmp_path: Path) -> None:
    # Epoch means: 0.92, 0.94333, (0.93 + 0.96) / 2 = 0.945 -> epoch 2 with two valid seeds.
    written = ingest(write_csvs(tmp_path), "Fluo-N2DL-HeLa", "retrained", tmp_path / "out")
    records = [read_metrics(path) for path in written]
    assert [r["seed"] for r in records] == [0, 1, 2]
    assert [r["checkpoint"] for r in records] == ["epoch2"] * 3
    assert [r["LNK"] for r in records] == [0.93, 0.96, None]
    assert records[2]["per_epoch"][2]["LNK"] is None
    assert records[0]["protocol"] == "paper" and records[0]["eval_seq"] == "02"


def test_ingested_table_mean_and_variance(tmp_path: Path) -> None:
    out = tmp_path / "metrics"
    assert (
        main(
            [
                "--csv",
                *map(str, write_csvs(tmp_path)),
                "--dataset",
                "Fluo-N2DL-HeLa",
                "--variant",
                "retrained",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    csv, md = tmp_path / "table1.csv", tmp_path / "table1.md"
    args = ["--metrics", *map(str, sorted(out.glob("*.json"))), "--out-csv", str(csv), "--out-md", str(md)]
    assert table_main([*args, "--protocols", "paper"]) == 0
    row = pd.read_csv(csv).iloc[0]
    assert row["n_seeds"] == 2 and row["epochs"] == "2 2"
    assert row["LNK_mean"] == pytest.approx(0.945)
    assert row["LNK_var"] == pytest.approx(np.var([0.93, 0.96]))  # 2.25e-4
    assert row["LNK_var_ddof1"] == pytest.approx(4.5e-4)
    assert row["paper_LNK_mean"] == 0.9922
    assert "0.9450 ± 0.00022 (n=2)" in md.read_text()


def test_bad_csv_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,TRA,LNK\n0,0.9,0.9\n")
    with pytest.raises(MetricsFormatError, match=r"bad\.csv.*DET"):
        ingest([bad], "Fluo-N2DL-HeLa", "retrained", tmp_path / "out")
