"""``denselink plan``: jobs as Snakemake counts them, costs that follow the config, the disk goal."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from denselink.dry_run import dry_run
from denselink.errors import ConfigError
from denselink.plan import (
    COSTS,
    RULE_COSTS,
    Job,
    check_priced_rules,
    cover_windows,
    dense_disk,
    job_cost,
    load_config,
    load_costs,
    main,
    plan,
)

ROOT = Path(__file__).resolve().parents[1]


def job_stats(text: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints at the end of a dry run."""
    table = text.split("Job stats:", 1)[1].split("Reasons:", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.fixture(scope="module")
def full(monkeypatch_module: pytest.MonkeyPatch) -> tuple[str, dict, dict]:
    """Snakemake's own dry run of the full grid (its text, for its 'Job stats'), the config, the costs."""
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    cmd = [snakemake, "-n", "--forceall", "--configfile", "config.yaml"]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return text, load_config([Path("config.yaml")]), load_costs(COSTS, "cpu", "a100")


@pytest.fixture(scope="module")
def full_dag(monkeypatch_module: pytest.MonkeyPatch):
    """The full grid's jobs read from Snakemake's DAG in this process."""
    return dry_run([Path("config.yaml")], None, all_jobs=True)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        yield patch


def test_dag_jobs_carry_rule_and_wildcards_and_every_priced_rule_is_the_workflows(full_dag) -> None:
    infer = Job("maester_infer", {"dataset": "Fluo-N2DL-HeLa", "seq": "01", "run": "fluo", "epoch": "49"})
    assert infer in full_dag.jobs
    assert set(RULE_COSTS) <= full_dag.rules and "all" in full_dag.rules
    check_priced_rules(full_dag.rules)
    with pytest.raises(ConfigError) as err:
        check_priced_rules(full_dag.rules - {"tracking_score_cache"})
    assert str(err.value) == (
        "config error: Snakefile: no rule tracking_score_cache in the workflow; denselink plan prices it"
    )


def test_a_target_snakemake_cannot_make_is_one_config_error(monkeypatch_module: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        dry_run([Path("config.yaml")], "results/no_such_file.txt")
    assert err.value.path == "config.yaml"
    assert err.value.problem.startswith("Snakemake's DAG failed: No rule to produce results/no_such_file.txt")


def test_full_grid_counts_are_snakemakes_and_dense_disk_is_under_ten_percent(full, full_dag) -> None:
    text, config, costs = full
    jobs = full_dag.jobs
    rows = plan(jobs, config, costs)
    stats = job_stats(text)
    assert {rule: int(row["jobs"]) for rule, row in rows.items() if rule != "total"} == {
        rule: n for rule, n in stats.items() if rule != "total"
    }
    assert rows["total"]["jobs"] == stats["total"]
    dense = dense_disk(jobs, config, costs)
    assert 0 < dense["now_bytes"] <= 0.10 * dense["before_bytes"]  # config.yaml keeps no MAESTER volume
    assert rows["maester_infer"]["disk_kept"] == 0 and rows["maester_infer"]["disk_transient"] > 1e12


def test_costs_follow_the_config(full) -> None:
    _, config, costs = full
    gpu = costs["gpu"]["costs"]
    train = job_cost(Job("maester_train", {"run": "fluo"}), config, costs)
    steps = math.ceil(20000 / 4 / 32)
    assert train.gpu_s == pytest.approx(4 * 18250 * steps * gpu["maester_train_step_s"]["value"])
    infer = Job("maester_infer", {"dataset": "Fluo-N2DL-HeLa", "seq": "01", "run": "fluo", "epoch": "49"})
    windows = cover_windows((700, 1100), config)
    assert windows == 53650
    assert job_cost(infer, config, costs).gpu_s == pytest.approx(92 * windows * gpu["maester_fov_s"]["value"])
    kept = copy.deepcopy(config)
    kept["storage"]["keep_dense"]["maester"] = True
    assert job_cost(infer, kept, costs).disk_kept == job_cost(infer, config, costs).disk_transient > 0
    evaluate = Job("tracking_evaluate", {"dataset": "DIC-C2DH-HeLa", "protocol": "clean", "train_seq": "02",
                                         "eval_seq": "01", "variant": "retrained"})  # fmt: skip
    chosen = copy.deepcopy(config)
    chosen["protocols"]["clean"]["epochs"] = "chosen"
    every, seeds = job_cost(evaluate, config, costs).cpu_s, job_cost(evaluate, chosen, costs).cpu_s
    assert every == pytest.approx(config["tracking"]["settings"]["epochs"] * seeds)
    cell = {key: value for key, value in evaluate.wildcards.items() if key != "variant"}
    published = Job("tracking_evaluate_pretrained", cell)
    one = job_cost(published, config, costs).cpu_s
    assert seeds == pytest.approx(len(config["tracking"]["seeds"]) * one) and one > 0
    cpu = costs["cpu"]["costs"]  # DIC-C2DH-HeLa/01: 84 frames, ~15 cells per frame, 512x512 (costs.json)
    assert one == pytest.approx(84 * 15 * cpu["evaluate_checkpoint_detection_s"]["value"])
    cache_job = Job("tracking_score_cache", {"dataset": "DIC-C2DH-HeLa", "seq": "01"})
    per_frame = 512 * 512 / 1e6 * cpu["score_cache_frame_megapixel_s"]["value"]
    assert job_cost(cache_job, config, costs).cpu_s == pytest.approx(84 * per_frame) and per_frame > 0
    # the paper protocol trains the re-trained baseline for 300 epochs (protocols.paper.train_epochs)
    runs = {
        v: Job("tracking_train", {"protocol": "paper", "variant": v})
        for v in ("retrained", "sam-mma-add_wrfeat")
    }
    long, short = (job_cost(job, config, costs).gpu_s for job in runs.values())
    assert long == pytest.approx(3 * short) and short > 0


def test_command_prints_and_writes_the_plan(
    full, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch_module: pytest.MonkeyPatch
) -> None:
    text, _, _ = full
    assert main(["--all-jobs", "--json", str(tmp_path / "plan.json")]) == 0
    printed = capsys.readouterr().out
    assert "tracking_train" in printed and "ESTIMATES" in printed and "maester_train_step_s" in printed
    written = json.loads((tmp_path / "plan.json").read_text())
    assert written["rules"]["total"]["jobs"] == job_stats(text)["total"]
