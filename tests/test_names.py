"""One grammar for the names in paths: runs, embeddings, variants, checkpoints; the schema derives from it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from denselink import filenames
from denselink.errors import CheckpointError, ConfigError
from denselink.evaluate.metrics import MetricsFormatError, load_metrics, metrics_record, write_metrics
from denselink.evaluate.table import TableSettings, build_table
from denselink.pipeline import layout as L
from denselink.pipeline.checks import load_config
from denselink.tracking.evaluate import default_variant
from denselink.vocabulary import (
    MAESTER_EMBEDDING,
    NAME_PATTERNS,
    embedding_name,
    fill,
    parse_variant,
    template_regex,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
MINI = REPO / "workflow" / "configs" / "mini.yaml"


def test_a_template_fills_and_parses_back() -> None:
    assert fill(MAESTER_EMBEDDING, run="fluo", epoch=49) == "maester-fluo-epoch49"
    assert fill(MAESTER_EMBEDDING, run="fluo") == "maester-fluo-epoch{epoch}"
    match = template_regex(MAESTER_EMBEDDING, run=r"[a-z]+", epoch=r"\d+").match("maester-fluo-epoch49")
    assert match is not None and match.groupdict() == {"run": "fluo", "epoch": "49"}
    assert template_regex("a.{x}", x="b").match("a.b") and not template_regex("a.{x}", x="b").match("axb")


def test_embedding_names_follow_the_one_template() -> None:
    assert embedding_name("maester", "mitocheck100", 18249) == "maester-mitocheck100-epoch18249"
    assert parse_variant("maester-mitocheck100-epoch0-mma-concat").epoch == 0
    with pytest.raises(ConfigError, match="MAESTER needs a run name and an epoch, got 'mito-100', 3"):
        embedding_name("maester", "mito-100", 3)


def test_checkpoint_file_names() -> None:
    assert filenames.maester_checkpoint(49) == "checkpoints/epoch49.pt"
    assert filenames.maester_checkpoint("49") == "checkpoints/epoch49.pt"  # a wildcard's value
    assert filenames.trackastra_checkpoint(7) == "checkpoints/epoch007.pt"
    assert filenames.trackastra_checkpoint(1234) == "checkpoints/epoch1234.pt"
    assert filenames.checkpoint_epoch("run/checkpoints/epoch007.pt") == 7
    assert filenames.checkpoint_epoch(filenames.maester_checkpoint(18249)) == 18249
    assert filenames.checkpoint_epoch("maester-fluo-epoch3.zarr") is None
    assert filenames.checkpoint_epoch("checkpoints/last.pt") is None


def test_checkpoints_are_listed_in_epoch_order(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no checkpoints/epoch\*\.pt"):
        filenames.list_checkpoints(tmp_path)
    for epoch in (1000, 2, 999):
        path = tmp_path / filenames.trackastra_checkpoint(epoch)
        path.parent.mkdir(exist_ok=True)
        path.touch()
    (tmp_path / "checkpoints" / "epochs.pt").touch()  # not a checkpoint name
    names = [p.name for p in filenames.list_checkpoints(tmp_path)]
    assert names == ["epoch002.pt", "epoch999.pt", "epoch1000.pt"]


def test_layout_patterns_are_built_from_the_bottom_layer() -> None:
    assert L.MAESTER_DONE == "maester/{run}/done.json" and L.MODEL.endswith("/seed{seed}/done.json")
    assert L.MANIFEST == "data/{source}/manifest.json"
    assert L.MAESTER_EMBEDDING_VOLUME == "embeddings/{dataset}/{seq}/maester-{run}-epoch{epoch}.zarr"
    assert L.maester_checkpoint("results/maester/fluo", "49") == "results/maester/fluo/checkpoints/epoch49.pt"


def test_schema_name_patterns_are_the_vocabulary() -> None:
    defs = json.loads((SCHEMA.parent / "stages.schema.json").read_text())["$defs"]
    for name, (pattern, _) in NAME_PATTERNS.items():
        assert defs[name]["pattern"] == f"^(?:{pattern})$"


@pytest.mark.parametrize(
    ("where", "name"),
    [
        (("maester", "runs"), "mito-100"),
        (("datasets",), "-Fluo"),
    ],
)
def test_a_name_outside_the_grammar_is_refused_naming_it(tmp_path: Path, where, name) -> None:
    config = yaml.safe_load(MINI.read_text())
    section = config
    for key in where:
        section = section[key]
    section[name] = next(iter(section.values()))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        load_config([tmp_path / "bad.yaml"], SCHEMA)
    assert f"'{name}' does not match" in err.value.problem


def test_default_variant_of_a_scored_run() -> None:
    assert default_variant({"fusion_config": None}) == "retrained"
    recipe = {"embedding": "/r/embeddings/D/02/maester-fluo-epoch49.zarr", "agg": "mma"}
    config = {"fusion_config": {"fusion": "concat"}, "features_recipe": recipe}
    assert default_variant(config) == "maester-fluo-epoch49-mma-concat"
    assert parse_variant(default_variant(config)).fusion == "concat"
    assert default_variant({"fusion_config": {"fusion": "concat"}, "features_recipe": None}) is None
    recipe["embedding"] = "/r/my-volume.zarr"  # named outside the workflow
    assert default_variant(config) is None
    recipe["backbone"] = "musam"
    assert default_variant(config) == "musam-mma-concat"


def test_a_record_without_variant_name_is_refused_by_the_table_naming_the_file(tmp_path: Path) -> None:
    scores = {"LNK": 0.9, "TRA": 0.9, "DET": 0.9}
    run = {"dataset": "D", "seed": 0, "protocol": "clean", "train_seq": "02", "eval_seq": "01"}
    for name, variant in (("named", "retrained"), ("unnamed", None)):
        record = metrics_record(**run, variant=variant, checkpoint=None, scores=scores)
        write_metrics(tmp_path / f"{name}.json", record)
    runs, epochs = load_metrics([tmp_path / "named.json", tmp_path / "unnamed.json"])
    with pytest.raises(MetricsFormatError, match=r"unnamed\.json: variant .*: variant must be retrained"):
        build_table(runs, epochs, TableSettings())


STAGE_PACKAGES = ("data", "maester", "foundation", "features", "tracking", "evaluate", "figures")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return names


def test_no_stage_and_no_bottom_module_imports_the_pipeline_layer() -> None:
    src = REPO / "src" / "denselink"
    modules = [p for package in STAGE_PACKAGES for p in sorted((src / package).glob("*.py"))]
    modules += [src / name for name in ("vocabulary.py", "filenames.py", "stages.py", "errors.py")]
    upward = {}
    for path in modules:
        found = sorted(m for m in _imports(path) if m.startswith("denselink.pipeline"))
        if found:
            upward[str(path.relative_to(src))] = found
    assert len(modules) > 40 and upward == {}
