"""Variant names, checkpoint-selection protocols and Table 1, checked against hand-computed numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from denselink.errors import ConfigError
from denselink.evaluate.metrics import MetricsFormatError, load_metrics, metrics_record, write_metrics
from denselink.evaluate.protocols import select
from denselink.evaluate.stats import holm, paired_comparison, unpaired_comparison
from denselink.evaluate.table import TableSettings, build_table, decimal, main, places, render_markdown
from denselink.vocabulary import Variant, parse_variant, variant_name


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
    assert parse_variant("maester-mitocheck100-epoch49-mma-concat").run == "mitocheck100"
    assert parse_variant("musam-anyup-mma-add_token") == Variant(
        "embedding", "musam-anyup", "musam", None, None, "mma", "add_token", "anyup"
    )
    assert parse_variant("sam-mma-add_wrfeat").label == "SAM (vit_b)"
    assert parse_variant("musam-mma-add_wrfeat").label == "μSAM (vit_b_lm)"
    assert parse_variant("retrained").label == "Trackastra (re-trained)"
    assert variant_name("pretrained") == "pretrained"


@pytest.mark.parametrize(
    "bad",
    [
        "sam-mean-add_wrfeat",
        "sam-mma-sum",
        "dino-mma-concat",
        "maester-mma-concat",
        "maester-mitocheck-100-epoch49-mma-concat",  # a run name has no dash
        "maester-fluo-epoch049-mma-concat",  # an epoch has one spelling
    ],
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
DIRECTIONS = {"paper": ("02", "02"), "clean": ("02", "01")}


def lowest_loss(lnk: list[float], loss: list[float]) -> tuple[int, float]:
    """What `tracking evaluate` writes at the top level under clean: the lowest val_loss epoch."""
    epoch = int(np.argmin(loss))
    return epoch, lnk[epoch]


def write_runs(root: Path, variant: str, runs: dict, protocol: str = "paper", **extra: object) -> list[Path]:
    """Metrics JSONs as `tracking evaluate` writes them under ``protocol`` (every epoch scored)."""
    paths = []
    train_seq, eval_seq = DIRECTIONS[protocol]
    for seed, (lnk, loss) in runs.items():
        scored = [-1.0 if v is None else v for v in lnk]
        epoch, top = lowest_loss(lnk, loss) if protocol == "clean" else (int(np.argmax(scored)), max(scored))
        record = metrics_record(
            dataset="Fluo-N2DL-HeLa",
            variant=variant,
            seed=seed,
            protocol=protocol,
            train_seq=train_seq,
            eval_seq=eval_seq,
            checkpoint=f"checkpoints/epoch{epoch:03d}.pt",
            scores={"LNK": top, "TRA": top, "DET": 1.0},
            per_epoch=[
                {"epoch": e, "LNK": v, "TRA": v, "DET": 1.0, "val_loss": ls}
                for e, (v, ls) in enumerate(zip(lnk, loss, strict=True))
            ],
            **extra,
        )
        paths.append(root / protocol / variant / f"seed{seed}.json")
        write_metrics(paths[-1], record)
    return paths


@pytest.fixture
def metrics(tmp_path: Path) -> list[Path]:
    paths = []
    for protocol in ("paper", "clean"):
        paths += write_runs(tmp_path, "retrained", RETRAINED, protocol)
        paths += write_runs(tmp_path, "sam-mma-add_wrfeat", SAM, protocol)
    paths += write_runs(tmp_path, "sam-mma-add_token", {0: SAM[0]}, "clean")
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


def test_each_run_is_chosen_by_its_own_protocol(metrics: list[Path]) -> None:
    runs, epochs = load_metrics(metrics)
    chosen = select(runs, epochs).set_index(["protocol", "variant", "seed"]).sort_index()
    # clean: the checkpoint with the lowest validation loss, as the file's top level says
    assert chosen.loc[("clean", "retrained", 0), "epoch"] == 1
    assert chosen.loc[("clean", "retrained", 0), "LNK"] == 0.92
    assert chosen.loc[("clean", "retrained", 1), "LNK"] == 0.94
    assert chosen.loc[("clean", "sam-mma-add_wrfeat", 1), "LNK"] == 0.90
    # paper: retrained epoch means 0.9267, 0.91, 0.9233 -> epoch 0; SAM 0.95, 0.9533, 0.9467 -> epoch 1
    assert chosen.loc[("paper", "retrained"), "epoch"].tolist() == [0, 0, 0]
    assert chosen.loc[("paper", "retrained"), "LNK"].tolist() == [0.90, 0.93, 0.95]
    assert chosen.loc[("paper", "sam-mma-add_wrfeat"), "LNK"].tolist() == [0.96, 0.97, 0.93]
    assert set(chosen.index.get_level_values("protocol")) == {"clean", "paper"} and len(chosen) == 13


def test_table_parts_hold_only_their_protocols_runs(metrics: list[Path]) -> None:
    runs, epochs = load_metrics(metrics)
    table = build_table(runs, epochs, TableSettings())
    directions = table.groupby("protocol")[["train_seq", "eval_seq"]].apply(
        lambda part: sorted(set(map(tuple, part.to_numpy())))
    )
    assert directions.to_dict() == {"clean": [("02", "01")], "paper": [("02", "02")]}
    table = table.set_index(["protocol", "variant"])
    clean = table.loc[("clean", "sam-mma-add_wrfeat")]
    assert clean["LNK_mean"] == pytest.approx(np.mean([0.96, 0.90, 0.96]))
    assert clean["LNK_var"] == pytest.approx(np.var([0.96, 0.90, 0.96]))
    assert clean["LNK_var_ddof1"] == pytest.approx(np.var([0.96, 0.90, 0.96], ddof=1))
    diffs = np.array([0.96 - 0.92, 0.90 - 0.94, 0.96 - 0.95])
    assert clean["comparison"] == "paired" and clean["n_pairs"] == 3 and clean["primary_test"] == "paired t"
    assert clean["dLNK_mean"] == pytest.approx(diffs.mean())
    assert clean["p_primary"] == pytest.approx(stats.ttest_rel([0.96, 0.90, 0.96], [0.92, 0.94, 0.95]).pvalue)
    assert clean["p_rank"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
    # the paired t interval by hand: mean ± t(0.975, n-1) * SD / sqrt(n)
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)
    assert (clean["dLNK_ci_low"], clean["dLNK_ci_high"]) == pytest.approx(
        (diffs.mean() - half, diffs.mean() + half)
    )
    assert clean["ci"] == "paired t 95 % CI, n=3" and clean["holm_family"] == "main"
    assert clean["LNK_sd"] == pytest.approx(np.std([0.96, 0.90, 0.96], ddof=1))
    assert clean["row"] == "SAM (vit_b)" and clean["column"] == "MMA" and clean["paper_LNK_mean"] == 0.9923
    assert table.loc[("clean", "sam-mma-add_token"), "row"] == "SAM (vit_b) [add_token]"
    assert np.isnan(table.loc[("clean", "sam-mma-add_token"), "paper_LNK_mean"])
    skipped = table.loc[("clean", "musam-centroid-add_wrfeat")]
    assert skipped["status"] == "skipped" and skipped["reason"] == "no muSAM weights"
    paper = table.loc[("paper", "retrained")]
    assert paper["LNK_mean"] == pytest.approx(0.9266666667) and paper["epochs"] == "0 0 0"
    assert paper["n_seeds"] == 3 and table.loc[("paper", "sam-mma-add_wrfeat"), "epochs"] == "1 1 1"


def test_markdown_has_a_section_per_protocol_and_direction_run(metrics: list[Path], tmp_path: Path) -> None:
    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    args = ["--metrics", *map(str, metrics), "--out-csv", str(csv), "--out-md", str(md)]
    assert main([*args, "--settings", '{"confidence": 0.9}']) == 0
    text = md.read_text()
    sections = [line for line in text.splitlines() if line.startswith("##")]
    assert sections == [
        "## Protocol `clean`",
        "### Fluo-N2DL-HeLa: train on 02, evaluate on 01",
        "## Protocol `paper`",
        "### Fluo-N2DL-HeLa: train on 02, evaluate on 02",
    ]
    assert "n/a (skipped [1])" in text and "\n[1] no muSAM weights" in text
    clean_part, paper_part = text.split("## Protocol `paper`")
    # clean re-trained: epochs 1, 2, 0 by validation loss, mean ± SD (ddof=1) of 0.92, 0.94, 0.95;
    # paper: epoch 0 by the best seed mean, mean ± population variance of 0.90, 0.93, 0.95 as the paper
    assert "| Trackastra (re-trained) | 0.93667 ± 0.01528 (n=3) | – | – | 0.9922 ± 3.19e-07 |" in clean_part
    assert "| Trackastra (re-trained) | 0.92667 ± 0.00042 (n=3) | – | – | 0.9922 ± 3.19e-07 |" in paper_part
    assert "LNK mean ± SD (Default)" in clean_part and "LNK mean ± var (Default)" in paper_part
    # SAM under clean: differences +0.04, -0.04, +0.01; the 90 % paired t interval, plain decimals
    diffs = np.array([0.04, -0.04, 0.01])
    half = stats.t.ppf(0.95, 2) * diffs.std(ddof=1) / math.sqrt(3)
    assert half == pytest.approx(0.0681, abs=1e-4)  # two significant digits of it: 3 decimals
    low, high = f"{diffs.mean() - half:+.3f}", f"{diffs.mean() + half:+.3f}"
    row = f"| SAM (vit_b) | MMA | main | 3 pairs | +0.003 | [{low}, {high}] paired t 90 % CI, n=3 |"
    assert row in clean_part and (low, high) == ("-0.065", "+0.071")
    assert "Not compared (fewer than 2 seeds on a side): SAM (vit_b) [add_token] (MMA)." in clean_part
    assert "Caveat: under `paper` the epoch is chosen on the sequence it is scored on" in paper_part
    assert "Caveat" not in clean_part
    assert "The Appendix C figures take each seed's best epoch instead" in paper_part
    assert len(pd.read_csv(csv)) == 6
    assert main([*args, "--protocols", "paper"]) == 0
    assert "## Protocol `clean`" not in md.read_text() and len(pd.read_csv(csv)) == 2


def test_clean_counts_a_run_that_links_nothing_as_lnk_zero(tmp_path: Path) -> None:
    linked_nothing = {0: ([0.0, 0.0, 0.0], [3.0, 1.0, 2.0])}
    paths = write_runs(tmp_path, "retrained", {**RETRAINED, 3: linked_nothing[0]}, "clean")
    runs, epochs = load_metrics(paths)
    row = build_table(runs, epochs, TableSettings(protocols=["clean"])).iloc[0]
    assert row["n_seeds"] == 4 and row["n_lnk0"] == 1
    assert row["LNK_mean"] == pytest.approx(np.mean([0.92, 0.94, 0.95, 0.0]))
    assert row["LNK_var"] == pytest.approx(np.var([0.92, 0.94, 0.95, 0.0]))
    md = render_markdown(build_table(runs, epochs, TableSettings(protocols=["clean"])), TableSettings())
    assert "(n=4) [1 at LNK 0, counted]" in md


def test_paper_drops_lnk_zero_and_unscored_epochs_and_says_why(tmp_path: Path) -> None:
    failed = {3: ([None, 0.0, 0.99], [1.0, 1.0, 1.0])}  # no score at epoch 0, LNK 0 at epoch 1
    paths = write_runs(tmp_path, "retrained", {**RETRAINED, **failed}, "paper")
    runs, epochs = load_metrics(paths)
    table = build_table(runs, epochs, TableSettings(protocols=["paper"]))
    row = table.iloc[0]
    # epoch means over valid values: 0.9267, 0.91, (0.91 + 0.94 + 0.92 + 0.99) / 4 = 0.94 -> epoch 2
    assert row["epochs"] == "2 2 2 2" and row["n_dropped"] == 0
    failed = {3: ([None, 0.0, 0.0], [1.0, 1.0, 1.0]), 4: ([0.0, 0.5, 0.5], [1.0, 1.0, 1.0])}
    paths = write_runs(tmp_path, "retrained", {**RETRAINED, **failed}, "paper")
    runs, epochs = load_metrics(paths)
    table = build_table(runs, epochs, TableSettings(protocols=["paper"]))
    row = table.iloc[0]
    # epoch 0: seeds 0-2 (seed 3 unscored, seed 4 at LNK 0, both dropped) -> 0.9267 beats 0.82, 0.8225
    assert row["epochs"] == "0 0 0" and row["n_seeds"] == 3 and row["n_dropped"] == 2
    assert row["dropped"] == "1 LNK 0; 1 no score"
    assert row["LNK_mean"] == pytest.approx(np.mean([0.90, 0.93, 0.95]))
    md = render_markdown(table, TableSettings(protocols=["paper"]))
    assert "(n=3) [dropped: 1 LNK 0; 1 no score]" in md


def test_paper_chooses_among_epochs_every_seed_reached(tmp_path: Path) -> None:
    """Seed 0 trained on to epoch 4 (its best); seeds 1 and 2 stopped early at epoch 2."""
    ragged = {
        0: ([0.90, 0.91, 0.92, 0.95, 0.99], [3.0, 2.0, 1.0, 1.0, 1.0]),
        1: ([0.93, 0.90, 0.94], [3.0, 2.0, 1.0]),
        2: ([0.95, 0.91, 0.92], [1.0, 2.0, 3.0]),
    }
    paths = write_runs(tmp_path, "retrained", ragged, "paper")
    runs, epochs = load_metrics(paths)
    row = build_table(runs, epochs, TableSettings(protocols=["paper"])).iloc[0]
    # epoch 4 (mean 0.99 over the one seed that reached it) is no candidate; epoch means 0.9267,
    # 0.9067, 0.9267 over the three seeds -> epoch 0, all three seeds counted
    assert row["epochs"] == "0 0 0" and row["n_seeds"] == 3 and row["n_dropped"] == 0
    assert row["LNK_mean"] == pytest.approx(np.mean([0.90, 0.93, 0.95]))


def test_ingested_runs_are_compared_unpaired_with_holm(tmp_path: Path) -> None:
    musam = {seed: (lnk[::-1], loss) for seed, (lnk, loss) in SAM.items()}
    paths = write_runs(tmp_path, "retrained", RETRAINED, origin="authors")
    paths += write_runs(tmp_path, "sam-mma-add_token", SAM, origin="authors")
    paths += write_runs(tmp_path, "musam-mma-add_token", musam, origin="authors")
    runs, epochs = load_metrics(paths)
    table = build_table(runs, epochs, TableSettings(protocols=["paper"])).set_index("variant")
    baseline, sam = [0.90, 0.93, 0.95], [0.96, 0.97, 0.93]
    row = table.loc["sam-mma-add_token"]
    assert row["comparison"] == "unpaired" and row["n_pairs"] == 0 and row["n_baseline"] == 3
    assert row["dLNK_mean"] == pytest.approx(np.mean(sam) - np.mean(baseline))
    assert row["primary_test"] == "Welch t" and row["rank_test"] == "Mann–Whitney U"
    assert row["p_primary"] == pytest.approx(stats.ttest_ind(sam, baseline, equal_var=False).pvalue)
    assert row["p_rank"] == pytest.approx(stats.mannwhitneyu(sam, baseline).pvalue)
    # Welch's interval by hand: Welch-Satterthwaite degrees of freedom
    va, vb = np.var(sam, ddof=1) / 3, np.var(baseline, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = np.mean(sam) - np.mean(baseline)
    assert (row["dLNK_ci_low"], row["dLNK_ci_high"]) == pytest.approx((diff - half, diff + half))
    assert row["ci"] == "Welch t 95 % CI, n=3 vs 3"
    p_values = table.loc[["sam-mma-add_token", "musam-mma-add_token"], "p_primary"].to_numpy()
    assert table.loc[
        ["sam-mma-add_token", "musam-mma-add_token"], "p_primary_holm"
    ].tolist() == pytest.approx(holm(list(p_values)))
    # add_token is the only fusion here, so its rows are the main ones: the paper's values beside them
    assert row["row"] == "SAM (vit_b)" and row["paper_LNK_mean"] == 0.9923
    assert table.loc["retrained", "comparison"] == ""


def test_differences_are_plain_decimals_to_two_digits_of_the_half_width() -> None:
    assert [places(w) for w in (0.208, 0.0032, 1.2e-4, 3e-9, 0.0)] == [3, 4, 5, 6, 3]
    assert decimal(0.191) == "+0.191" and decimal(-1.91e-4, 5) == "-0.00019"


def test_holm_adjustment_by_hand() -> None:
    adjusted = holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_paired_interval_and_tests_by_hand() -> None:
    values, baseline = {0: 0.95, 1: 0.97, 2: 0.93, 3: 0.96}, {0: 0.94, 1: 0.95, 2: 0.93, 3: 0.92, 9: 0.5}
    out = paired_comparison(values, baseline, 0.95)
    diffs = np.array([0.01, 0.02, 0.0, 0.04])
    half = stats.t.ppf(0.975, 3) * diffs.std(ddof=1) / 2
    assert (out["dLNK_ci_low"], out["dLNK_ci_high"]) == pytest.approx(
        (diffs.mean() - half, diffs.mean() + half)
    )
    assert out["p_rank"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
    assert (out["n_pairs"], out["n_baseline"], out["ci"]) == (4, 5, "paired t 95 % CI, n=4")


def test_no_spread_and_no_difference_keeps_the_row_with_p_one() -> None:
    same = {0: 0.9, 1: 0.95, 2: 0.92}
    out = paired_comparison(same, dict(same), 0.95)
    assert (out["p_primary"], out["p_rank"], out["dLNK_ci_low"], out["dLNK_ci_high"]) == (1.0, 1.0, 0.0, 0.0)
    out = unpaired_comparison([0.9, 0.9], [0.9, 0.9, 0.9], 0.95)
    assert (out["p_primary"], out["p_rank"], out["dLNK_ci_low"], out["dLNK_ci_high"]) == (1.0, 1.0, 0.0, 0.0)


def test_a_file_without_a_protocol_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    record = metrics_record(
        dataset="Fluo-N2DL-HeLa",
        variant="retrained",
        seed=0,
        protocol="clean",
        train_seq="02",
        eval_seq="01",
        checkpoint=None,
        scores={"LNK": 0.9, "TRA": 0.9, "DET": 0.9},
    )
    del record["protocol"]
    write_metrics(path, record)
    runs, epochs = load_metrics([path])
    with pytest.raises(MetricsFormatError, match=r"old\.json.*protocol None"):
        build_table(runs, epochs, TableSettings())


def test_pretrained_joins_each_direction_and_bad_variant_names_file(tmp_path: Path) -> None:
    paths = write_runs(tmp_path, "retrained", RETRAINED, "clean")
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
    assert np.isnan(pretrained.loc["01", "p_primary"]) and pretrained.loc["01", "comparison"] == ""
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


def test_chosen_epoch_is_the_checkpoint_files_not_the_maester_epoch_in_the_variant():
    from denselink.evaluate.protocols import _checkpoint_epoch

    path = (
        "results/models/D/clean/train02/maester-synth-epoch3-centroid-add_wrfeat/seed0/checkpoints/epoch11.pt"
    )
    assert _checkpoint_epoch(path) == 11.0
    assert math.isnan(_checkpoint_epoch("general_2d"))


def test_hand_crafted_control_is_a_row_after_the_backbones(tmp_path: Path) -> None:
    paths = write_runs(tmp_path, "retrained", RETRAINED, "clean")
    paths += write_runs(tmp_path, "handcrafted-mma-add_wrfeat", SAM, "clean")
    paths += write_runs(tmp_path, "sam-mma-add_wrfeat", SAM, "clean")
    runs, epochs = load_metrics(paths)
    table = build_table(runs, epochs, TableSettings(protocols=["clean"]))
    assert list(table["variant"]) == ["retrained", "sam-mma-add_wrfeat", "handcrafted-mma-add_wrfeat"]
