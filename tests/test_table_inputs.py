"""Table 1 on hostile or mixed metrics files: checked at the boundary, origins apart, no row lost."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_table import RETRAINED, SAM, write_runs

from denselink.evaluate.inputs import load_checked
from denselink.evaluate.metrics import MetricsFormatError, load_metrics
from denselink.evaluate.stats import holm
from denselink.evaluate.table import TableSettings, build_table, main


def table_of(paths: list[Path], tmp_path: Path, *extra: str) -> tuple[pd.DataFrame, str]:
    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    args = ["--metrics", *map(str, paths), "--out-csv", str(csv), "--out-md", str(md), "--force", *extra]
    assert main(args) == 0
    return pd.read_csv(csv, dtype={"train_seq": str, "eval_seq": str}), md.read_text()


def edit(path: Path, **changes: object) -> Path:
    """Rewrite a metrics JSON with some keys changed (Python's json writes NaN as the bare word)."""
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"LNK": 1.7}, r"seed1\.json: LNK is 1\.7, outside \[0, 1\]"),
        ({"TRA": -0.2}, r"seed1\.json: TRA is -0\.2, outside \[0, 1\]"),
        ({"LNK": math.nan}, r"seed1\.json: LNK is NaN"),
        ({"LNK": None}, r"seed1\.json: LNK is null in a clean run that is not skipped"),
    ],
)
def test_scores_outside_the_unit_range_or_nan_are_errors(tmp_path: Path, change: dict, message: str) -> None:
    paths = write_runs(tmp_path, "retrained", RETRAINED, "clean")
    edit(paths[1], **change)
    with pytest.raises(MetricsFormatError, match=message):
        main(
            [
                "--metrics",
                *map(str, paths),
                "--out-csv",
                str(tmp_path / "t.csv"),
                "--out-md",
                str(tmp_path / "t.md"),
            ]
        )
    assert not (tmp_path / "t.csv").exists()


def test_a_per_epoch_score_outside_the_unit_range_names_the_epoch(tmp_path: Path) -> None:
    paths = write_runs(tmp_path, "retrained", RETRAINED, "paper")
    record = json.loads(paths[2].read_text())
    record["per_epoch"][1]["DET"] = 1.5
    paths[2].write_text(json.dumps(record))
    with pytest.raises(MetricsFormatError, match=r"seed2\.json: per_epoch\[1\]\.DET is 1\.5, outside"):
        load_checked(paths)


def test_a_renamed_copy_of_a_seed_file_is_an_error_naming_both(tmp_path: Path) -> None:
    paths = write_runs(tmp_path, "retrained", RETRAINED, "clean")
    copy = tmp_path / "copy_of_seed0.json"
    shutil.copy(paths[0], copy)
    with pytest.raises(
        MetricsFormatError, match=r"copy_of_seed0\.json: records the same run as .*seed0\.json"
    ):
        load_checked([*paths, copy])


def test_the_same_path_twice_is_read_once_with_a_note(tmp_path: Path, capsys) -> None:
    paths = write_runs(tmp_path, "retrained", RETRAINED, "clean")
    twice = [*paths, paths[0], Path(str(paths[0]).replace("/clean/", "/clean/../clean/"))]
    table, _ = table_of(twice, tmp_path)
    assert table.iloc[0]["n_seeds"] == 3 and table.iloc[0]["seeds"] == "0 1 2"
    assert capsys.readouterr().err.count("given more than once; read once") == 2


