"""The config schema and the experiment grid, checked with `snakemake -n` (no job runs)."""

from __future__ import annotations

import copy
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
MINI = REPO / "workflow" / "configs" / "mini.yaml"
FULL = REPO / "config.yaml"
sys.path.insert(0, str(REPO / "workflow" / "schemas"))

import build_stage_schemas  # noqa: E402

from denselink.errors import ConfigError  # noqa: E402
from denselink.preflight import check_protocols, protocol_epochs  # noqa: E402


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


def _set(*path_and_value):
    """An edit of a config dict: set the key at ``path`` to ``value``."""
    *path, key, value = path_and_value

    def edit(config: dict) -> None:
        node = config
        for part in path:
            node = node[part]
        node[key] = value

    return edit


BAD_CONFIGS = {
    "unknown-stage-key": (
        _set("tracking", "settings", "d_modle", 32),
        "tracking.settings",
        "'d_modle' was unexpected",
    ),
    "unknown-top-key": (_set("seedz", [0]), "<top level>", "'seedz' was unexpected"),
    "wrong-type": (
        _set("maester", "train", "epochs", "three"),
        "maester.train.epochs",
        "not of type 'integer'",
    ),
    "out-of-range": (_set("protocols", "clean", "val_fraction", 1.5), "protocols.clean.val_fraction", "1.5"),
    "negative-seed": (
        _set("tracking", "seeds", [-1]),
        "tracking.seeds.0",
        "-1 is less than the minimum of 0",
    ),
    "unsaved-epoch": (
        _set("maester", "train", "save_epochs", [1, 2]),
        "table1.maester.Synth-HeLa.epoch",
        "save_epochs",
    ),
}


