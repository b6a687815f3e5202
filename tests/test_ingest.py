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
    assert "0.94500 ± 0.00022 (n=2)" in md.read_text()


def test_bad_csv_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,TRA,LNK\n0,0.9,0.9\n")
    with pytest.raises(MetricsFormatError, match=r"bad\.csv.*DET"):
        ingest([bad], "Fluo-N2DL-HeLa", "retrained", tmp_path / "out")


# The authors' layout: per dataset folder, one folder per condition, one CSV per seed (names in no
# seed order). LNK per CSV and epoch; 0 and -1 mark failed evaluations.
AUTHORS = {
    ("fluo", "without"): {
        "2025-09-21_20-19-56_example.csv": [0.9910, 0.9921, 0.9915, 0.9902],
        "2025-09-20_08-00-00_example.csv": [0.9905, 0.9930, 0.9918, 0.9911],
        "2025-09-22_11-11-11_example.csv": [0.9899, 0.0, 0.9915, 0.9920],
    },
    ("fluo", "original_maester_embeddings"): {
        "a.csv": [0.9931, 0.9940, 0.9952, 0.9949],
        "b.csv": [0.9925, 0.9938, 0.9941, 0.9950],
        "c.csv": [0.9930, 0.9939, -1.0, 0.9939],
    },
    ("fluo", "mma_additional_vit_b_lm_____Fluo-N2DL-HeLa"): {
        "x.csv": [0.9920, 0.9929, 0.9931, 0.9925],
        "y.csv": [0.9919, 0.9933, 0.9928, 0.9930],
    },
    ("dic", "additional_vit_b_____DIC-C2DH-HeLa"): {
        "s1.csv": [0.9850, 0.9881, 0.9877, 0.9870],
        "s2.csv": [0.9862, 0.9879, 0.9890, 0.9868],
    },
}
VARIANTS = {
    ("fluo", "without"): ("Fluo-N2DL-HeLa", "retrained", "Trackastra (re-trained)", 0.9922),
    ("fluo", "original_maester_embeddings"): (
        "Fluo-N2DL-HeLa",
        "maester-fluo-epoch18249-centroid-add_token",
        "MAESTER",
        0.9944,
    ),
    ("fluo", "mma_additional_vit_b_lm_____Fluo-N2DL-HeLa"): (
        "Fluo-N2DL-HeLa",
        "musam-mma-add_token",
        "μSAM (vit_b_lm)",
        0.9930,
    ),
    ("dic", "additional_vit_b_____DIC-C2DH-HeLa"): (
        "DIC-C2DH-HeLa",
        "sam-centroid-add_token",
        "SAM (vit_b)",
        0.9884,
    ),
}


def write_authors_layout(root: Path) -> None:
    for (folder, condition), runs in AUTHORS.items():
        for name, lnk in runs.items():
            path = root / folder / condition / name
            path.parent.mkdir(parents=True, exist_ok=True)
            epochs = range(len(lnk))
            pd.DataFrame(
                {"epoch": epochs, "TRA": [0.99] * len(lnk), "DET": [0.995] * len(lnk), "LNK": lnk}
            ).to_csv(path, index=False)


def paper_rule(runs: dict[str, list[float]]) -> tuple[int, list[float]]:
    """The authors' Table 1 by hand: per-epoch mean of the valid (> 0) LNK, best epoch, its values."""
    table = np.array(list(runs.values()))
    valid = np.where(table > 0, table, np.nan)
    best = int(np.nanargmax(np.nanmean(valid, axis=0)))
    return best, [v for v in valid[:, best] if not np.isnan(v)]


