"""End to end: the mini config run for real by Snakemake (minutes), then one named target rebuilt."""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake_cli import snakemake_cmd

REPO = Path(__file__).resolve().parents[1]
DATASET = "Synth-HeLa"
MINI = yaml.safe_load((REPO / "workflow/configs/mini.yaml").read_text())
SEEDS = len(MINI["tracking"]["seeds"])
ROLE = {  # how Table 1 marks a dataset's sections (datasets.NAME.role)
    name: " (positive control)"
    for name, spec in MINI["datasets"].items()
    if spec.get("role") == "positive_control"
}
MAESTER = "maester-synth-epoch3-centroid-add_wrfeat"  # mini.yaml: centroid only (config.yaml: mma too)
TABLE1_VARIANTS = ["retrained", MAESTER]
# Outside the demo's Table 1, asked for by path: the SAM and μSAM embedding stages and trackastra's
# pretrained model, once each on one cell of the grid.
EXTRA = [
    f"metrics/{DATASET}/clean/02-01/{variant}/seed0.json"
    for variant in ("sam-centroid-add_wrfeat", "musam-centroid-add_wrfeat", "pretrained")
]
REBUILD = EXTRA[0]

pytestmark = pytest.mark.slow


def snakemake(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = snakemake_cmd(workdir, *args, config=workdir / "mini.yaml")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)


@dataclass(frozen=True)
class MiniRun:
    workdir: Path
    results: Path
    sentinels: dict[Path, str]


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory) -> MiniRun:
    """The whole mini DAG; both roots lie outside the working directory and contain spaces (no env variable).

    Files named like the first word of each root sit beside them: an unquoted path would redirect a log
    into them or pass them as arguments.
    """
    base = tmp_path_factory.mktemp("mini")
    workdir, results, data = base / "work", base / "scratch results" / "mini run", base / "my data"
    workdir.mkdir()
    sentinels = {base / "scratch": "a user's file\n", base / "my": "another user's file\n"}
    for path, text in sentinels.items():
        path.write_text(text)
    config = yaml.safe_load((REPO / "workflow/configs/mini.yaml").read_text())
    config.update(results_root=str(results), data_root=str(data))
    config["mitocheck"]["root"] = str(data / "mitocheck")
    (workdir / "mini.yaml").write_text(yaml.safe_dump(config))
    env = {key: value for key, value in os.environ.items() if not key.startswith("DENSELINK_")}
    extra = [str(results / path) for path in EXTRA]
    for args in (["all", *extra], ["--report", str(results / "report.html")]):
        result = snakemake(workdir, *args, env=env)
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return MiniRun(workdir, results, sentinels)


def test_roots_outside_the_workdir_with_spaces_are_used_and_user_files_kept(mini_run: MiniRun) -> None:
    assert (mini_run.results / "tables" / "table1.csv").is_file()
    assert (mini_run.results.parents[1] / "my data" / "Synth-HeLa" / "01" / "t000.tif").is_file()
    assert sorted(p.name for p in mini_run.workdir.iterdir()) == [".snakemake", "mini.yaml"]
    assert {path: path.read_text() for path in mini_run.sentinels} == mini_run.sentinels


def test_table1_has_every_variant_with_two_seeds_and_scores_in_unit_range(mini_run):
    table = pd.read_csv(mini_run.results / "tables/table1.csv", dtype={"train_seq": str, "eval_seq": str})
    text = (mini_run.results / "tables/table1.md").read_text()
    # one section per protocol and the direction it runs, each with its own runs only
    headings = [line for line in text.splitlines() if line.startswith("##")]
    assert [line for line in headings if line.startswith("## ")] == [
        "## Protocol `clean`",
        "## Protocol `paper`",
    ]
    clean, paper = (
        headings[1 : headings.index("## Protocol `paper`")],
        headings[headings.index("## Protocol `paper`") + 1 :],
    )
    for section, eval_seq in ((clean, "01"), (paper, "02")):
        assert sorted(section) == [
            f"### {name}{ROLE.get(name, '')}: train on 02, evaluate on {eval_seq}"
            for name in (DATASET, "Synth-Motion")
        ]
    directions = {tuple(row) for row in table[["protocol", "train_seq", "eval_seq"]].to_numpy()}
    assert directions == {("clean", "02", "01"), ("paper", "02", "02")}
    paper = table[(table["protocol"] == "paper") & (table["variant"] != "pretrained")]
    assert all(len(set(epochs.split())) == 1 for epochs in paper["epochs"])  # one epoch for all seeds
    for protocol, train_seq, eval_seq in (("clean", "02", "01"), ("paper", "02", "02")):
        section = table[(table["protocol"] == protocol) & (table["eval_seq"] == eval_seq)]
        assert sorted(set(section["variant"])) == sorted(TABLE1_VARIANTS), protocol
        for variant in TABLE1_VARIANTS:
            row = section[section["variant"] == variant].iloc[0]
            assert row["train_seq"] == train_seq
            assert row["status"] == "ok"
            assert row["n_seeds"] == SEEDS
            assert 0.0 <= row["LNK_mean"] <= 1.0
            assert not math.isnan(row["LNK_var"])


