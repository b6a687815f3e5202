"""Every arm of a comparison trains alike under ``clean``; ``paper`` keeps the authors' early stopping.
And the figures learn from the config which MAESTER runs pretrained on generated data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from denselink.errors import ConfigError
from denselink.pipeline import grid, jobs
from denselink.pipeline.checks import check_protocols, load_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def full() -> dict:
    return load_config([REPO / "config.yaml"], SCHEMA)


@pytest.fixture(scope="module")
def mini() -> dict:
    return load_config([REPO / "workflow" / "configs" / "mini.yaml"], SCHEMA)


def training(cfg: dict, protocol: str, variant: str) -> tuple:
    settings = json.loads(jobs.tracking_settings(cfg, protocol, variant))
    return settings["epochs"], settings["early_stopping"], settings["val_fraction"]


def test_clean_trains_every_arm_alike_and_paper_as_the_authors(full: dict) -> None:
    for dataset in full["table1"]["datasets"]:
        variants = grid.table1_variants(full, dataset)
        assert "retrained" in variants and len(variants) > 10
        clean = {variant: training(full, "clean", variant) for variant in variants}
        assert set(clean.values()) == {(100, False, 0.1)}, clean
        paper = {variant: training(full, "paper", variant)[1] for variant in variants}
        assert paper.pop("retrained") is True and set(paper.values()) == {False}


def test_a_protocols_early_stopping_overrides_the_tracking_default_key_by_key() -> None:
    cfg = {
        "tracking": {"early_stopping": {"retrained": True, "embeddings": False}},
        "protocols": {"clean": {"early_stopping": {"embeddings": True}}, "paper": {"early_stopping": None}},
    }
    assert jobs.early_stopping(cfg, "clean") == {
        "retrained": {"value": True, "key": "tracking.early_stopping.retrained"},
        "embeddings": {"value": True, "key": "protocols.clean.early_stopping.embeddings"},
    }
    assert {k: v["value"] for k, v in jobs.early_stopping(cfg, "paper").items()} == {
        "retrained": True,
        "embeddings": False,
    }


def test_early_stopping_without_validation_data_names_the_protocols_key() -> None:
    spec = {"val_fraction": 0.0, "directions": [{"train": "02", "eval": "01"}]}
    config = {
        "protocols": {"clean": {**spec, "early_stopping": {"embeddings": True}}},
        "table1": {"protocols": ["clean"]},
        "tracking": {"early_stopping": {"retrained": False, "embeddings": False}},
    }
    with pytest.raises(ConfigError) as err:
        check_protocols(config)
    # clean without validation data is a second problem of the same config: both are listed
    assert err.value.path == "protocols"
    listed = "  protocols.clean.early_stopping.embeddings: early stopping needs validation data"
    assert listed in str(err.value)


def test_runs_on_generated_data_are_named_for_the_figures(full: dict, mini: dict) -> None:
    assert jobs.synthetic_runs(full) == []
    assert jobs.synthetic_runs(mini) == [
        "mitocheck100",
        "mitocheck200",
        "mitocheck300",
        "mitocheck400",
        "synth",
    ]
    settings = json.loads(jobs.figure_settings(mini))
    assert settings["synthetic_runs"] == jobs.synthetic_runs(mini)
    assert settings["run_labels"]["mitocheck100"] == "Mitocheck 100 %"
