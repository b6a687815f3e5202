"""The config schema, and the workflow end to end with `snakemake -n` (no job runs).

The grid and the checks themselves are unit-tested without Snakemake in tests/test_pipeline.py.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
MINI = REPO / "workflow" / "configs" / "mini.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
FULL = REPO / "config.yaml"
sys.path.insert(0, str(REPO / "workflow" / "schemas"))

import build_stage_schemas  # noqa: E402

from denselink.errors import ConfigError  # noqa: E402
from denselink.pipeline import grid  # noqa: E402
from denselink.pipeline.checks import check_protocols, load_config  # noqa: E402
from denselink.pipeline.jobs import protocol_epochs  # noqa: E402
from denselink.vocabulary import STUDIES  # noqa: E402


def dry_run(configs: list[Path], *args: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """`snakemake -n` of the workflow with these config files, run in ``workdir``."""
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n", "--configfile"]
    cmd += [str(c) for c in configs]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def mini() -> dict:
    return yaml.safe_load(MINI.read_text())


def test_stage_schemas_are_generated_from_the_current_models():
    on_disk = build_stage_schemas.OUT.read_text()
    assert on_disk == build_stage_schemas.render(), "run workflow/schemas/build_stage_schemas.py"


def test_every_schema_key_has_a_description():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    stages = build_stage_schemas.build()
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    missing.append(f"{where}.{key}")
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(schema, "config")
    walk(stages, "stages")
    assert missing == []


def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, mini):
    """End to end: Snakemake stops at start-up (tests/test_pipeline.py checks each kind of mistake)."""
    bad = copy.deepcopy(mini)
    bad["tracking"]["settings"]["d_modle"] = 32
    result = dry_run([write_config(tmp_path, bad)], workdir=tmp_path)
    assert result.returncode != 0
    message = result.stderr + result.stdout
    assert "invalid config (see workflow/schemas/config.schema.yaml):" in message
    assert any(
        ln.strip().startswith("tracking.settings:") and "'d_modle' was unexpected" in ln
        for ln in message.splitlines()
    )
    assert "Building DAG" not in message  # rejected before the DAG, so before any job


def test_mini_config_is_valid_and_builds_table1_and_figures(tmp_path):
    result = dry_run([MINI], "--quiet", "rules", workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["evaluate_table"] == 1
    assert counts["figures_appendix_c"] == 3
    # Table 1: 2 datasets x 2 protocols x (re-trained, MAESTER) x 3 seeds; Appendix C: 3 more checkpoints
    assert counts["tracking_train"] == 2 * 2 * 2 * 3 + 3 * 3
    assert counts["tracking_evaluate"] == counts["tracking_train"] // 3  # one job scores a cell's 3 seeds
    # SAM/μSAM and the pretrained model are left to tests/test_workflow.py, which asks for them by path
    assert "foundation_embed" not in counts and "tracking_evaluate_pretrained" not in counts


def job_counts(output: str) -> dict[str, int]:
    """Job counts of the 'Job stats' table of a dry run."""
    block = output.split("Job stats:")[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, flags=re.M)}


def test_full_dry_run_scores_exactly_the_grid(tmp_path):
    """The rules wire the package's grid: the DAG scores every Table 1 and Appendix C run, nothing else."""
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"mitocheck": {"root": str(tmp_path / "mitocheck")}}))
    result = dry_run([FULL, override], workdir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # absent Mitocheck plates: a warning in a dry run (a real run stops at start-up, tests/test_paths.py)
    assert f"WARNING (dry run): mitocheck.root: {tmp_path / 'mitocheck'} does not exist" in result.stderr
    outputs = set()
    for line in re.findall(r"^\s+output: (.+)$", result.stdout, flags=re.M):
        outputs.update(p.strip() for p in line.split(","))
    config = load_config([FULL, override], SCHEMA)
    expected = set(grid.table1_targets(config) + grid.appc_baseline(config))
    expected.update(p for study in STUDIES for p in grid.appc_targets(config, study))
    assert {p for p in outputs if p.startswith("results/metrics/")} == expected
    counts = job_counts(result.stdout)
    # 2,096 runs of the paper's grid and ablations + 288 of the etultra arm (2 datasets x 3 directions x 48)
    assert counts["tracking_train"] == 2384 and counts["tracking_evaluate"] == 2384 // 8
    pretrained = {p for p in expected if "/pretrained/" in p}
    assert counts["tracking_evaluate_pretrained"] == len(pretrained) == len(expected) - 2384
    checkpoints = {p for p in outputs if p.startswith("results/maester/")}
    runs = ["fluo", "dic", *(f"mitocheck{size}" for size in (100, 200, 300, 400))]
    assert checkpoints == {f"results/maester/{run}/done.json" for run in runs}


PROTOCOL_PROBLEMS = {
    "val-and-tail": (
        {"val_fraction": 0.1, "directions": [{"train": "02", "eval": "01", "val": "03"}]},
        "protocols.clean.val_fraction",
    ),
    "clean-validates-on-test-data": (
        {"val_fraction": 0.0, "directions": [{"train": "02", "eval": "01", "val": "01"}]},
        "protocols.clean.directions",
    ),
    "one-model-two-vals": (
        {
            "directions": [
                {"train": "02", "eval": "01", "val": "03"},
                {"train": "02", "eval": "04", "val": "05"},
            ]
        },
        "protocols.clean.directions",
    ),
}


@pytest.mark.parametrize(("spec", "key"), PROTOCOL_PROBLEMS.values(), ids=PROTOCOL_PROBLEMS.keys())
def test_protocol_problems_name_the_key(spec, key):
    config = {"protocols": {"clean": spec}, "table1": {"protocols": ["clean"]}, "tracking": {}}
    with pytest.raises(ConfigError) as err:
        check_protocols(config)
    assert err.value.path == key
    paper = {
        "val_fraction": 0.0,
        "epochs": "chosen",
        "directions": [{"train": "02", "eval": "02", "val": "01"}],
    }
    with pytest.raises(ConfigError, match="every epoch"):
        check_protocols({"protocols": {"paper": paper}, "appendix_c": {"protocols": ["paper"]}})


def test_protocol_epochs_first_matching_pattern():
    spec = {"train_epochs": {"retrained": 300, "maester-fluo-epoch18249-centroid-*": 250, "maester-*": 7}}
    assert protocol_epochs(spec, "retrained") == 300
    assert protocol_epochs(spec, "maester-fluo-epoch18249-centroid-add_token") == 250
    assert protocol_epochs(spec, "maester-fluo-epoch18249-mma-add_token") == 7
    assert protocol_epochs(spec, "sam-mma-add_token") is None