def test_metrics_jsons_carry_lnk_tra_det(mini_run):
    paths = sorted((mini_run.results / "metrics").rglob("seed*.json"))
    # Table 1: 2 datasets x 2 protocols x 2 variants x seeds; Appendix C: 3 more checkpoints x seeds;
    # EXTRA: the SAM and μSAM cells (every seed: one job scores a cell) and the published model (one run)
    assert len(paths) == 2 * 2 * 2 * SEEDS + 3 * SEEDS + 2 * SEEDS + 1
    assert {str(path.relative_to(mini_run.results)) for path in paths} >= set(EXTRA)
    for path in paths:
        record = json.loads(path.read_text())
        if record.get("status") == "skipped":  # trackastra's published model cannot be downloaded offline
            assert record["variant"] == "pretrained" and record["reason"]
            continue
        for key in ("LNK", "TRA", "DET"):
            assert 0.0 <= record[key] <= 1.0, (path, key)
        epochs = [e["epoch"] for e in record["per_epoch"]]
        if record["protocol"] == "clean":  # mini.yaml: only the checkpoint chosen by val_loss is scored
            scored = [e for e in record["per_epoch"] if e["LNK"] is not None]
            assert [e["epoch"] for e in scored] == [record["epoch"]]
            assert record["epoch"] == min(record["per_epoch"], key=lambda e: e["val_loss"])["epoch"]
        else:
            assert epochs == list(range(12))  # the paper protocol scores every Trackastra epoch


def test_demo_links_by_motion_where_it_suffices_and_by_fused_texture_where_not(mini_run):
    table = pd.read_csv(mini_run.results / "tables/table1.csv", dtype={"train_seq": str, "eval_seq": str})
    clean = table[(table["protocol"] == "clean") & (table["eval_seq"] == "01")]
    motion = clean[(clean["dataset"] == "Synth-Motion") & (clean["variant"] == "retrained")].iloc[0]
    assert motion["LNK_mean"] >= 0.95 and motion["DET_mean"] >= 0.98
    for protocol in ("clean", "paper"):
        texture = table[(table["protocol"] == protocol) & (table["dataset"] == DATASET)].set_index("variant")
        fused = texture.loc[MAESTER]
        assert fused["LNK_mean"] > texture.loc["retrained", "LNK_mean"], protocol
        assert fused["dLNK_mean"] > 0 and fused["primary_test"] == "paired t", protocol


def test_report_holds_table1_and_the_figures(mini_run):
    html = (mini_run.results / "report.html").read_text()
    for name in ("table1.csv", "compute_scaling.png", "transfer.png", "data_scaling.png"):
        assert name in html


def test_appendix_c_figures_are_drawn(mini_run):
    for study in ("compute_scaling", "transfer", "data_scaling"):
        for ext in ("png", "svg", "json"):
            assert (mini_run.results / f"figures/{study}.{ext}").stat().st_size > 0
    # mini.yaml runs Appendix C under the paper protocol only: no clean panel
    assert list(json.loads((mini_run.results / "figures/compute_scaling.json").read_text())["protocols"]) == [
        "paper"
    ]
    assert {
        p["protocol"] for p in json.loads((mini_run.results / "figures/transfer.json").read_text())["panels"]
    } == {"paper"}


def test_one_named_target_is_rebuilt_alone_and_identically(mini_run):
    target = mini_run.results / REBUILD
    before = target.read_bytes()
    target.unlink()
    result = snakemake(mini_run.workdir, str(target))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count("rule tracking_evaluate:") == 1
    assert "rule tracking_train:" not in log
    assert target.read_bytes() == before  # same checkpoint, same seed: the same metrics
