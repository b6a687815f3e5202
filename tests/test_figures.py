"""Appendix C figures: files exist, plotted points equal the metrics, missing runs are listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from denselink.errors import ConfigError
from denselink.evaluate.metrics import MetricsFormatError, metrics_record, write_metrics
from denselink.figures.appendix_c import main

SEEDS = (0, 1, 2)


def lnk_curve(offset: float, seed: int) -> list[float]:
    """Three epochs of LNK, distinct per run and seed."""
    return [0.90 + offset + 0.01 * seed, 0.95 + offset - 0.005 * seed, 0.93 + offset]


LOSS = [2.0, 3.0, 1.0]  # lowest validation loss at epoch 2 for every seed


def write(
    root: Path, variant: str, offset: float, protocol: str = "paper", direction: tuple[str, str] | None = None
) -> list[Path]:
    """Metrics of three seeds trained under ``protocol`` (every epoch scored)."""
    train_seq, eval_seq = direction or ("02", "01" if protocol == "clean" else "02")
    paths = []
    for seed in SEEDS:
        record = metrics_record(
            dataset="Fluo-N2DL-HeLa",
            variant=variant,
            seed=seed,
            protocol=protocol,
            train_seq=train_seq,
            eval_seq=eval_seq,
            checkpoint="epoch2.pt",
            scores={"LNK": lnk_curve(offset, seed)[2], "TRA": 0.99, "DET": 0.99},
            per_epoch=[
                {"epoch": e, "LNK": v, "TRA": 0.99, "DET": 0.99, "val_loss": LOSS[e]}
                for e, v in enumerate(lnk_curve(offset, seed))
            ],
        )
        paths.append(root / protocol / f"{train_seq}-{eval_seq}" / variant / f"seed{seed}.json")
        write_metrics(paths[-1], record)
    return paths


def authors_mean(offset: float) -> float:
    return float(np.mean([max(lnk_curve(offset, s)) for s in SEEDS]))


CLEAN_SHIFT = 0.003  # clean runs score differently from paper runs, so a mixed-up panel shows


@pytest.fixture
def scaling_metrics(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    metrics = write(tmp_path, "maester-fluo-epoch49-centroid-add_wrfeat", 0.0)
    metrics += write(tmp_path, "maester-fluo-epoch1399-centroid-add_wrfeat", 0.02)
    metrics += write(tmp_path, "maester-fluo-epoch49-centroid-add_wrfeat", CLEAN_SHIFT, "clean")
    baseline = write(tmp_path, "retrained", -0.01) + write(
        tmp_path, "retrained", -0.01 + CLEAN_SHIFT, "clean"
    )
    return metrics, baseline


def test_compute_scaling_points_and_missing(tmp_path: Path, scaling_metrics) -> None:
    metrics, baseline = scaling_metrics
    out = tmp_path / "figures"
    expect = ["maester-fluo-epoch449-centroid-add_wrfeat"]
    assert (
        main(
            [
                "--study",
                "compute_scaling",
                "--metrics",
                *map(str, metrics),
                "--baseline",
                *map(str, baseline),
                "--expect",
                *expect,
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert all((out / f"compute_scaling.{s}").stat().st_size > 1000 for s in ("png", "svg", "json"))
    data = json.loads((out / "compute_scaling.json").read_text())
    assert sorted(data["protocols"]) == ["clean", "paper"]
    authors = {p["x"]: p for p in data["protocols"]["paper"]["points"]}
    assert sorted(authors) == [49, 1399]
    assert authors[49]["mean"] == pytest.approx(authors_mean(0.0))
    assert authors[1399]["values"] == pytest.approx([max(lnk_curve(0.02, s)) for s in SEEDS])
    assert authors[1399]["sd"] == pytest.approx(np.std([max(lnk_curve(0.02, s)) for s in SEEDS], ddof=1))
    # the clean panel holds the clean runs only: epoch 2 (lowest val_loss) of the shifted curves
    clean = {p["x"]: p for p in data["protocols"]["clean"]["points"]}
    assert sorted(clean) == [49]
    assert clean[49]["values"] == pytest.approx([lnk_curve(CLEAN_SHIFT, s)[2] for s in SEEDS])
    assert data["protocols"]["paper"]["baseline"]["mean"] == pytest.approx(authors_mean(-0.01))
    assert data["protocols"]["clean"]["baseline"]["values"] == pytest.approx(
        [lnk_curve(-0.01 + CLEAN_SHIFT, s)[2] for s in SEEDS]
    )
    assert data["missing"] == sorted([*expect, "maester-fluo-epoch1399-centroid-add_wrfeat"])
    assert [m["x"] for m in data["protocols"]["clean"]["missing"]] == [449, 1399]
    assert [m["x"] for m in data["protocols"]["paper"]["missing"]] == [449]


def test_transfer_curves_equal_per_epoch_means(tmp_path: Path) -> None:
    metrics = write(tmp_path, "maester-fluo-epoch18249-centroid-add_wrfeat", 0.0)
    metrics += write(tmp_path, "maester-mitocheck100-epoch18249-centroid-add_wrfeat", 0.01)
    baseline = write(tmp_path, "retrained", -0.01)
    out = tmp_path / "figures"
    settings = json.dumps({"run_labels": {"mitocheck100": "Mitocheck plate 1"}})
    assert (
        main(
            [
                "--study",
                "transfer",
                "--metrics",
                *map(str, metrics),
                "--baseline",
                *map(str, baseline),
                "--expect",
                "maester-mitocheck200-epoch18249-centroid-add_wrfeat",
                "--out-dir",
                str(out),
                "--settings",
                settings,
            ]
        )
        == 0
    )
    data = json.loads((out / "transfer.json").read_text())
    panels = {p["variant"]: p for p in data["panels"]}
    assert {p["protocol"] for p in data["panels"]} == {"paper"}
    mito = panels["maester-mitocheck100-epoch18249-centroid-add_wrfeat"]
    assert mito["title"] == "paper: MAESTER pretrained on Mitocheck plate 1 (epoch 18249)"
    for epoch in range(3):
        expected = np.mean([lnk_curve(0.01, s)[epoch] for s in SEEDS])
        assert mito["points"][epoch]["mean"] == pytest.approx(expected)
    assert mito["baseline"]["points"][1]["mean"] == pytest.approx(
        np.mean([lnk_curve(-0.01, s)[1] for s in SEEDS])
    )
    assert data["missing"] == ["maester-mitocheck200-epoch18249-centroid-add_wrfeat"]
    assert (out / "transfer.png").is_file() and (out / "transfer.svg").is_file()


def test_data_scaling_one_series_per_dataset(tmp_path: Path) -> None:
    metrics = write(tmp_path, "maester-mitocheck100-epoch49-centroid-add_wrfeat", 0.0)
    metrics += write(tmp_path, "maester-mitocheck200-epoch49-centroid-add_wrfeat", 0.01)
    metrics += write(tmp_path, "maester-mitocheck200-epoch449-centroid-add_wrfeat", 0.015)
    out = tmp_path / "figures"
    assert (
        main(
            [
                "--study",
                "data_scaling",
                "--metrics",
                *map(str, metrics),
                "--out-dir",
                str(out),
                "--expect",
                "maester-mitocheck100-epoch449-centroid-add_wrfeat",
            ]
        )
        == 0
    )
    data = json.loads((out / "data_scaling.json").read_text())
    assert sorted(data["series"]) == ["mitocheck100", "mitocheck200"]
    assert list(data["protocols"]) == ["paper"]  # no clean runs, no clean panel
    points = {(p["series"], p["x"]): p["mean"] for p in data["protocols"]["paper"]["points"]}
    assert points == pytest.approx(
        {
            ("mitocheck100", 49): authors_mean(0.0),
            ("mitocheck200", 49): authors_mean(0.01),
            ("mitocheck200", 449): authors_mean(0.015),
        }
    )
    assert data["missing"] == ["maester-mitocheck100-epoch449-centroid-add_wrfeat"]


def run_figure(study: str, metrics: list[Path], out: Path, *extra: str) -> dict:
    assert main(["--study", study, "--metrics", *map(str, metrics), "--out-dir", str(out), *extra]) == 0
    return json.loads((out / f"{study}.json").read_text())


def test_two_directions_of_one_protocol_are_refused(tmp_path: Path) -> None:
    """02->01 and 01->02 runs would pool into one point with every seed twice."""
    variant = "maester-fluo-epoch49-centroid-add_wrfeat"
    metrics = write(tmp_path, variant, 0.0, "clean") + write(tmp_path, variant, 0.01, "clean", ("01", "02"))
    with pytest.raises(MetricsFormatError, match=r"protocol 'clean' span directions 01->02 .*, 02->01 "):
        run_figure("compute_scaling", metrics, tmp_path / "out")
    # one direction per protocol is fine, whatever the other protocol runs
    data = run_figure("compute_scaling", metrics[3:] + write(tmp_path, variant, 0.0), tmp_path / "ok")
    assert data["protocols"]["clean"]["points"][0]["values"] == pytest.approx(
        [lnk_curve(0.01, s)[2] for s in SEEDS]
    )


def test_a_renamed_copy_of_a_seed_file_is_no_second_seed(tmp_path: Path) -> None:
    metrics = write(tmp_path, "maester-fluo-epoch49-centroid-add_wrfeat", 0.0)
    shutil.copy(metrics[0], tmp_path / "copy.json")
    with pytest.raises(MetricsFormatError, match=r"copy\.json: records the same run as .*seed0\.json"):
        run_figure("compute_scaling", [*metrics, tmp_path / "copy.json"], tmp_path / "out")


def test_runs_on_generated_data_are_labelled_synthetic(tmp_path: Path) -> None:
    metrics = write(tmp_path, "maester-mitocheck100-epoch49-centroid-add_wrfeat", 0.0)
    metrics += write(tmp_path, "maester-fluo-epoch49-centroid-add_wrfeat", 0.01)
    settings = {"run_labels": {"mitocheck100": "Mitocheck 100 %"}, "synthetic_runs": ["mitocheck100"]}
    data = run_figure("data_scaling", metrics, tmp_path / "out", "--settings", json.dumps(settings))
    assert data["series"] == {"fluo": "fluo", "mitocheck100": "Mitocheck 100 % (synthetic)"}
    assert "Mitocheck 100 % (synthetic)" in (tmp_path / "out" / "data_scaling.svg").read_text()
    assert "Table 1 takes one epoch for all seeds" in (tmp_path / "out" / "data_scaling.svg").read_text()


def test_own_and_ingested_runs_are_not_pooled(tmp_path: Path) -> None:
    metrics = write(tmp_path / "own", "maester-fluo-epoch49-centroid-add_wrfeat", 0.0)
    theirs = write(tmp_path / "theirs", "maester-fluo-epoch49-centroid-add_wrfeat", 0.01)
    for path in theirs:
        path.write_text(json.dumps(json.loads(path.read_text()) | {"origin": "authors"}))
    with pytest.raises(ConfigError, match=r"several origins \['authors', 'denselink'\]"):
        run_figure("compute_scaling", metrics + theirs, tmp_path / "out")
