"""A study runs when its config section is present; dataset names are CTC names, '+' included."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from snakemake_cli import snakemake_cmd

from denselink.errors import ConfigError
from denselink.pipeline import grid
from denselink.pipeline import layout as L
from denselink.pipeline.checks import load_config, preflight
from denselink.pipeline.layout import Layout
from denselink.plan import main as plan_main

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "workflow" / "configs" / "mini.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CROP = REPO / "tests" / "data" / "ctc_sim_crop"

TABLE1_ONLY = {
    "config_version": 2,
    "results_root": "results",
    "data_root": str(CROP.parent),
    "datasets": {"Fluo-N2DH-SIM+": {"source": "ctc", "folder": "ctc_sim_crop"}},
    "table1": {"datasets": ["Fluo-N2DH-SIM+"], "protocols": ["clean"], "embeddings": [], "pretrained": False},
}
"""Table 1 alone: no maester runs, no appendix_c, nothing else."""


def _write(tmp_path: Path, config: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def _dry_run(config: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    cmd = snakemake_cmd(workdir, "-n", "-p", config=config, profile=None)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _job_counts(output: str) -> dict[str, int]:
    block = output.split("Job stats:")[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, flags=re.M)}


def test_table1_alone_needs_no_other_section(tmp_path: Path) -> None:
    config = load_config([_write(tmp_path, TABLE1_ONLY)], SCHEMA)
    preflight(config, tmp_path)
    assert "appendix_c" not in config and config["maester"]["runs"] == {}
    assert grid.studies(config) == ["table1"]
    assert grid.study_checkpoints(config) == [] and grid.appc_baseline(config) == []
    assert all(
        grid.figure_files(config, study) == [] for study in ("compute_scaling", "transfer", "data_scaling")
    )
    assert len(grid.table1_targets(config)) == 2 * 8  # 2 clean directions x re-trained x 8 seeds
    assert grid.studies_line(config) == (
        "studies this config runs: table1; not run (no section): "
        "appendix_c.compute_scaling, appendix_c.transfer, appendix_c.data_scaling"
    )


def test_one_appendix_c_study_alone(tmp_path: Path) -> None:
    mini = yaml.safe_load(MINI.read_text())
    del mini["table1"], mini["appendix_c"]["compute_scaling"], mini["appendix_c"]["data_scaling"]
    config = load_config([_write(tmp_path, mini)], SCHEMA)
    assert grid.studies(config) == ["appendix_c.transfer"]
    assert grid.table1_files(config) == [] and grid.table1_targets(config) == []
    assert [(s, r, e) for s, r, e in grid.study_checkpoints(config)] == [
        ("transfer", "synth", 3),
        ("transfer", "mitocheck100", 3),
    ]
    assert grid.figure_files(config, "compute_scaling") == []
    assert grid.figure_files(config, "transfer") == [
        f"results/mini/figures/transfer.{e}" for e in ("png", "svg", "json")
    ]
    assert grid.used_datasets(config) == ["Synth-HeLa"]


def test_a_study_section_naming_an_unknown_run_is_still_checked(tmp_path: Path) -> None:
    mini = yaml.safe_load(MINI.read_text())
    mini["appendix_c"]["transfer"]["runs"][0]["run"] = "fluo"
    with pytest.raises(ConfigError) as err:
        load_config([_write(tmp_path, mini)], SCHEMA)
    assert (err.value.path, err.value.problem) == ("appendix_c.transfer", "run 'fluo' is not in maester.runs")


def test_dry_run_of_table1_alone_on_a_plus_name(tmp_path: Path) -> None:
    result = _dry_run(_write(tmp_path, TABLE1_ONLY), tmp_path)
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result.stdout)
    assert (
        counts["tracking_train"] == 16 and counts["tracking_evaluate"] == 2 and counts["evaluate_table"] == 1
    )
    assert "figures_appendix_c" not in counts and "maester_train" not in counts
    assert "results/metrics/Fluo-N2DH-SIM+/clean/02-01/retrained/seed7.json" in result.stdout
    assert f"--dataset-dir {CROP}" in result.stdout or f"--dataset-dir '{CROP}'" in result.stdout
    assert (
        "studies this config runs: table1; not run (no section): appendix_c.compute_scaling" in result.stderr
    )


def test_plan_names_the_studies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    config = _write(tmp_path, TABLE1_ONLY)
    assert plan_main(["--configfile", str(config), "--json", str(tmp_path / "plan.json")]) == 0
    printed = capsys.readouterr().out
    assert "studies this config runs: table1;" in printed
    assert re.search(r"disk this run needs under results: [\d.]+ [KMG]B kept", printed)
    record = json.loads((tmp_path / "plan.json").read_text())
    assert record["studies"] == ["table1"] and record["rules"]["tracking_evaluate"]["disk_kept"] > 0


@pytest.mark.parametrize("name", ["Fluo-N2DH-SIM+", "Fluo-N3DH-SIM+", "PhC-C2DH-U373", "BF-C2DL-HSC"])
def test_ctc_names_are_dataset_names(tmp_path: Path, name: str) -> None:
    config = copy.deepcopy(TABLE1_ONLY)
    config["datasets"] = {name: config["datasets"]["Fluo-N2DH-SIM+"]}
    config["table1"]["datasets"] = [name]
    loaded = load_config([_write(tmp_path, config)], SCHEMA)
    assert Layout.of(loaded).dataset_dir(name) == f"{CROP}"
    assert Layout.of(loaded).path(L.MANIFEST, source=f"{name}/01") == f"results/data/{name}/01/manifest.json"


@pytest.mark.parametrize("name", ["my data", "-lead", "a/b", "Fluo N2DH"])
def test_other_names_are_refused_naming_the_key(tmp_path: Path, name: str) -> None:
    config = copy.deepcopy(TABLE1_ONLY)
    config["datasets"] = {name: config["datasets"]["Fluo-N2DH-SIM+"]}
    with pytest.raises(ConfigError) as err:
        load_config([_write(tmp_path, config)], SCHEMA)
    assert f"datasets: {name!r} does not match" in err.value.problem


def test_folder_is_for_local_ctc_data_only(tmp_path: Path) -> None:
    config = copy.deepcopy(TABLE1_ONLY)
    config["datasets"]["Fluo-N2DH-SIM+"] = {"source": "synthetic", "folder": "ctc_sim_crop"}
    with pytest.raises(ConfigError) as err:
        preflight(load_config([_write(tmp_path, config)], SCHEMA), tmp_path)
    assert err.value.path == "datasets.Fluo-N2DH-SIM+.folder"


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    config = copy.deepcopy(TABLE1_ONLY)
    config["datasets"]["Fluo-N2DH-SIM+"]["folder"] = "nowhere"
    with pytest.raises(ConfigError) as err:
        preflight(load_config([_write(tmp_path, config)], SCHEMA), tmp_path)
    assert (
        err.value.path == "datasets.Fluo-N2DH-SIM+"
        and f"{CROP.parent}/nowhere does not exist" in err.value.problem
    )