def test_own_and_ingested_runs_are_chosen_and_compared_apart(tmp_path: Path) -> None:
    """The same variants and seed numbers from this project and from the authors: two sections."""
    own = write_runs(tmp_path / "own", "retrained", RETRAINED) + write_runs(
        tmp_path / "own", "sam-mma-add_token", SAM
    )
    shifted = {seed: ([v - 0.05 for v in lnk], loss) for seed, (lnk, loss) in RETRAINED.items()}
    theirs = write_runs(tmp_path / "theirs", "retrained", shifted, origin="authors")
    theirs += write_runs(tmp_path / "theirs", "sam-mma-add_token", SAM, origin="authors")
    table, md = table_of(own + theirs, tmp_path, "--protocols", "paper")
    rows = table.set_index(["origin", "variant"])
    assert rows.loc[("denselink", "retrained"), "seeds"] == "0 1 2"
    assert rows.loc[("authors", "retrained"), "seeds"] == "0 1 2"
    assert rows.loc[("denselink", "retrained"), "LNK_mean"] == pytest.approx(np.mean([0.90, 0.93, 0.95]))
    assert rows.loc[("authors", "retrained"), "LNK_mean"] == pytest.approx(np.mean([0.85, 0.88, 0.90]))
    sam = [0.96, 0.97, 0.93]  # epoch 1 in both origins
    ours, authors = rows.loc[("denselink", "sam-mma-add_token")], rows.loc[("authors", "sam-mma-add_token")]
    assert ours["comparison"] == "paired" and ours["n_pairs"] == 3
    assert ours["p_primary"] == pytest.approx(stats.ttest_rel(sam, [0.90, 0.93, 0.95]).pvalue)
    assert authors["comparison"] == "unpaired" and authors["n_pairs"] == 0
    assert authors["p_primary"] == pytest.approx(
        stats.ttest_ind(sam, [0.85, 0.88, 0.90], equal_var=False).pvalue
    )
    headings = [line for line in md.splitlines() if line.startswith("### ")]
    assert headings == [
        "### Fluo-N2DL-HeLa: train on 02, evaluate on 02",
        "### Fluo-N2DL-HeLa: train on 02, evaluate on 02 — the authors' published runs (ingested CSVs)",
    ]
    assert "| SAM (vit_b) | MMA | main | 3 pairs |" in md and "| SAM (vit_b) | MMA | main | 3 vs 3 |" in md


def test_fusion_ablations_are_a_holm_family_of_their_own(tmp_path: Path) -> None:
    musam = {seed: (lnk[::-1], loss) for seed, (lnk, loss) in SAM.items()}
    main_rows = write_runs(tmp_path, "retrained", RETRAINED, "clean")
    main_rows += write_runs(tmp_path, "sam-mma-add_wrfeat", SAM, "clean")
    main_rows += write_runs(tmp_path, "musam-mma-add_wrfeat", musam, "clean")
    ablations = write_runs(tmp_path, "sam-mma-concat", musam, "clean")
    ablations += write_runs(tmp_path, "musam-mma-add_token", SAM, "clean")
    settings = TableSettings(protocols=["clean"])
    alone = build_table(*load_metrics(main_rows), settings).set_index("variant")
    both = build_table(*load_metrics(main_rows + ablations), settings).set_index("variant")
    for name in ("sam-mma-add_wrfeat", "musam-mma-add_wrfeat"):
        assert both.loc[name, "holm_family"] == "main"
        for key in ("p_primary_holm", "p_rank_holm"):
            assert both.loc[name, key] == alone.loc[name, key]
    ablation = ["sam-mma-concat", "musam-mma-add_token"]
    assert both.loc[ablation, "holm_family"].tolist() == ["fusion ablations"] * 2
    assert both.loc[ablation, "p_primary_holm"].tolist() == pytest.approx(
        holm(both.loc[ablation, "p_primary"].tolist())
    )
    assert both.loc[ablation, "p_primary_holm"].tolist() != pytest.approx(
        holm(both.loc[[*ablation, "sam-mma-add_wrfeat", "musam-mma-add_wrfeat"], "p_primary"].tolist())[:2]
    )


def test_a_comparison_without_any_difference_keeps_its_row(tmp_path: Path) -> None:
    """Every paired difference 0: p = 1 in both tests, and the row stays in the Markdown."""
    paths = write_runs(tmp_path, "retrained", RETRAINED, "clean")
    paths += write_runs(tmp_path, "sam-mma-add_wrfeat", RETRAINED, "clean")
    paths += write_runs(tmp_path, "musam-mma-add_wrfeat", SAM, "clean")
    table, md = table_of(paths, tmp_path, "--protocols", "clean")
    same = table.set_index("variant").loc["sam-mma-add_wrfeat"]
    assert (same["p_primary"], same["p_rank"], same["dLNK_mean"]) == (1.0, 1.0, 0.0)
    interval = "[+0.000, +0.000] paired t 95 % CI, n=3"
    assert f"| SAM (vit_b) | MMA | main | 3 pairs | +0.000 | {interval} | 1 (1) | 1 (1) |" in md
    tested = table[table["holm_family"] == "main"]
    assert tested["p_primary_holm"].notna().sum() == tested["p_rank_holm"].notna().sum() == 2


def test_a_section_without_baseline_says_so(tmp_path: Path) -> None:
    _, md = table_of(
        write_runs(tmp_path, "sam-mma-add_wrfeat", SAM, "clean"), tmp_path, "--protocols", "clean"
    )
    assert "No comparison: this section has no re-trained baseline." in md