@pytest.mark.parametrize(("edit", "key", "problem"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, mini, edit, key, problem):
    bad = copy.deepcopy(mini)
    edit(bad)
    result = dry_run([write_config(tmp_path, bad)], workdir=tmp_path)
    assert result.returncode != 0
    message = result.stderr + result.stdout
    line = next((ln for ln in message.splitlines() if ln.strip().startswith(f"{key}:")), None)
    if line is None:  # cross-reference errors come as one line "invalid config: KEY: problem"
        line = next(ln for ln in message.splitlines() if f"invalid config: {key}:" in ln)
    assert problem in line
    assert "Building DAG" not in message  # rejected before the DAG, so before any job


def test_mini_config_is_valid_and_builds_table1_and_figures(tmp_path):
    result = dry_run([MINI], "--quiet", "rules", workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["evaluate_table"] == 1
    assert counts["figures_appendix_c"] == 3
    # Table 1: 2 datasets x 2 protocols x (re-trained, MAESTER) x 3 seeds; Appendix C: 3 more checkpoints
    assert counts["tracking_train"] == counts["tracking_evaluate"] == 2 * 2 * 2 * 3 + 3 * 3
    # SAM/μSAM and the pretrained model are left to tests/test_workflow.py, which asks for them by path
    assert "foundation_embed" not in counts and "tracking_evaluate_pretrained" not in counts


def job_counts(output: str) -> dict[str, int]:
    """Job counts of the 'Job stats' table of a dry run."""
    block = output.split("Job stats:")[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, flags=re.M)}


@pytest.fixture(scope="module")
def full_dag(tmp_path_factory) -> set[str]:
    """Every output of the full paper experiment's DAG, inspected before any data is in place."""
    tmp = tmp_path_factory.mktemp("full")
    override = tmp / "override.yaml"
    override.write_text(yaml.safe_dump({"mitocheck": {"root": str(tmp / "mitocheck")}}))
    result = dry_run([FULL, override], workdir=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    # absent Mitocheck plates: a warning in a dry run (a real run stops at start-up, tests/test_paths.py)
    assert f"WARNING (dry run): mitocheck.root: {tmp / 'mitocheck'} does not exist" in result.stderr
    outputs = set()
    for line in re.findall(r"^\s+output: (.+)$", result.stdout, flags=re.M):
        outputs.update(p.strip() for p in line.split(","))
    return outputs


def test_full_config_runs_every_table1_cell_with_8_seeds(full_dag):
    config = yaml.safe_load(FULL.read_text())
    assert config["tracking"]["seeds"] == list(range(8))
    embeddings = {
        "Fluo-N2DL-HeLa": ["sam", "musam", "maester-fluo-epoch18249"],
        "DIC-C2DH-HeLa": ["sam", "musam", "maester-dic-epoch18249"],
    }
    directions = {"clean": ["02-01", "01-02"], "paper": ["02-02"]}
    expected = set()
    for dataset, protocol in itertools.product(embeddings, directions):
        for direction in directions[protocol]:
            stem = f"results/metrics/{dataset}/{protocol}/{direction}"
            expected.add(f"{stem}/pretrained/seed0.json")
            variants = ["retrained"] + [
                f"{e}-{agg}-{fusion}"
                for e, agg, fusion in itertools.product(
                    embeddings[dataset], ["mma", "centroid"], ["add_wrfeat", "add_token", "concat"]
                )
            ]
            expected.update(f"{stem}/{v}/seed{s}.json" for v in variants for s in range(8))
    assert len(expected) == 2 * 3 * (1 + 19 * 8)
    assert expected <= full_dag
    assert {"results/tables/table1.csv", "results/tables/table1.md"} <= full_dag


def test_full_config_runs_the_appendix_c_grid(full_dag):
    epochs = [49, 149, 449, 1399, 2399, 4399, 6399, 8399, 10399, 12399, 14399, 16399, 16599, 17599, 18249]
    runs = {"fluo": epochs, **{f"mitocheck{size}": epochs for size in (100, 200, 300, 400)}}
    expected = {
        f"results/metrics/Fluo-N2DL-HeLa/{protocol}/{direction}/maester-{run}-epoch{e}-centroid-add_wrfeat/seed{s}.json"
        for protocol, direction in (("paper", "02-02"), ("clean", "02-01"))
        for run, run_epochs in runs.items()
        for e in run_epochs
        for s in range(8)
    }
    assert len(expected) == 2 * 5 * 15 * 8
    assert expected <= full_dag
    for study in ("compute_scaling", "transfer", "data_scaling"):
        assert {f"results/figures/{study}.{ext}" for ext in ("png", "svg", "json")} <= full_dag
    checkpoints = {p for p in full_dag if p.startswith("results/maester/")}
    assert checkpoints == {f"results/maester/{run}/done.json" for run in ["dic", *runs]}


def test_early_stopping_without_validation_data_stops_at_start_up(tmp_path, mini):
    bad = copy.deepcopy(mini)
    bad["protocols"]["paper"]["directions"] = [{"train": "02", "eval": "02"}]
    bad["tracking"]["early_stopping"]["retrained"] = True
    result = dry_run([write_config(tmp_path, bad)], workdir=tmp_path)
    message = result.stderr + result.stdout
    assert result.returncode != 0 and "Building DAG" not in message
    assert (
        "invalid config: config error: tracking.early_stopping.retrained: early stopping needs validation "
        "data, but protocols.paper trains on 02 without any" in message
    )


PROTOCOL_PROBLEMS = {
    "val-and-tail": (
        {"val_fraction": 0.1, "directions": [{"train": "02", "eval": "01", "val": "01"}]},
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


def test_full_config_paper_protocol_trains_as_the_authors(tmp_path):
    """train 02 with val_loss on 01; 300 epochs for the baseline (early-stopped) and MAESTER-centroid."""
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"mitocheck": {"root": str(tmp_path / "mitocheck")}}))
    variants = ["retrained", "maester-fluo-epoch18249-centroid-add_token", "sam-mma-add_token"]
    targets = [f"results/models/Fluo-N2DL-HeLa/paper/train02/{v}/seed0/done.json" for v in variants]
    targets.append("results/models/Fluo-N2DL-HeLa/clean/train02/retrained/seed0/done.json")
    result = dry_run([FULL, override], "-p", "--", *targets, workdir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {}
    train_command = r"^Shell command: (?:DENSELINK_GPUS=\d+ )?(denselink tracking train .+)$"
    for line in re.findall(train_command, result.stdout, flags=re.M):
        out = re.search(r"--out (\S+)", line)[1]
        settings = json.loads(re.search(r"--settings '(\{.*?\})'", line)[1])
        val = re.search(r"--val-data (\S+)", line)
        jobs[out.split("/")[3] + "/" + out.split("/")[5]] = (val and val[1], settings)
    cache01 = "results/trackastra_data/Fluo-N2DL-HeLa/01.pt"
    retrained = jobs["paper/retrained"]
    assert retrained[0] == cache01 and retrained[1]["epochs"] == 300 and retrained[1]["early_stopping"]
    maester = jobs["paper/maester-fluo-epoch18249-centroid-add_token"]
    assert maester[0] == cache01 and maester[1]["epochs"] == 300 and not maester[1]["early_stopping"]
    sam = jobs["paper/sam-mma-add_token"]
    assert sam[0] == cache01 and sam[1]["epochs"] == 100 and sam[1]["val_fraction"] == 0
    clean = jobs["clean/retrained"]
    assert clean[0] is None and clean[1]["val_fraction"] == 0.1 and clean[1]["epochs"] == 100
