"""Variant names, checkpoint-selection protocols and Table 1, checked against hand-computed numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from denselink.errors import ConfigError
from denselink.evaluate.metrics import MetricsFormatError, load_metrics, metrics_record, write_metrics
from denselink.evaluate.protocols import select
from denselink.evaluate.table import TableSettings, build_table, main, paired_comparison
from denselink.evaluate.variants import Variant, parse_variant, variant_name


def test_variant_names_roundtrip() -> None:
    name = variant_name("maester", "centroid", "add_wrfeat", run="fluo", epoch=18249)
    assert name == "maester-fluo-epoch18249-centroid-add_wrfeat"
    v = parse_variant(name)
    assert (v.kind, v.backbone, v.run, v.epoch, v.agg, v.fusion) == (
        "embedding",
        "maester",
        "fluo",
        18249,
        "centroid",
        "add_wrfeat",
    )
    assert v.label == "MAESTER" and v.long_label == "MAESTER (fluo, epoch 18249)"
    assert parse_variant("maester-mitocheck-100-epoch49-mma-concat").run == "mitocheck-100"
    assert parse_variant("musam-anyup-mma-add_token") == Variant(
        "embedding", "musam-anyup", "musam", None, None, "mma", "add_token", "anyup"
    )
    assert parse_variant("sam-mma-add_wrfeat").label == "SAM (vit_b)"
    assert parse_variant("musam-mma-add_wrfeat").label == "μSAM (vit_b_lm)"
    assert parse_variant("retrained").label == "Trackastra (re-trained)"
    assert variant_name("pretrained") == "pretrained"


@pytest.mark.parametrize(
    "bad", ["sam-mean-add_wrfeat", "sam-mma-sum", "dino-mma-concat", "maester-mma-concat"]
)
def test_bad_variant_names_raise(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_variant(bad)


# Per seed: LNK and validation loss at epochs 0, 1, 2.
RETRAINED = {
    0: ([0.90, 0.92, 0.91], [3.0, 1.0, 2.0]),
    1: ([0.93, 0.90, 0.94], [3.0, 2.0, 1.0]),
    2: ([0.95, 0.91, 0.92], [1.0, 2.0, 3.0]),
}
SAM = {
    0: ([0.94, 0.96, 0.95], [3.0, 1.0, 2.0]),
    1: ([0.95, 0.97, 0.90], [3.0, 2.0, 1.0]),
    2: ([0.96, 0.93, 0.99], [1.0, 2.0, 3.0]),
}


def write_runs(root: Path, variant: str, runs: dict, protocol: str = "paper") -> list[Path]:
    paths = []
    for seed, (lnk, loss) in runs.items():
        record = metrics_record(
            dataset="Fluo-N2DL-HeLa",
            variant=variant,
            seed=seed,
            protocol=protocol,
            train_seq="02",
            eval_seq="01",
            checkpoint=None,
            scores={"LNK": 0.0, "TRA": 0.0, "DET": 0.0},
            per_epoch=[
                {"epoch": e, "LNK": v, "TRA": v, "DET": 1.0, "val_loss": ls}
                for e, (v, ls) in enumerate(zip(lnk, loss, strict=True))
            ],
        )
        paths.append(root / variant / f"seed{seed}.json")
        write_metrics(paths[-1], record)
    return paths


@pytest.fixture
def metrics(tmp_path: Path) -> list[Path]:
    paths = write_runs(tmp_path, "retrained", RETRAINED) + write_runs(tmp_path, "sam-mma-add_wrfeat", SAM)
    paths += write_runs(tmp_path, "sam-mma-add_token", {0: SAM[0]})
    skipped = metrics_record(
        dataset="Fluo-N2DL-HeLa",
        variant="musam-centroid-add_wrfeat",
        seed=0,
        protocol="clean",
        train_seq="02",
        eval_seq="01",
        checkpoint=None,
        scores=None,
        status="skipped",
        reason="no muSAM weights",
    )
    paths.append(tmp_path / "musam" / "seed0.json")
    write_metrics(paths[-1], skipped)
    return paths


def test_clean_protocol_takes_lowest_validation_loss(metrics: list[Path]) -> None:
    runs, epochs = load_metrics(metrics)
    chosen = select(runs, epochs, "clean").set_index(["variant", "seed"])
    assert chosen.loc[("retrained", 0), "epoch"] == 1 and chosen.loc[("retrained", 0), "LNK"] == 0.92
    assert chosen.loc[("retrained", 1), "LNK"] == 0.94 and chosen.loc[("retrained", 2), "LNK"] == 0.95
    assert chosen.loc[("sam-mma-add_wrfeat", 1), "LNK"] == 0.90


def test_paper_protocol_takes_best_seed_mean_epoch(metrics: list[Path]) -> None:
    runs, epochs = load_metrics(metrics)
    chosen = select(runs, epochs, "paper")
    retrained = chosen[chosen["variant"] == "retrained"]
    # Retrained epoch means 0.9267, 0.91, 0.9233 -> epoch 0; SAM means 0.95, 0.9533, 0.9467 -> epoch 1.
    assert set(retrained["epoch"]) == {0} and retrained["LNK"].tolist() == [0.90, 0.93, 0.95]
    assert chosen[chosen["variant"] == "sam-mma-add_wrfeat"]["LNK"].tolist() == [0.96, 0.97, 0.93]


def test_table_numbers(metrics: list[Path]) -> None:
    runs, epochs = load_metrics(metrics)
    settings = TableSettings(bootstrap_samples=2000)
    table = build_table(runs, epochs, settings).set_index(["protocol", "variant"])
    clean = table.loc[("clean", "sam-mma-add_wrfeat")]
    assert clean["LNK_mean"] == pytest.approx(np.mean([0.96, 0.90, 0.96]))
    assert clean["LNK_var"] == pytest.approx(np.var([0.96, 0.90, 0.96]))
    assert clean["LNK_var_ddof1"] == pytest.approx(np.var([0.96, 0.90, 0.96], ddof=1))
    diffs = np.array([0.96 - 0.92, 0.90 - 0.94, 0.96 - 0.95])
    assert clean["n_pairs"] == 3 and clean["dLNK_mean"] == pytest.approx(diffs.mean())
    assert clean["p_ttest"] == pytest.approx(stats.ttest_rel([0.96, 0.90, 0.96], [0.92, 0.94, 0.95]).pvalue)
    assert clean["dLNK_ci_low"] <= diffs.mean() <= clean["dLNK_ci_high"]
    assert clean["row"] == "SAM (vit_b)" and clean["column"] == "MMA" and clean["paper_LNK_mean"] == 0.9923
    assert table.loc[("clean", "sam-mma-add_token"), "row"] == "SAM (vit_b) [add_token]"
    assert np.isnan(table.loc[("clean", "sam-mma-add_token"), "paper_LNK_mean"])
    skipped = table.loc[("clean", "musam-centroid-add_wrfeat")]
    assert skipped["status"] == "skipped" and skipped["reason"] == "no muSAM weights"
    paper = table.loc[("paper", "retrained")]
    assert paper["LNK_mean"] == pytest.approx(0.9266666667) and paper["epochs"] == "0 0 0"


def test_bootstrap_is_seeded() -> None:
    values, baseline = {0: 0.95, 1: 0.97, 2: 0.93, 3: 0.96}, {0: 0.94, 1: 0.95, 2: 0.93, 3: 0.92}
    first = paired_comparison(values, baseline, TableSettings(bootstrap_seed=3))
    assert first == paired_comparison(values, baseline, TableSettings(bootstrap_seed=3))
    assert first["p_wilcoxon"] == pytest.approx(stats.wilcoxon([0.01, 0.02, 0.0, 0.04]).pvalue)


def test_markdown_shows_sections_and_skips(metrics: list[Path], tmp_path: Path) -> None:
    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    assert (
        main(
            [
                "--metrics",
                *map(str, metrics),
                "--out-csv",
                str(csv),
                "--out-md",
                str(md),
                "--settings",
                '{"bootstrap_samples": 500}',
            ]
        )
        == 0
    )
    text = md.read_text()
    assert "## Protocol `clean`" in text and "## Protocol `paper`" in text
    assert "### Fluo-N2DL-HeLa: train on 02, evaluate on 01" in text
    assert "n/a (skipped [1])" in text and "\n[1] no muSAM weights" in text
    assert "| Trackastra (re-trained) | 0.9367 ± 0.00016 (n=3) | – | – | 0.9922 ± 3.19e-07 |" in text
    assert len(pd.read_csv(csv)) == 8


def test_pretrained_joins_each_direction_and_bad_variant_names_file(tmp_path: Path) -> None:
    paths = write_runs(tmp_path, "retrained", RETRAINED)
    for seq, lnk in (("01", 0.91), ("02", 0.97)):
        record = metrics_record(
            dataset="Fluo-N2DL-HeLa",
            variant="pretrained",
            seed=0,
            protocol="clean",
            train_seq="",
            eval_seq=seq,
            checkpoint="general_2d",
            scores={"LNK": lnk, "TRA": 0.9, "DET": 0.9},
        )
        paths.append(tmp_path / f"pretrained{seq}.json")
        write_metrics(paths[-1], record)
    runs, epochs = load_metrics(paths)
    table = build_table(runs, epochs, TableSettings(protocols=["clean"]))
    pretrained = table[table["variant"] == "pretrained"].set_index("eval_seq")
    assert pretrained["train_seq"].to_dict() == {"01": "02", "02": ""}
    assert pretrained["LNK_mean"].to_dict() == {"01": 0.91, "02": 0.97}
    assert np.isnan(pretrained.loc["01", "p_ttest"])
    bad = tmp_path / "bad.json"
    write_metrics(
        bad,
        metrics_record(
            dataset="x",
            variant="fused-add_wrfeat",
            seed=0,
            protocol="clean",
            train_seq="02",
            eval_seq="01",
            checkpoint=None,
            scores=None,
        ),
    )
    runs, epochs = load_metrics([bad])
    with pytest.raises(MetricsFormatError, match=r"bad\.json.*fused-add_wrfeat"):
        build_table(runs, epochs, TableSettings())