def test_authors_root_then_table_reproduces_the_paper_rule(tmp_path: Path) -> None:
    write_authors_layout(tmp_path / "authors")
    out = tmp_path / "metrics"
    assert main(["--authors-root", str(tmp_path / "authors"), "--out-dir", str(out)]) == 0
    written = sorted(out.rglob("*.json"))
    assert len(written) == sum(len(runs) for runs in AUTHORS.values())
    record = read_metrics(out / "Fluo-N2DL-HeLa/paper/02-02/retrained/seed0.json")
    assert record["source"].endswith("2025-09-20_08-00-00_example.csv")  # file-name order
    assert record["origin"] == "authors" and record["protocol"] == "paper"
    csv, md = tmp_path / "table1.csv", tmp_path / "table1.md"
    args = [
        "--metrics",
        *map(str, written),
        "--out-csv",
        str(csv),
        "--out-md",
        str(md),
        "--protocols",
        "paper",
    ]
    assert table_main(args) == 0
    table = pd.read_csv(csv, dtype={"train_seq": str, "eval_seq": str}).set_index("variant")
    for key, runs in AUTHORS.items():
        dataset, variant, label, published = VARIANTS[key]
        best, values = paper_rule(runs)
        row = table.loc[variant]
        assert (row["dataset"], row["train_seq"], row["eval_seq"]) == (dataset, "02", "02")
        assert row["epochs"] == " ".join([str(best)] * len(values))
        assert row["LNK_mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert row["LNK_var"] == pytest.approx(np.var(values), abs=1e-15)
        assert row["n_dropped"] == len(runs) - len(values)
        assert row["row"] == label and row["paper_LNK_mean"] == published
    maester = table.loc["maester-fluo-epoch18249-centroid-add_token"]
    assert maester["comparison"] == "unpaired"
    # epoch 2: (0.9952 + 0.9941) / 2 = 0.99465 beats epoch 3's 0.9946; c.csv failed there and is dropped
    assert maester["epochs"] == "2 2" and maester["n_dropped"] == 1
    assert table.loc["retrained", "epochs"] == "1 1" and table.loc["retrained", "n_dropped"] == 1
    text = md.read_text()
    assert "### Fluo-N2DL-HeLa: train on 02, evaluate on 02" in text and "### DIC-C2DH-HeLa" in text
    assert "| MAESTER | – | – |" in text and "0.9944 ± 4.2e-07" in text


def test_authors_root_refuses_an_unknown_condition_folder_and_writes_nothing(tmp_path: Path) -> None:
    write_authors_layout(tmp_path / "authors")
    unknown = tmp_path / "authors" / "fluo" / "mma_additional_vit_h_____Fluo-N2DL-HeLa"
    unknown.mkdir()
    (unknown / "run.csv").write_text("epoch,TRA,DET,LNK\n0,0.9,0.9,0.9\n")
    out = tmp_path / "out"
    with pytest.raises(MetricsFormatError, match=r"vit_h.*unknown condition folder"):
        main(["--authors-root", str(tmp_path / "authors"), "--out-dir", str(out)])
    assert not out.exists()  # the conditions before it ("dic/...", "fluo/mma_additional_vit_b_lm...") too


def test_authors_root_writes_nothing_when_a_later_csv_is_bad(tmp_path: Path) -> None:
    write_authors_layout(tmp_path / "authors")
    (tmp_path / "authors/fluo/without/2025-09-22_11-11-11_example.csv").write_text("epoch,TRA,LNK\n0,1,1\n")
    out = tmp_path / "out"
    with pytest.raises(MetricsFormatError, match=r"2025-09-22_11-11-11_example\.csv.*DET"):
        main(["--authors-root", str(tmp_path / "authors"), "--out-dir", str(out)])
    assert not out.exists()


def test_authors_root_skips_a_condition_without_csv_with_a_note(tmp_path: Path, capsys) -> None:
    write_authors_layout(tmp_path / "authors")
    log_only = tmp_path / "authors" / "dic" / "mma_general_2d"
    log_only.mkdir()
    (log_only / "train.log").write_text("epoch 0 ...\n")
    out = tmp_path / "out"
    assert main(["--authors-root", str(tmp_path / "authors"), "--out-dir", str(out)]) == 0
    assert len(list(out.rglob("*.json"))) == sum(len(runs) for runs in AUTHORS.values())
    assert f"note: skipped {log_only}: no *.csv (holds train.log)" in capsys.readouterr().err


def test_lnk_zero_is_a_score_and_failure_markers_are_no_score(tmp_path: Path) -> None:
    """The authors' CSVs: LNK 0 with TRA 0.73 (every link wrong) is kept; 999 or -1 mark a failure."""
    path = tmp_path / "run.csv"
    path.write_text("epoch,TRA,DET,LNK\n0,0.73,0.9,0\n1,0.9,0.9,999\n2,0.9,0.9,-1\n3,0.9,0.9,0.5\n")
    record = read_metrics(ingest([path], "DIC-C2DH-HeLa", "retrained", tmp_path / "out")[0])
    assert [row["LNK"] for row in record["per_epoch"]] == [0.0, None, None, 0.5]
    assert record["per_epoch"][0]["TRA"] == 0.73 and record["checkpoint"] == "epoch3"
