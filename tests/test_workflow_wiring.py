"""What the rule files take from denselink.pipeline: shared directives, the variant parsed once per job,
the published model as a variant that is not trained, the files a data job reads. No Snakemake."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace as job

import pytest

from denselink.pipeline import grid, jobs, real_spec, scoring
from denselink.pipeline.checkpoint_inputs import sequence_files
from denselink.pipeline.checks import load_config
from denselink.pipeline.directives import CPU_ENV, GPU_ENV, RuleDirectives
from denselink.vocabulary import parse_variant

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIGS = REPO / "workflow" / "configs"


@pytest.fixture(scope="module")
def full() -> dict:
    return load_config([REPO / "config.yaml"], SCHEMA)


@pytest.fixture(scope="module")
def mini() -> dict:
    return load_config([CONFIGS / "mini.yaml"], SCHEMA)


def test_a_rules_directives_come_from_its_name_and_the_config(mini: dict) -> None:
    mini = mini | {"resources": {**mini["resources"], "tracking_evaluate": {"cpus": 3, "mem_mb": 5000}}}
    root = mini["results_root"]
    train = RuleDirectives.of(mini, "tracking_train", "{dataset}/seed{seed}", gpu=True)
    assert (train.log, train.benchmark) == (
        f"{root}/logs/tracking_train/{{dataset}}/seed{{seed}}.log",
        f"{root}/benchmarks/tracking_train/{{dataset}}/seed{{seed}}.tsv",
    )
    assert (train.conda, train.threads) == (GPU_ENV, 1)
    assert train.resources == {"mem_mb": 2000, "runtime": 30, "cpus_per_task": 1, "gpu": 0}
    published = RuleDirectives.of(mini, "tracking_evaluate_pretrained", "x", resources="tracking_evaluate")
    assert published.log == f"{root}/logs/tracking_evaluate_pretrained/x.log"
    assert (published.conda, published.threads) == (CPU_ENV, 3)
    assert published.resources == {"mem_mb": 5000, "runtime": 30, "cpus_per_task": 3, "gpu": 0}


def test_the_published_model_is_the_one_variant_not_trained(mini: dict) -> None:
    assert [parse_variant(v).trained for v in ("pretrained", "retrained", "sam-mma-concat")] == [
        False,
        True,
        True,
    ]
    assert grid.UNTRAINED == ("pretrained",)
    assert grid.seeds_of(mini, "pretrained") == [0]
    assert grid.seeds_of(mini, "retrained") == mini["tracking"]["seeds"] == [0, 1, 2]
    model = re.compile(rf"models/({grid.TRAINED_VARIANT})/seed0")
    matched = [
        v
        for v in ("retrained", "pretrained", "pretrained2", "sam-mma-concat")
        if model.fullmatch(f"models/{v}/seed0")
    ]
    assert matched == ["retrained", "pretrained2", "sam-mma-concat"]


def test_a_job_parses_its_variant_once(full: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A training job's inputs (data, features, validation data and features) and settings, then the
    scoring of its cell: one parse of the variant name."""
    names: list[str] = []

    def counted(name: str):
        names.append(name)
        return parse_variant(name)

    monkeypatch.setattr(jobs, "parse_variant", counted)
    jobs.job_variant.cache_clear()
    variant = "sam-mma-add_token"
    cell = job(dataset="Fluo-N2DL-HeLa", protocol="paper", train_seq="02", eval_seq="02", variant=variant)
    inputs = grid.train_inputs(full, cell)
    assert set(inputs) == {"data", "features", "val_data", "val_features"}
    assert jobs.job_tracking_settings(full, cell) == jobs.tracking_settings(full, "paper", variant)
    assert scoring.evaluate_inputs(full, cell)["features"] == inputs["features"]
    assert names == [variant]
    jobs.job_variant.cache_clear()
    pipeline = REPO / "src" / "denselink" / "pipeline"
    assert [p.name for p in sorted(pipeline.glob("*.py")) if "parse_variant(" in p.read_text()] == ["jobs.py"]


def test_real_gain_score_caches(mini: dict) -> None:
    real = load_config([CONFIGS / "real.yaml"], SCHEMA)
    root, eval_seq = real["results_root"], real["protocols"]["clean"]["directions"][0]["eval"]
    assert real_spec.score_caches(real) == {
        name: f"{root}/trackastra_eval/{name}/{eval_seq}.pt" for name in real["real_gain"]["datasets"]
    }
    assert len(real["real_gain"]["datasets"]) == 3  # GOWT1, SIM+, MSC
    assert mini["real_gain"]["datasets"] == []
    assert real_spec.score_caches(mini | {"protocols": {}}) == {}  # no study: no clean protocol needed


def test_validation_reads_frames_masks_and_the_track_file(tmp_path: Path) -> None:
    for name in ("01/t000.tif", "01/t001.tiff", "01/notes.txt", "01_GT/TRA/man_track000.tif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert sequence_files(tmp_path, "01") == [
        str(tmp_path / "01/t000.tif"),
        str(tmp_path / "01/t001.tiff"),
        str(tmp_path / "01_GT/TRA/man_track000.tif"),
    ]
    (tmp_path / "01_GT/TRA/man_track.txt").write_text("1 0 1 0\n")
    assert sequence_files(tmp_path, "01")[-1] == str(tmp_path / "01_GT/TRA/man_track.txt")
